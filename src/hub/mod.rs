//! The hub: every piece of shared state, behind one narrow interface.
//!
//! It owns users, sessions, topics and their members, each user's
//! [`Mailbox`] (send queue and offline store in one), presence, and the
//! counters. HTTP handlers and socket tasks call its methods and never see a
//! lock; a distributed backend could implement the same methods.
//!
//! # Locking
//! - The maps are sharded [`DashMap`]s: no global lock on any request path.
//! - Each user has one `std::sync::Mutex` over its session, socket and mailbox.
//!   It is held for a few pointer moves, never across `.await`, so a blocking
//!   mutex is cheaper than an async one. Deliveries to different users never
//!   contend; a delivery and that user's writer contend only briefly.
//! - Lock order, always: a map shard, then a topic's members, then a user.
//!   Nothing takes a map or topic lock while holding a user lock, except the
//!   sessions map during login/logout (nothing holds a sessions guard while
//!   locking a user).
//! - Topic deletion and sends race safely without a topic-wide lock: deletion
//!   sets `deleted` first, then purges each user under that user's lock; a
//!   delivery checks `deleted` under the same lock.

pub mod mailbox;

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::extract::ws::Utf8Bytes;
use dashmap::{DashMap, mapref::entry::Entry as MapEntry};
use tokio::{sync::Notify, time::Instant};
use tokio_util::{
    sync::{CancellationToken, WaitForCancellationFuture},
    task::TaskTracker,
};

use crate::{
    config::Config,
    domain::{Name, Outgoing},
    protocol::{
        DownMessage, MESSAGE, SystemContent, TEXT_PLAIN, TOPIC_IS_DELETED, TOPIC_NOT_FOUND, close,
    },
};
use mailbox::{Entry, Mailbox, Removed};

/// Why the hub refused an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// `POST /api/topics` for a name in use (409).
    TopicExists(Name),
    /// The topic does not exist (404).
    TopicNotFound(Name),
    /// `limits.max_users` distinct users exist already (503).
    UserCapacity,
}

/// What `send` reports back to the sender.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub id: u64,
    pub sent_at: u64,
}

/// Monotonic counters, readable at any time (for logs, tests and metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub logins: AtomicU64,
    pub messages_accepted: AtomicU64,
    /// Chat and system messages written to sockets.
    pub frames_written: AtomicU64,
    /// Messages put in an offline store (recipient had no socket).
    pub queued_offline: AtomicU64,
    pub expired: AtomicU64,
    pub dropped_user_cap: AtomicU64,
    pub dropped_global_cap: AtomicU64,
    pub dropped_topic_deleted: AtomicU64,
    /// Sockets closed with 4004 because their send queue was full.
    pub slow_closes: AtomicU64,
    pub sockets_open: AtomicUsize,
    /// From acceptance to a writer taking the message off the queue.
    pub delivery_latency: crate::metrics::Histogram,
}

/// A cheap, cloneable handle on the shared state.
#[derive(Clone, Debug)]
pub struct Hub(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    cfg: Config,
    users: DashMap<Name, Arc<User>>,
    user_count: AtomicUsize,
    sessions: DashMap<Box<str>, Arc<User>>,
    topics: DashMap<Name, Arc<Topic>>,
    /// Bytes held in mailboxes of users without a socket (R26 global bound).
    offline_bytes: AtomicUsize,
    evicting: AtomicBool,
    ids: AtomicU64,
    epoch: Instant,
    stats: Stats,
    shutdown: CancellationToken,
    sockets: TaskTracker,
}

/// One user, whether they ever logged in or were only addressed.
#[derive(Debug)]
pub struct User {
    name: Name,
    /// Milliseconds since the hub's epoch of the last activity (R22).
    activity: AtomicU64,
    state: Mutex<UserState>,
}

#[derive(Debug, Default)]
struct UserState {
    sid: Option<Box<str>>,
    logged_in: bool,
    conn: Option<Arc<Conn>>,
    mailbox: Mailbox,
    /// Topics this user is a member of; a user in none, never logged in and
    /// with an empty mailbox is forgotten by the sweeper.
    topics: usize,
    /// Set when the sweeper removed this user from the map; holders of a stale
    /// handle look the name up again.
    removed: bool,
}

