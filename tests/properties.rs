//! Property tests (issue 5): random operation sequences against simple models.
//!
//! - The offline store, [`Mailbox`]: TTL (nothing expired survives
//!   `drop_expired`), order (`take` gives push order), caps (`trim` leaves at
//!   most the caps and removes the oldest first; the byte total is always the
//!   sum of the frames), exactly-once (every pushed entry is taken once or
//!   reported removed once, never both). R25, R26.
//! - The hub's membership and delivery rules through its public API: who
//!   receives each one-to-one, topic and system message, in which order, with
//!   logins, kicks, logouts, sockets coming and going, topic deletions,
//!   expiry, and (with small bounds) sockets closed with 4004 for a full
//!   send queue and offline stores trimmed oldest first, each drop counted.
//!   R7, R8, R12, R13, R16–R19, R21, R25, R26.
//!
//! Deterministic: a fixed seed unless `PROPTEST_RNG_SEED` is set, and case
//! counts sized for a loaded 2-core CI (`PROPTEST_CASES` overrides them).

use std::{collections::VecDeque, sync::atomic::Ordering::Relaxed, time::Duration};

use axum::extract::ws::Utf8Bytes;
use huayi_im::{
    Config, Hub,
    domain::{MessageLimits, Name, Outgoing},
    hub::{
        Conn, Session,
        mailbox::{Entry, Mailbox, Removed},
    },
    protocol::{MESSAGE, TEXT_PLAIN, UpMessage, close},
};
use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, RngSeed},
};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A fixed seed and `cases` cases, unless the environment asks otherwise.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    if c.rng_seed == RngSeed::Random {
        c.rng_seed = RngSeed::Fixed(0x4875_6179_6920_494d);
    }
    c.failure_persistence = None;
    c
}

// ---------------------------------------------------------------------------
// The mailbox
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum BoxOp {
    Push {
        pad: usize,
        ttl_ms: u64,
        topic: Option<u64>,
        control: bool,
    },
    Trim {
        max_messages: usize,
        max_bytes: usize,
    },
    PopOldest,
    DropExpired,
    DropTopic(u64),
    DropControl,
    Take(usize),
    Advance(u64),
}

fn box_op() -> impl Strategy<Value = BoxOp> {
    prop_oneof![
        6 => (0usize..40, 0u64..1_000, proptest::option::of(0u64..3), proptest::bool::weighted(0.2))
            .prop_map(|(pad, ttl_ms, topic, control)| BoxOp::Push { pad, ttl_ms, topic, control }),
        1 => (0usize..12, 0usize..300)
            .prop_map(|(max_messages, max_bytes)| BoxOp::Trim { max_messages, max_bytes }),
        1 => Just(BoxOp::PopOldest),
        1 => Just(BoxOp::DropExpired),
        1 => (0u64..3).prop_map(BoxOp::DropTopic),
        1 => Just(BoxOp::DropControl),
        2 => (0usize..6).prop_map(BoxOp::Take),
        2 => (0u64..400).prop_map(BoxOp::Advance),
    ]
}

/// What the model knows of one queued entry.
#[derive(Debug, Clone)]
struct Queued {
    id: u64,
    len: usize,
    expires_ms: u64,
    topic: Option<u64>,
    control: bool,
}

/// Each frame starts with its entry's id, so a taken frame says which it was.
fn frame(id: u64, pad: usize) -> Utf8Bytes {
    format!("{id:08}{}", "x".repeat(pad)).into()
}

fn frame_id(frame: &Utf8Bytes) -> u64 {
    frame.as_str()[..8]
        .parse()
        .expect("frames start with their id")
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Fate {
    #[default]
    Queued,
    Taken,
    Removed,
}

struct BoxModel {
    queue: VecDeque<Queued>,
    fates: Vec<Fate>,
}

impl BoxModel {
    fn settle(&mut self, entry: &Queued, fate: Fate) {
        let slot = &mut self.fates[entry.id as usize];
        assert_eq!(*slot, Fate::Queued, "entry {} settled twice", entry.id);
        *slot = fate;
    }

    /// Removes what `gone` selects, checks the mailbox reported exactly that.
    fn remove(&mut self, reported: Removed, gone: impl Fn(&Queued) -> bool) {
        let mut want = Removed::default();
        let mut kept = VecDeque::new();
        for e in std::mem::take(&mut self.queue) {
            if gone(&e) {
                want.messages += usize::from(!e.control);
                want.bytes += e.len;
                self.settle(&e, Fate::Removed);
            } else {
                kept.push_back(e);
            }
        }
        self.queue = kept;
        assert_eq!(reported, want, "reported removals");
    }
}

fn check_mailbox(ops: Vec<BoxOp>) {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut now_ms = 0;
    let mut mailbox = Mailbox::default();
    let mut model = BoxModel {
        queue: VecDeque::new(),
        fates: Vec::new(),
    };
    for op in ops {
        match op {
            BoxOp::Push {
                pad,
                ttl_ms,
                topic,
                control,
            } => {
                let id = model.fates.len() as u64;
                let frame = frame(id, pad);
                model.fates.push(Fate::Queued);
                model.queue.push_back(Queued {
                    id,
                    len: frame.len(),
                    expires_ms: now_ms + ttl_ms,
                    topic,
                    control,
                });
                mailbox.push(Entry {
                    frame,
                    expires: at(now_ms + ttl_ms),
                    topic,
                    control,
                });
            }
            BoxOp::Trim {
                max_messages,
                max_bytes,
            } => {
                let removed = mailbox.trim(max_messages, max_bytes);
                // The oldest go first: the removed entries are a prefix.
                let mut count = 0;
                let mut bytes: usize = model.queue.iter().map(|e| e.len).sum();
                for e in &model.queue {
                    if model.queue.len() - count <= max_messages && bytes <= max_bytes {
                        break;
                    }
                    count += 1;
                    bytes -= e.len;
                }
                let prefix: Vec<u64> = model.queue.iter().take(count).map(|e| e.id).collect();
                model.remove(removed, |e| prefix.contains(&e.id));
                assert!(mailbox.len() <= max_messages, "trim leaves at most the cap");
                assert!(
                    mailbox.bytes() <= max_bytes,
                    "trim leaves at most the bytes"
                );
            }
            BoxOp::PopOldest => {
                let removed = mailbox.pop_oldest();
                let oldest = model.queue.front().map(|e| e.id);
                model.remove(removed, |e| Some(e.id) == oldest);
            }
            BoxOp::DropExpired => {
                let removed = mailbox.drop_expired(at(now_ms));
                model.remove(removed, |e| e.expires_ms <= now_ms);
                // TTL: nothing expired survives.
                assert!(model.queue.iter().all(|e| e.expires_ms > now_ms));
            }
            BoxOp::DropTopic(topic) => {
                let removed = mailbox.drop_topic(topic);
                model.remove(removed, |e| e.topic == Some(topic));
            }
            BoxOp::DropControl => {
                let removed = mailbox.drop_control();
                model.remove(removed, |e| e.control);
            }
            BoxOp::Take(max) => {
                let mut out = Vec::new();
                let mut expiries = Vec::new();
                mailbox.take(max, &mut out, |expires| expiries.push(expires));
                let want: Vec<Queued> = (0..max.min(model.queue.len()))
                    .filter_map(|_| model.queue.pop_front())
                    .collect();
                // Order: exactly the oldest `max`, in push order.
                let got: Vec<u64> = out.iter().map(frame_id).collect();
                let ids: Vec<u64> = want.iter().map(|e| e.id).collect();
                assert_eq!(got, ids, "take returns the oldest, in push order");
                // Messages (not heartbeats) are reported with their expiry.
                let messages: Vec<Instant> = want
                    .iter()
                    .filter(|e| !e.control)
                    .map(|e| at(e.expires_ms))
                    .collect();
                assert_eq!(expiries, messages);
                for e in &want {
                    model.settle(e, Fate::Taken);
                }
            }
            BoxOp::Advance(ms) => now_ms += ms,
        }
        assert_eq!(mailbox.len(), model.queue.len());
        assert_eq!(mailbox.is_empty(), model.queue.is_empty());
        assert_eq!(
            mailbox.bytes(),
            model.queue.iter().map(|e| e.len).sum::<usize>(),
            "the byte total is the sum of the frames"
        );
        assert_eq!(
            mailbox.oldest_expiry(),
            model.queue.front().map(|e| at(e.expires_ms))
        );
    }
    // Exactly once: drain the rest; every entry ever pushed is now either
    // taken once or was reported removed once.
    let mut out = Vec::new();
    mailbox.take(usize::MAX, &mut out, |_| {});
    let rest: Vec<u64> = out.iter().map(frame_id).collect();
    let expected: Vec<u64> = model.queue.iter().map(|e| e.id).collect();
    assert_eq!(rest, expected);
    for e in std::mem::take(&mut model.queue) {
        model.settle(&e, Fate::Taken);
    }
    assert!(model.fates.iter().all(|f| *f != Fate::Queued));
    assert_eq!(mailbox.bytes(), 0);
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn mailbox_keeps_ttl_order_caps_and_exactly_once(
        ops in proptest::collection::vec(box_op(), 1..120)
    ) {
        check_mailbox(ops);
    }
}

// ---------------------------------------------------------------------------
// The hub
// ---------------------------------------------------------------------------

const USERS: usize = 4;
const TOPICS: usize = 2;
/// Offline TTL in these tests; `Advance` steps are a fraction of it.
const TTL_MS: u64 = 1_000;

fn user(i: usize) -> String {
    format!("user{i}")
}

fn topic(i: usize) -> String {
    format!("room{i}")
}

#[derive(Debug, Clone)]
enum HubOp {
    Create(usize),
    Delete(usize),
    Join(usize, usize),
    Quit(usize, usize),
    /// `from`, topic, mentions (duplicates allowed: they count once).
    SendTopic(usize, usize, Vec<usize>),
    /// `from`, recipients.
    SendP2p(usize, Vec<usize>),
    Connect(usize),
    Disconnect(usize),
    /// A new login for the user: the previous session is revoked (a kick).
    Relogin(usize),
    Logout(usize),
    Drain(usize, usize),
    Advance(u64),
    Sweep,
}

fn hub_op() -> impl Strategy<Value = HubOp> {
    let u = 0..USERS;
    let t = 0..TOPICS;
    let names = proptest::collection::vec(0..USERS, 0..4);
    prop_oneof![
        2 => t.clone().prop_map(HubOp::Create),
        1 => t.clone().prop_map(HubOp::Delete),
        2 => (u.clone(), t.clone()).prop_map(|(u, t)| HubOp::Join(u, t)),
        1 => (u.clone(), t.clone()).prop_map(|(u, t)| HubOp::Quit(u, t)),
        4 => (u.clone(), t, names.clone()).prop_map(|(u, t, m)| HubOp::SendTopic(u, t, m)),
        3 => (u.clone(), names).prop_map(|(u, to)| HubOp::SendP2p(u, to)),
        3 => u.clone().prop_map(HubOp::Connect),
        1 => u.clone().prop_map(HubOp::Disconnect),
        1 => u.clone().prop_map(HubOp::Relogin),
        1 => u.clone().prop_map(HubOp::Logout),
        3 => (u, 1usize..5).prop_map(|(u, n)| HubOp::Drain(u, n)),
        1 => (0u64..600).prop_map(HubOp::Advance),
        1 => Just(HubOp::Sweep),
    ]
}

/// A down frame as the recipient sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Down {
    Message {
        id: u64,
        from: String,
        to: Vec<String>,
        topic: Option<String>,
    },
    System {
        kind: String,
        topic: String,
    },
}