/// One attached WebSocket. Its tasks watch `cancel`; the hub wakes the writer
/// through `notify` when the mailbox gains frames.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    user: Arc<User>,
    notify: Notify,
    close_code: AtomicU16,
    cancel: CancellationToken,
}

#[derive(Debug)]
struct Topic {
    id: u64,
    deleted: AtomicBool,
    members: Mutex<Members>,
}

#[derive(Debug, Default)]
struct Members {
    map: HashMap<Name, Arc<User>>,
    /// Built on the first send after a membership change, then shared by
    /// every send until the next change.
    snapshot: Option<Arc<[Arc<User>]>>,
}

/// An authenticated HTTP caller.
#[derive(Debug, Clone)]
pub struct Session(Arc<User>);

impl Session {
    pub fn name(&self) -> &Name {
        &self.0.name
    }
}

impl Conn {
    pub fn name(&self) -> &Name {
        &self.user.name
    }

    /// Resolves when the writer has frames to write (or was woken to recheck).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Resolves once the hub has closed this socket (or the server is
    /// shutting down); may be polled again after that.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// The close code chosen by whoever closed the socket, if the server did.
    pub fn close_code(&self) -> Option<u16> {
        match self.close_code.load(Relaxed) {
            0 => None,
            code => Some(code),
        }
    }