fn parse_down(frame: &Utf8Bytes) -> Down {
    let v: Value = serde_json::from_str(frame.as_str()).expect("down frames are JSON");
    let text = |key: &str| v[key].as_str().map(str::to_owned);
    match v["message-type"].as_str() {
        Some("message") => {
            assert_eq!(v["content-type"], TEXT_PLAIN);
            assert!(v["sent-at"].is_u64(), "R20: sent-at");
            Down::Message {
                id: v["id"].as_u64().expect("R20: id"),
                from: text("from").expect("from"),
                to: v["to"]
                    .as_array()
                    .expect("to")
                    .iter()
                    .map(|n| n.as_str().expect("a name").to_owned())
                    .collect(),
                topic: text("topic"),
            }
        }
        Some("system") => {
            assert_eq!(v["content-type"], "application/json");
            Down::System {
                kind: text("topic").expect("system topic"),
                topic: v["content"]["topic"]
                    .as_str()
                    .expect("content.topic")
                    .to_owned(),
            }
        }
        other => panic!("unexpected frame type {other:?}: {frame}"),
    }
}

/// A frame the model expects in a user's queue.
#[derive(Debug, Clone)]
struct Expected {
    down: Down,
    expires_ms: u64,
    /// The topic incarnation a message belongs to: deleting it purges it.
    incarnation: Option<u64>,
}

/// The model's view of one user.
struct ModelUser {
    name: Name,
    /// `None` after a logout.
    sid: Option<String>,
    session: Session,
    conn: Option<std::sync::Arc<Conn>>,
    queue: VecDeque<Expected>,
}

struct ModelTopic {
    incarnation: u64,
    members: Vec<usize>,
}

/// The bounds of R26 under test: offline messages kept per user, and frames
/// a socket may have unwritten before it is closed with 4004.
#[derive(Debug, Clone, Copy)]
struct Caps {
    per_user: usize,
    send_queue: usize,
}

fn caps() -> impl Strategy<Value = Caps> {
    prop_oneof![
        // The defaults: never reached here.
        Just(Caps {
            per_user: 1000,
            send_queue: 1024
        }),
        (1usize..4, 1usize..4).prop_map(|(per_user, send_queue)| Caps {
            per_user,
            send_queue
        }),
    ]
}

struct HubModel {
    hub: Hub,
    caps: Caps,
    users: Vec<ModelUser>,
    topics: Vec<Option<ModelTopic>>,
    incarnations: u64,
    now_ms: u64,
    slow_closes: u64,
    dropped_user_cap: u64,
}

fn name(text: &str) -> Name {
    Name::parse(text).expect("valid name")
}

fn outgoing(from: &Name, to: &[usize], topic: Option<String>) -> Outgoing {
    let up = UpMessage {
        message_type: MESSAGE.into(),
        from: from.to_string(),
        to: to.iter().map(|&i| user(i)).collect(),
        topic,
        content_type: TEXT_PLAIN.into(),
        content: "hello".into(),
    };
    let limits = MessageLimits {
        max_content_bytes: 1024,
        max_to: 16,
    };
    Outgoing::parse(up, from, limits).expect("a valid message")
}

impl HubModel {
    fn new(fanout_chunk: usize, caps: Caps) -> Self {
        let mut cfg = Config::default();
        cfg.offline.ttl = Duration::from_millis(TTL_MS);
        cfg.limits.fanout_chunk = fanout_chunk;
        cfg.offline.max_messages_per_user = caps.per_user;
        cfg.limits.send_queue_frames = caps.send_queue;
        let hub = Hub::new(cfg, CancellationToken::new());
        let users = (0..USERS)
            .map(|i| {
                let name = name(&user(i));
                let sid = hub.login(&name).expect("login");
                let session = hub.authenticate(&sid).expect("session");
                ModelUser {
                    name,
                    sid: Some(sid),
                    session,
                    conn: None,
                    queue: VecDeque::new(),
                }
            })
            .collect();
        Self {
            hub,
            caps,
            users,
            topics: (0..TOPICS).map(|_| None).collect(),
            incarnations: 0,
            now_ms: 0,
            slow_closes: 0,
            dropped_user_cap: 0,
        }
    }

    /// What the hub does to a mailbox whenever it checks expiry.
    fn drop_expired(&mut self, u: usize) {
        let now = self.now_ms;
        self.users[u].queue.retain(|e| e.expires_ms > now);
    }

    /// Offline, a user keeps at most `per_user` messages: the oldest go (R26).
    fn trim(&mut self, u: usize) {
        while self.users[u].queue.len() > self.caps.per_user {
            self.users[u].queue.pop_front();
            self.dropped_user_cap += 1;
        }
    }