    fn close(&self, code: Option<u16>) {
        if let Some(code) = code {
            let _ = self.close_code.compare_exchange(0, code, Relaxed, Relaxed);
        }
        self.cancel.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a user lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn new_sid() -> Box<str> {
    let mut bytes = [0u8; 16];
    // The OS CSPRNG failing is not recoverable for a server that issues secrets.
    getrandom::fill(&mut bytes).expect("OS random number generator is unavailable");
    crate::hex(&bytes).into()
}

impl Hub {
    pub fn new(cfg: Config, shutdown: CancellationToken) -> Self {
        Hub(Arc::new(Shared {
            cfg,
            users: DashMap::new(),
            user_count: AtomicUsize::new(0),
            sessions: DashMap::new(),
            topics: DashMap::new(),
            offline_bytes: AtomicUsize::new(0),
            evicting: AtomicBool::new(false),
            ids: AtomicU64::new(1),
            epoch: Instant::now(),
            stats: Stats::default(),
            shutdown,
            sockets: TaskTracker::new(),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.0.stats
    }

    /// Cancelled when the server begins to shut down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    /// Tracks every socket task, so shutdown can wait for their close frames.
    pub fn sockets(&self) -> &TaskTracker {
        &self.0.sockets
    }

    /// Bytes currently held offline, over all users.
    pub fn offline_bytes(&self) -> usize {
        self.0.offline_bytes.load(Relaxed)
    }

    fn next_id(&self) -> u64 {
        self.0.ids.fetch_add(1, Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    fn touch(&self, user: &User) {
        user.activity.store(self.now_ms(), Relaxed);
    }

    fn user(&self, name: &Name) -> Result<Arc<User>, HubError> {
        if let Some(u) = self.0.users.get(name) {
            return Ok(u.clone());
        }
        match self.0.users.entry(name.clone()) {
            MapEntry::Occupied(e) => Ok(e.get().clone()),
            MapEntry::Vacant(e) => {
                if self.0.user_count.load(Relaxed) >= self.0.cfg.limits.max_users {
                    return Err(HubError::UserCapacity);
                }
                self.0.user_count.fetch_add(1, Relaxed);
                let user = Arc::new(User {
                    name: name.clone(),
                    activity: AtomicU64::new(0),
                    state: Mutex::new(UserState::default()),
                });
                e.insert(user.clone());
                Ok(user)
            }
        }
    }

    /// Runs `f` under the user's lock, looking the name up again if the
    /// sweeper forgot the handle in between.
    fn with_user<R>(
        &self,
        name: &Name,
        mut f: impl FnMut(&Arc<User>, &mut UserState) -> R,
    ) -> Result<R, HubError> {
        loop {
            let user = self.user(name)?;
            let mut st = lock(&user.state);
            if !st.removed {
                return Ok(f(&user, &mut st));
            }
        }
    }

    // ---- sessions (R6–R8) ----

    /// Logs `name` in, revoking and disconnecting any previous session (R7).
    pub fn login(&self, name: &Name) -> Result<String, HubError> {
        let sid = new_sid();
        self.with_user(name, |user, st| {
            if let Some(old) = st.sid.replace(sid.clone()) {
                self.0.sessions.remove(&old);
            }
            self.detach(st, Some(close::REPLACED));
            self.0.sessions.insert(sid.clone(), user.clone());
            st.logged_in = true;
            self.touch(user);
        })?;
        self.0.stats.logins.fetch_add(1, Relaxed);
        Ok(sid.into())
    }

    /// Revokes the session and closes its socket with 4002 (R8).
    pub fn logout(&self, session: &Session) {
        let mut st = lock(&session.0.state);
        if let Some(sid) = st.sid.take() {
            self.0.sessions.remove(&sid);
        }
        self.detach(&mut st, Some(close::LOGGED_OUT));
    }

    /// Resolves a sid and counts the request as activity (R5, R22).
    pub fn authenticate(&self, sid: &str) -> Option<Session> {
        let user = self.0.sessions.get(sid)?.clone();
        self.touch(&user);
        Some(Session(user))
    }

    /// Every user who has logged in, or only those online (R9, R23), sorted.
    pub fn users(&self, online_only: bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .all_users()
            .iter()
            .filter(|u| {
                let logged_in = lock(&u.state).logged_in;
                logged_in && (!online_only || self.is_online(u))
            })
            .map(|u| u.name.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// Users online now (R23); walks every user, so for scrapes, not hot paths.
    pub fn online_count(&self) -> usize {
        self.all_users()
            .iter()
            .filter(|u| self.is_online(u))
            .count()
    }

    /// A socket attached and activity within the idle timeout (R23).
    fn is_online(&self, user: &User) -> bool {
        let idle = self.0.cfg.heartbeat.idle_timeout.as_millis() as u64;
        let quiet = self.now_ms().saturating_sub(user.activity.load(Relaxed));
        let attached = lock(&user.state).conn.is_some();
        attached && quiet <= idle
    }

    /// A snapshot of every user handle, so no map guard is held while locking
    /// users (see the lock order above).
    fn all_users(&self) -> Vec<Arc<User>> {
        self.0.users.iter().map(|e| e.value().clone()).collect()
    }

    // ---- topics (R10–R13) ----

    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.topics.iter().map(|e| e.key().to_string()).collect();
        names.sort_unstable();
        names
    }

    pub fn create_topic(&self, name: &Name) -> Result<(), HubError> {
        match self.0.topics.entry(name.clone()) {
            MapEntry::Occupied(_) => Err(HubError::TopicExists(name.clone())),
            MapEntry::Vacant(e) => {
                e.insert(Arc::new(Topic {
                    id: self.next_id(),
                    deleted: AtomicBool::new(false),
                    members: Mutex::new(Members::default()),
                }));
                Ok(())
            }
        }
    }

    fn topic(&self, name: &Name) -> Result<Arc<Topic>, HubError> {
        self.0
            .topics
            .get(name)
            .map(|t| t.clone())
            .ok_or_else(|| HubError::TopicNotFound(name.clone()))
    }

    pub fn join(&self, session: &Session, topic: &Name) -> Result<(), HubError> {
        let topic = self.topic(topic)?;
        self.add_member(&topic, session.name())
    }

    /// Quitting a topic one is not in is fine (R12).
    pub fn quit(&self, session: &Session, topic: &Name) -> Result<(), HubError> {
        let topic = self.topic(topic)?;
        let removed = {
            let mut m = lock(&topic.members);
            let removed = m.map.remove(session.name());
            if removed.is_some() {
                m.snapshot = None;
            }
            removed
        };
        if let Some(user) = removed {
            lock(&user.state).topics -= 1;
        }
        Ok(())
    }

    fn add_member(&self, topic: &Topic, name: &Name) -> Result<(), HubError> {
        // Count the membership first so the sweeper cannot forget the user
        // between the two locks.
        let user = self.with_user(name, |user, st| {
            st.topics += 1;
            user.clone()
        })?;
        let added = {
            let mut m = lock(&topic.members);
            if topic.deleted.load(Relaxed) || m.map.contains_key(name) {
                false
            } else {
                m.map.insert(name.clone(), user.clone());
                m.snapshot = None;
                true
            }
        };
        if !added {
            lock(&user.state).topics -= 1;
        }
        Ok(())
    }

    /// Deletes a topic: members are told, its queued messages dropped and its
    /// members forgotten (R13).
    pub fn delete_topic(&self, name: &Name) -> Result<(), HubError> {
        let (_, topic) = self
            .0
            .topics
            .remove(name)
            .ok_or_else(|| HubError::TopicNotFound(name.clone()))?;
        let members: Vec<Arc<User>> = {
            let mut m = lock(&topic.members);
            topic.deleted.store(true, Relaxed);
            m.snapshot = None;
            m.map.drain().map(|(_, u)| u).collect()
        };
        // Former members who quit may still hold queued messages of the topic.
        let everyone = self.all_users();
        for user in &everyone {
            let mut st = lock(&user.state);
            let removed = st.mailbox.drop_topic(topic.id);
            self.forget(&st, removed);
            self.0
                .stats
                .dropped_topic_deleted
                .fetch_add(removed.messages as u64, Relaxed);
        }
        let frame = system_frame(TOPIC_IS_DELETED, name);
        let expires = Instant::now() + self.0.cfg.offline.ttl;
        for user in &members {
            let mut st = lock(&user.state);
            st.topics -= 1;
            if !st.removed {
                self.enqueue(&mut st, entry(frame.clone(), expires, None));
            }
        }
        self.evict_if_full();
        Ok(())
    }

    // ---- sending (R16–R19) ----

    /// Accepts a checked message; when this returns `Ok`, every recipient has
    /// it in their socket's queue or offline store (R19).
    pub async fn send(&self, session: &Session, msg: Outgoing) -> Result<Receipt, HubError> {
        let receipt = Receipt {
            id: self.next_id(),
            sent_at: unix_ms(),
        };
        let expires = Instant::now() + self.0.cfg.offline.ttl;
        let Some(topic_name) = &msg.topic else {
            // Make sure every recipient can be kept before delivering to any,
            // so a full user table refuses the message whole.
            for to in &msg.to {
                self.user(to)?;
            }
            // One-to-one: each recipient sees only itself in `to` (R16).
            for to in &msg.to {
                let frame = down_frame(&msg, std::slice::from_ref(to), receipt);
                self.with_user(to, |_, st| {
                    self.enqueue(st, entry(frame.clone(), expires, None));
                })?;
            }
            self.0.stats.messages_accepted.fetch_add(1, Relaxed);
            self.evict_if_full();
            return Ok(receipt);
        };

        let topic = match self.topic(topic_name) {
            Ok(t) => t,
            Err(e) => {
                // R17: tell the sender's socket, queue nothing.
                let mut st = lock(&session.0.state);
                if st.conn.is_some() {
                    let frame = system_frame(TOPIC_NOT_FOUND, topic_name);
                    self.enqueue(&mut st, entry(frame, expires, None));
                }
                return Err(e);
            }
        };
        // R18: the sender and every mentioned user join.
        self.add_member(&topic, &msg.from)?;
        for name in &msg.to {
            self.add_member(&topic, name)?;
        }
        let members = {
            let mut guard = lock(&topic.members);
            let m = &mut *guard;
            m.snapshot
                .get_or_insert_with(|| m.map.values().cloned().collect())
                .clone()
        };
        // Serialized once; every member's queue shares these bytes.
        let frame = down_frame(&msg, &msg.to, receipt);
        let chunk = self.0.cfg.limits.fanout_chunk;
        if members.len() <= chunk {
            self.fan_out(&topic, &members, &msg.from, &frame, expires);
        } else {
            // Large topics: spread the fan-out over the runtime's workers.
            let mut tasks = tokio::task::JoinSet::new();
            for start in (0..members.len()).step_by(chunk) {
                let (hub, topic, members, from, frame) = (
                    self.clone(),
                    topic.clone(),
                    members.clone(),
                    msg.from.clone(),
                    frame.clone(),
                );
                tasks.spawn(async move {
                    let end = (start + chunk).min(members.len());
                    hub.fan_out(&topic, &members[start..end], &from, &frame, expires);
                });
            }
            while tasks.join_next().await.is_some() {}
        }
        self.0.stats.messages_accepted.fetch_add(1, Relaxed);
        self.evict_if_full();
        Ok(receipt)
    }

    fn fan_out(
        &self,
        topic: &Topic,
        members: &[Arc<User>],
        from: &Name,
        frame: &Utf8Bytes,
        expires: Instant,
    ) {
        for user in members {
            if user.name == *from {
                continue;
            }
            let mut st = lock(&user.state);
            // Checked under the user's lock: a deletion purges each user under
            // the same lock after setting the flag (see module docs).
            if st.removed || topic.deleted.load(Relaxed) {
                continue;
            }
            self.enqueue(&mut st, entry(frame.clone(), expires, Some(topic.id)));
        }
    }

    /// Queues a frame for a user: to the socket if one is attached and keeping
    /// up, else offline.
    fn enqueue(&self, st: &mut UserState, e: Entry) {
        let limits = &self.0.cfg.limits;
        if let Some(conn) = &st.conn {
            if st.mailbox.len() < limits.send_queue_frames
                && st.mailbox.bytes() + e.frame.len() <= limits.send_queue_bytes
            {
                // The writer drains until the mailbox is empty, so only the
                // first frame of a burst needs to wake it.
                let wake = st.mailbox.is_empty();
                st.mailbox.push(e);
                if wake {
                    conn.notify.notify_one();
                }
                return;
            }
            // R26: a socket that cannot keep up is closed; what it has not
            // written stays in the mailbox, now as offline messages.
            self.0.stats.slow_closes.fetch_add(1, Relaxed);
            self.detach(st, Some(close::SLOW));
        }
        if e.control {
            return;
        }
        let size = e.frame.len();
        st.mailbox.push(e);
        self.0.offline_bytes.fetch_add(size, Relaxed);
        self.0.stats.queued_offline.fetch_add(1, Relaxed);
        let removed = self.trim_offline(st);
        self.0
            .stats
            .dropped_user_cap
            .fetch_add(removed.messages as u64, Relaxed);
    }

    fn trim_offline(&self, st: &mut UserState) -> Removed {
        let o = &self.0.cfg.offline;
        let removed = st
            .mailbox
            .trim(o.max_messages_per_user, o.max_bytes_per_user);
        self.0.offline_bytes.fetch_sub(removed.bytes, Relaxed);
        removed
    }

    /// Accounts for entries removed from a mailbox that may be offline.
    fn forget(&self, st: &UserState, removed: Removed) {
        if st.conn.is_none() {
            self.0.offline_bytes.fetch_sub(removed.bytes, Relaxed);
        }
    }

    /// Detaches the user's socket, if any, closing it with `code`; its unwritten
    /// messages become offline messages.
    fn detach(&self, st: &mut UserState, code: Option<u16>) {
        let Some(conn) = st.conn.take() else {
            return;
        };
        conn.close(code);
        st.mailbox.drop_control();
        let expired = st.mailbox.drop_expired(Instant::now());
        self.0
            .stats
            .expired
            .fetch_add(expired.messages as u64, Relaxed);
        self.0.offline_bytes.fetch_add(st.mailbox.bytes(), Relaxed);
        let removed = self.trim_offline(st);
        self.0
            .stats
            .dropped_user_cap
            .fetch_add(removed.messages as u64, Relaxed);
    }

    /// Global bound (R26): when offline storage is over its cap, drop the
    /// oldest messages across all users until it is comfortably below.
    fn evict_if_full(&self) {
        let cap = self.0.cfg.offline.max_bytes_total;
        if self.offline_bytes() <= cap || self.0.evicting.swap(true, Relaxed) {
            return;
        }
        // Evict a little extra so a full store is not rescanned per message.
        let target = cap - cap / 16;
        let users = self.all_users();
        let mut heap = BinaryHeap::new();
        for (i, user) in users.iter().enumerate() {
            let st = lock(&user.state);
            if let (None, Some(exp)) = (&st.conn, st.mailbox.oldest_expiry()) {
                heap.push(Reverse((exp, i)));
            }
        }
        while self.offline_bytes() > target {
            let Some(Reverse((_, i))) = heap.pop() else {
                break;
            };
            let mut st = lock(&users[i].state);
            if st.conn.is_some() {
                continue;
            }
            let removed = st.mailbox.pop_oldest();
            self.forget(&st, removed);
            self.0
                .stats
                .dropped_global_cap
                .fetch_add(removed.messages as u64, Relaxed);
            if let Some(exp) = st.mailbox.oldest_expiry() {
                heap.push(Reverse((exp, i)));
            }
        }
        self.0.evicting.store(false, Relaxed);
    }

    // ---- sockets (R21–R26) ----

    /// Attaches a new socket for the session `sid`; `None` if the sid is not
    /// the user's current session (R21). The offline backlog becomes the
    /// socket's first frames (R25).
    pub fn connect(&self, sid: &str) -> Option<Arc<Conn>> {
        let user = self.0.sessions.get(sid)?.clone();
        let mut st = lock(&user.state);
        if st.sid.as_deref() != Some(sid) {
            return None;
        }
        self.detach(&mut st, Some(close::REPLACED));
        let expired = st.mailbox.drop_expired(Instant::now());
        self.0
            .stats
            .expired
            .fetch_add(expired.messages as u64, Relaxed);
        self.0.offline_bytes.fetch_sub(expired.bytes, Relaxed);
        self.0.offline_bytes.fetch_sub(st.mailbox.bytes(), Relaxed);
        let conn = Arc::new(Conn {
            id: self.next_id(),
            user: user.clone(),
            notify: Notify::new(),
            close_code: AtomicU16::new(0),
            cancel: self.0.shutdown.child_token(),
        });
        if !st.mailbox.is_empty() {
            conn.notify.notify_one();
        }
        st.conn = Some(conn.clone());
        self.touch(&user);
        self.0.stats.sockets_open.fetch_add(1, Relaxed);
        Some(conn)
    }

    /// Copies up to `max` queued frames into `out` without removing them;
    /// `None` once the socket is no longer attached (closed or replaced).
    /// Pass the returned mark to [`Hub::commit`] once they are written.
    pub fn peek(&self, conn: &Conn, max: usize, out: &mut Vec<Utf8Bytes>) -> Option<u64> {
        let st = lock(&conn.user.state);
        match &st.conn {
            Some(c) if c.id == conn.id => Some(st.mailbox.peek(max, out)),
            _ => None,
        }
    }

    /// Removes frames a writer has written. If the socket was detached
    /// meanwhile (4004), they left the offline store, where they were counted.
    pub fn commit(&self, conn: &Conn, mark: u64) {
        let mut st = lock(&conn.user.state);
        let now = Instant::now();
        let ttl = self.0.cfg.offline.ttl;
        let latency = &self.0.stats.delivery_latency;
        let removed = st.mailbox.commit(mark, |expires| {
            latency.observe(now.saturating_duration_since(expires - ttl));
        });
        self.forget(&st, removed);
        self.0
            .stats
            .frames_written
            .fetch_add(removed.messages as u64, Relaxed);
    }

    /// Moves up to `max` queued frames into `out` ([`Hub::peek`] then
    /// [`Hub::commit`]). `false` once the socket is no longer attached.
    pub fn take(&self, conn: &Conn, max: usize, out: &mut Vec<Utf8Bytes>) -> bool {
        match self.peek(conn, max, out) {
            Some(mark) => {
                self.commit(conn, mark);
                true
            }
            None => false,
        }
    }

    /// Queues a heartbeat answer (ack) for this socket only.
    pub fn push_control(&self, conn: &Conn, frame: Utf8Bytes) {
        let mut st = lock(&conn.user.state);
        if matches!(&st.conn, Some(c) if c.id == conn.id) {
            let mut e = entry(frame, Instant::now(), None);
            e.control = true;
            self.enqueue(&mut st, e);
        }
    }

    /// Any frame from the client is activity (R22, R24).
    pub fn activity(&self, conn: &Conn) {
        self.touch(&conn.user);
    }

    /// How long the socket may stay silent from now before it is idle (R23).
    pub fn idle_in(&self, conn: &Conn) -> Duration {
        let idle = self.0.cfg.heartbeat.idle_timeout;
        let since = self
            .now_ms()
            .saturating_sub(conn.user.activity.load(Relaxed));
        idle.saturating_sub(Duration::from_millis(since))
    }

    /// Closes the socket with `code` (or without one when the client went
    /// away); the user is offline from now on (R23).
    pub fn close(&self, conn: &Conn, code: Option<u16>) {
        let mut st = lock(&conn.user.state);
        if matches!(&st.conn, Some(c) if c.id == conn.id) {
            self.detach(&mut st, code);
        } else {
            conn.close(code);
        }
    }

    /// Called once by the socket task when it ends.
    pub fn socket_ended(&self, conn: &Conn) {
        self.close(conn, None);
        self.0.stats.sockets_open.fetch_sub(1, Relaxed);
    }

    // ---- background ----

    /// Drops expired offline messages and forgets users that are only
    /// addressed, in no topic and have nothing queued.
    pub fn sweep(&self) {
        let now = Instant::now();
        let users = self.all_users();
        let mut ghosts = Vec::new();
        for user in users {
            let mut st = lock(&user.state);
            if st.conn.is_some() {
                continue;
            }
            let removed = st.mailbox.drop_expired(now);
            self.forget(&st, removed);
            self.0
                .stats
                .expired
                .fetch_add(removed.messages as u64, Relaxed);
            if is_ghost(&st) {
                ghosts.push(user.name.clone());
            }
        }
        for name in ghosts {
            let removed = self.0.users.remove_if(&name, |_, user| {
                let mut st = lock(&user.state);
                st.removed = is_ghost(&st);
                st.removed
            });
            if removed.is_some() {
                self.0.user_count.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Sweeps every `interval` until shutdown.
    pub async fn run_sweeper(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                _ = tick.tick() => self.sweep(),
            }
        }
    }

    /// Messages currently queued for `name` (offline or unwritten).
    pub fn queued(&self, name: &Name) -> usize {
        self.0
            .users
            .get(name)
            .map(|u| u.clone())
            .map_or(0, |u| lock(&u.state).mailbox.len())
    }

    /// Users the hub currently keeps (logged in or only addressed).
    pub fn user_count(&self) -> usize {
        self.0.user_count.load(Relaxed)
    }
}

fn is_ghost(st: &UserState) -> bool {
    !st.logged_in && st.topics == 0 && st.mailbox.is_empty() && st.conn.is_none()
}

fn entry(frame: Utf8Bytes, expires: Instant, topic: Option<u64>) -> Entry {
    Entry {
        frame,
        expires,
        topic,
        control: false,
    }
}

fn down_frame(msg: &Outgoing, to: &[Name], receipt: Receipt) -> Utf8Bytes {
    let down = DownMessage::<&str> {
        message_type: MESSAGE,
        from: msg.from.as_str(),
        to: to.iter().map(Name::as_str).collect(),
        topic: msg.topic.as_ref().map(Name::as_str),
        content_type: TEXT_PLAIN,
        content: &msg.content,
        id: receipt.id,
        sent_at: receipt.sent_at,
    };
    serde_json::to_string(&down)
        .expect("a struct of strings always serializes")
        .into()
}

fn system_frame(kind: &str, topic: &Name) -> Utf8Bytes {
    #[derive(serde::Serialize)]
    struct System<'a> {
        #[serde(rename = "message-type")]
        message_type: &'a str,
        topic: &'a str,
        #[serde(rename = "content-type")]
        content_type: &'a str,
        content: SystemContent<&'a str>,
    }
    let frame = System {
        message_type: "system",
        topic: kind,
        content_type: "application/json",
        content: SystemContent {
            topic: topic.as_str(),
        },
    };
    serde_json::to_string(&frame)
        .expect("a struct of strings always serializes")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(f: impl FnOnce(&mut Config)) -> Hub {
        let mut cfg = Config::default();
        f(&mut cfg);
        Hub::new(cfg, CancellationToken::new())
    }

    fn name(s: &str) -> Name {
        Name::parse(s).expect("valid name")
    }

    fn p2p(from: &str, to: &str, content: &str) -> Outgoing {
        Outgoing {
            from: name(from),
            to: vec![name(to)],
            topic: None,
            content: content.into(),
        }
    }

    fn login(hub: &Hub, who: &str) -> Session {
        let sid = hub.login(&name(who)).expect("login");
        hub.authenticate(&sid).expect("session")
    }

    #[tokio::test(start_paused = true)]
    async fn offline_messages_expire_and_are_swept() {
        // R25: never delivered after the TTL; the sweeper frees them.
        let hub = hub(|c| c.offline.ttl = Duration::from_secs(10));
        let alice = login(&hub, "alice");
        hub.send(&alice, p2p("alice", "never-seen", "x"))
            .await
            .expect("sent");
        assert_eq!(hub.queued(&name("never-seen")), 1);
        assert!(hub.offline_bytes() > 0);
        tokio::time::advance(Duration::from_secs(11)).await;
        hub.sweep();
        assert_eq!(hub.queued(&name("never-seen")), 0);
        assert_eq!(hub.offline_bytes(), 0);
        assert_eq!(hub.stats().expired.load(Relaxed), 1);
        // The addressed-only user is forgotten once nothing refers to it.
        assert_eq!(hub.user_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn global_cap_drops_the_oldest_across_users() {
        // R26: per-user and global bounds, oldest first, counted.
        let hub = hub(|c| {
            c.offline.max_messages_per_user = 3;
            c.offline.max_bytes_total = 2000;
        });
        let alice = login(&hub, "alice");
        for i in 0..5 {
            hub.send(&alice, p2p("alice", "bobby", &format!("b{i}")))
                .await
                .expect("sent");
        }
        assert_eq!(hub.queued(&name("bobby")), 3);
        assert_eq!(hub.stats().dropped_user_cap.load(Relaxed), 2);
        for i in 0..40 {
            tokio::time::advance(Duration::from_millis(1)).await;
            hub.send(&alice, p2p("alice", &format!("user{i:02}"), "y"))
                .await
                .expect("sent");
        }
        assert!(hub.offline_bytes() <= 2000, "{}", hub.offline_bytes());
        // bobby's messages were the oldest, so they went first.
        assert_eq!(hub.queued(&name("bobby")), 0);
        assert!(hub.stats().dropped_global_cap.load(Relaxed) >= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn backlog_then_live_in_order_exactly_once() {
        // R25: backlog first, then live messages, each once.
        let hub = hub(|_| {});
        let alice = login(&hub, "alice");
        let bob_sid = hub.login(&name("bobby")).expect("login");
        hub.send(&alice, p2p("alice", "bobby", "one"))
            .await
            .expect("sent");
        let conn = hub.connect(&bob_sid).expect("attached");
        assert_eq!(hub.offline_bytes(), 0);
        hub.send(&alice, p2p("alice", "bobby", "two"))
            .await
            .expect("sent");
        let mut out = Vec::new();
        assert!(hub.take(&conn, 10, &mut out));
        assert_eq!(hub.stats().delivery_latency.count(), 2);
        let texts: Vec<&str> = out.iter().map(|f| f.as_str()).collect();
        assert!(
            texts[0].contains("\"one\"") && texts[1].contains("\"two\""),
            "{texts:?}"
        );
        out.clear();
        assert!(hub.take(&conn, 10, &mut out) && out.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_socket_is_closed_and_keeps_its_messages() {
        // R26
        let hub = hub(|c| c.limits.send_queue_frames = 2);
        let alice = login(&hub, "alice");
        let bob_sid = hub.login(&name("bobby")).expect("login");
        let conn = hub.connect(&bob_sid).expect("attached");
        for i in 0..3 {
            hub.send(&alice, p2p("alice", "bobby", &format!("m{i}")))
                .await
                .expect("sent");
        }
        assert_eq!(conn.close_code(), Some(close::SLOW));
        assert_eq!(hub.queued(&name("bobby")), 3);
        assert!(!hub.take(&conn, 10, &mut Vec::new()));
        let again = hub.connect(&bob_sid).expect("reattached");
        let mut out = Vec::new();
        hub.take(&again, 10, &mut out);
        assert_eq!(out.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_user_table_refuses_a_message_whole() {
        // R27 spirit: bounded memory; no partial delivery.
        let hub = hub(|c| c.limits.max_users = 2);
        let alice = login(&hub, "alice");
        let mut msg = p2p("alice", "bobby", "x");
        msg.to.push(name("carol"));
        assert_eq!(
            hub.send(&alice, msg).await.err(),
            Some(HubError::UserCapacity)
        );
        assert_eq!(hub.queued(&name("bobby")), 0);
    }
}