    /// The socket goes away (closed, replaced, logged out, too slow);
    /// expired messages go with it, the rest stays queued offline, trimmed
    /// to the per-user cap.
    fn detach(&mut self, u: usize, code: Option<u16>) {
        if let Some(conn) = self.users[u].conn.take() {
            self.drop_expired(u);
            self.trim(u);
            assert_eq!(conn.close_code(), code, "close code of {}", user(u));
            let mut out = Vec::new();
            assert!(
                !self.hub.take(&conn, 10, &mut out) && out.is_empty(),
                "a detached socket gets nothing more"
            );
        }
    }

    /// A frame for user `u`: into its socket's queue if that keeps up, else
    /// the socket is closed with 4004 and the frame, with everything the
    /// socket had not written, is kept offline (R25, R26).
    fn push(&mut self, u: usize, down: Down, incarnation: Option<u64>) {
        let expected = Expected {
            down,
            expires_ms: self.now_ms + TTL_MS,
            incarnation,
        };
        if self.users[u].conn.is_some() {
            if self.users[u].queue.len() < self.caps.send_queue {
                self.users[u].queue.push_back(expected);
                return;
            }
            self.slow_closes += 1;
            self.detach(u, Some(close::SLOW));
        }
        self.users[u].queue.push_back(expected);
        self.trim(u);
    }

    async fn apply(&mut self, op: HubOp) {
        match op {
            HubOp::Create(t) => {
                let result = self.hub.create_topic(&name(&topic(t)));
                assert_eq!(result.is_ok(), self.topics[t].is_none(), "R11");
                if self.topics[t].is_none() {
                    self.incarnations += 1;
                    self.topics[t] = Some(ModelTopic {
                        incarnation: self.incarnations,
                        members: Vec::new(),
                    });
                }
            }
            HubOp::Delete(t) => {
                let result = self.hub.delete_topic(&name(&topic(t)));
                let Some(gone) = self.topics[t].take() else {
                    assert!(result.is_err(), "R13: 404 for a missing topic");
                    return;
                };
                result.expect("R13: deleting an existing topic");
                // Every queued message of the topic goes, for everyone.
                for m in &mut self.users {
                    m.queue.retain(|e| e.incarnation != Some(gone.incarnation));
                }
                for u in gone.members {
                    let down = Down::System {
                        kind: "__topic_is_deleted__".into(),
                        topic: topic(t),
                    };
                    self.push(u, down, None);
                }
            }
            HubOp::Join(u, t) => {
                let result = self.hub.join(&self.users[u].session, &name(&topic(t)));
                match &mut self.topics[t] {
                    None => assert!(result.is_err(), "R12: 404"),
                    Some(topic) => {
                        result.expect("R12: join");
                        if !topic.members.contains(&u) {
                            topic.members.push(u);
                        }
                    }
                }
            }
            HubOp::Quit(u, t) => {
                let result = self.hub.quit(&self.users[u].session, &name(&topic(t)));
                match &mut self.topics[t] {
                    None => assert!(result.is_err(), "R12: 404"),
                    Some(topic) => {
                        result.expect("R12: quitting is always fine");
                        topic.members.retain(|&m| m != u);
                    }
                }
            }
            HubOp::SendTopic(from, t, mentions) => {
                if self.users[from].sid.is_none() {
                    return; // Logged out: the HTTP layer answers 401.
                }
                let msg = outgoing(&self.users[from].name, &mentions, Some(topic(t)));
                let to: Vec<String> = msg.to.iter().map(Name::to_string).collect();
                let result = self.hub.send(&self.users[from].session, msg).await;
                let Some(state) = &mut self.topics[t] else {
                    assert!(result.is_err(), "R17: 404");
                    // R17: the sender's socket is told; nothing is forwarded.
                    if self.users[from].conn.is_some() {
                        let down = Down::System {
                            kind: "__topic_not_found__".into(),
                            topic: topic(t),
                        };
                        self.push(from, down, None);
                    }
                    return;
                };
                let receipt = result.expect("R19: accepted");
                // R18: the sender and the mentioned join; everyone but the
                // sender receives it, with `to` as sent.
                for u in std::iter::once(from).chain(mentions) {
                    if !state.members.contains(&u) {
                        state.members.push(u);
                    }
                }
                let incarnation = state.incarnation;
                let recipients: Vec<usize> = state
                    .members
                    .iter()
                    .copied()
                    .filter(|&m| m != from)
                    .collect();
                for u in recipients {
                    let down = Down::Message {
                        id: receipt.id,
                        from: user(from),
                        to: to.clone(),
                        topic: Some(topic(t)),
                    };
                    self.push(u, down, Some(incarnation));
                }
            }
            HubOp::SendP2p(from, to) => {
                if self.users[from].sid.is_none() || to.is_empty() {
                    return;
                }
                let msg = outgoing(&self.users[from].name, &to, None);
                let receipt = self
                    .hub
                    .send(&self.users[from].session, msg)
                    .await
                    .expect("R16: accepted");
                // R16: each recipient once, seeing only itself in `to`.
                let mut seen = Vec::new();
                for u in to {
                    if seen.contains(&u) {
                        continue;
                    }
                    seen.push(u);
                    let down = Down::Message {
                        id: receipt.id,
                        from: user(from),
                        to: vec![user(u)],
                        topic: None,
                    };
                    self.push(u, down, None);
                }
            }
            HubOp::Connect(u) => {
                let Some(sid) = self.users[u].sid.clone() else {
                    return;
                };
                let conn = self.hub.connect(&sid).expect("R21: a current sid connects");
                // R21: a second socket replaces the first.
                self.detach(u, Some(close::REPLACED));
                // R25: expired offline messages are never delivered.
                self.drop_expired(u);
                self.users[u].conn = Some(conn);
            }
            HubOp::Disconnect(u) => {
                if let Some(conn) = self.users[u].conn.clone() {
                    self.hub.socket_ended(&conn);
                    self.detach(u, None);
                }
            }
            HubOp::Relogin(u) => {
                let old = self.users[u].sid.clone();
                let sid = self.hub.login(&self.users[u].name).expect("login");
                // R7: the old session is revoked and its socket closed with 4001.
                self.detach(u, Some(close::REPLACED));
                if let Some(old) = old {
                    assert!(self.hub.authenticate(&old).is_none(), "R7: old sid is 401");
                    assert!(
                        self.hub.connect(&old).is_none(),
                        "R7: old sid cannot connect"
                    );
                }
                self.users[u].session = self.hub.authenticate(&sid).expect("session");
                self.users[u].sid = Some(sid);
            }
            HubOp::Logout(u) => {
                if self.users[u].sid.is_none() {
                    return;
                }
                self.hub.logout(&self.users[u].session);
                // R8: revoked, socket closed with 4002.
                self.detach(u, Some(close::LOGGED_OUT));
                let sid = self.users[u].sid.take().expect("logged in");
                assert!(self.hub.authenticate(&sid).is_none(), "R8: sid revoked");
                assert!(self.hub.connect(&sid).is_none(), "R8");
            }
            HubOp::Drain(u, max) => {
                let Some(conn) = self.users[u].conn.clone() else {
                    return;
                };
                self.drain(u, &conn, max);
            }
            HubOp::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(ms)).await;
                self.now_ms += ms;
            }
            HubOp::Sweep => {
                self.hub.sweep();
                for u in 0..USERS {
                    if self.users[u].conn.is_none() {
                        self.drop_expired(u);
                    }
                }
            }
        }
    }

    /// Takes up to `max` frames from the socket: exactly the oldest expected
    /// ones, in order, each once (R19, R25).
    fn drain(&mut self, u: usize, conn: &Conn, max: usize) {
        let mut out = Vec::new();
        assert!(self.hub.take(conn, max, &mut out), "the socket is attached");
        let got: Vec<Down> = out.iter().map(parse_down).collect();
        let queue = &mut self.users[u].queue;
        let want: Vec<Down> = (0..max.min(queue.len()))
            .filter_map(|_| queue.pop_front())
            .map(|e| e.down)
            .collect();
        assert_eq!(got, want, "frames delivered to {}", user(u));
    }

    /// Cross-checks what the hub reports against the model after every step.
    fn check(&self) {
        let mut offline_pending = false;
        for m in &self.users {
            assert_eq!(
                self.hub.queued(&m.name),
                m.queue.len(),
                "queued for {}",
                m.name
            );
            offline_pending |= m.conn.is_none() && !m.queue.is_empty();
        }
        // The global offline byte count (R26) follows the mailboxes: zero
        // exactly when no user without a socket has anything queued.
        assert_eq!(
            self.hub.offline_bytes() > 0,
            offline_pending,
            "offline bytes {}",
            self.hub.offline_bytes()
        );
        let mut topics: Vec<String> = (0..TOPICS)
            .filter(|&t| self.topics[t].is_some())
            .map(topic)
            .collect();
        topics.sort();
        assert_eq!(self.hub.topics(), topics, "R10");
        let stats = self.hub.stats();
        assert_eq!(stats.slow_closes.load(Relaxed), self.slow_closes, "4004s");
        assert_eq!(
            stats.dropped_user_cap.load(Relaxed),
            self.dropped_user_cap,
            "drops at the per-user cap are counted"
        );
    }

    /// Everyone comes back and reads everything: what is left is exactly the
    /// model's queue, so every accepted message reached each of its
    /// recipients exactly once, or was dropped by a rule (R13, R25).
    fn finish(&mut self) {
        for u in 0..USERS {
            if self.users[u].sid.is_none() {
                let sid = self.hub.login(&self.users[u].name).expect("login");
                self.users[u].session = self.hub.authenticate(&sid).expect("session");
                self.users[u].sid = Some(sid);
            }
            let sid = self.users[u].sid.clone().expect("logged in");
            let conn = self.hub.connect(&sid).expect("connect");
            self.detach(u, Some(close::REPLACED));
            self.drop_expired(u);
            self.users[u].conn = Some(conn.clone());
            self.drain(u, &conn, usize::MAX);
            assert!(self.users[u].queue.is_empty());
        }
        self.check();
        assert_eq!(self.hub.offline_bytes(), 0);
    }
}

fn check_hub(fanout_chunk: usize, caps: Caps, ops: Vec<HubOp>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut model = HubModel::new(fanout_chunk, caps);
        for op in ops {
            model.apply(op).await;
            model.check();
        }
        model.finish();
    });
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn hub_delivers_to_exactly_the_right_users(
        // 1 and 2 split fan-outs over tasks (`limits.fanout_chunk`).
        fanout_chunk in prop_oneof![Just(1usize), Just(2), Just(2048)],
        caps in caps(),
        ops in proptest::collection::vec(hub_op(), 1..80),
    ) {
        check_hub(fanout_chunk, caps, ops);
    }
}

#[test]
fn a_mentioned_user_who_quit_hears_no_more() {
    // R12, R18 spelled out: after quitting, only a new mention brings a user back.
    check_hub(
        2048,
        Caps {
            per_user: 1000,
            send_queue: 1024,
        },
        vec![
            HubOp::Create(0),
            HubOp::SendTopic(0, 0, vec![1, 2]),
            HubOp::Quit(1, 0),
            HubOp::SendTopic(0, 0, vec![]),
            HubOp::SendTopic(2, 0, vec![1]),
            HubOp::Connect(1),
            HubOp::Drain(1, 10),
            HubOp::Delete(0),
            HubOp::Drain(1, 10),
        ],
    );
}

#[test]
fn a_slow_socket_keeps_what_it_did_not_write() {
    // R26 spelled out: a full send queue closes the socket with 4004; the
    // unwritten frames and the one that did not fit wait offline, the
    // oldest dropped beyond the per-user cap.
    check_hub(
        2048,
        Caps {
            per_user: 3,
            send_queue: 2,
        },
        vec![
            HubOp::Connect(1),
            HubOp::SendP2p(0, vec![1]),
            HubOp::SendP2p(0, vec![1]),
            HubOp::SendP2p(0, vec![1]),
            HubOp::SendP2p(2, vec![1]),
            HubOp::Connect(1),
            HubOp::Drain(1, 10),
        ],
    );
}
