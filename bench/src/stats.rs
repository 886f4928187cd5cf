//! What a run counts, shared by every socket and sender task.
//!
//! Hot counters live in shards (one `std::sync::Mutex` each, picked by socket
//! index) so that 10,000 receiving sockets on two cores do not all bounce one
//! cache line; a lock is held for a handful of additions and never across
//! `.await`. Rare events (pongs, closes) are plain atomics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;

const SHARDS: usize = 64;
/// Latencies are recorded in microseconds, up to an hour, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
pub fn new_hist() -> Histogram<u64> {
    #[allow(clippy::unwrap_used)] // constant, valid bounds
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).unwrap()
}

/// Receive-side counters of one shard.
#[derive(Debug)]
pub struct Shard {
    /// Send→receipt latency of every chat frame (µs).
    pub hist: Histogram<u64>,
    /// Chat frames received (all, duplicates included).
    pub delivered: u64,
    /// First receipts of an expected (message, recipient) pair.
    pub unique: u64,
    pub dups: u64,
    /// A frame for someone else, or the sender's own copy.
    pub misdelivered: u64,
    /// From one sender to one recipient, a message arrived after a later one (R19).
    pub reordered: u64,
    /// Latest receipt time (µs on [`crate::sys::now_us`]).
    pub last_us: u64,
}

/// Counters shared by every task of one scenario.
#[derive(Debug)]
pub struct Shared {
    shards: Vec<Mutex<Shard>>,
    /// Per message sequence number: the largest send→receipt latency seen, i.e.
    /// the time to its last recipient (µs).
    pub msg_max_us: Vec<AtomicU32>,
    /// Per user: accepted messages that user must receive (p2p, offline).
    pub expected_per_user: Vec<AtomicU32>,
    /// Per user: accepted messages that user sent (fanout excludes the sender).
    pub sent_per_user: Vec<AtomicU32>,

    pub open: AtomicU64,
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub verified: AtomicU64,
    pub reconnects: AtomicU64,
    pub pongs: AtomicU64,
    pub acks_sent: AtomicU64,
    pub pings_sent: AtomicU64,
    pub ping_acks: AtomicU64,
    pub system_frames: AtomicU64,
    pub foreign_frames: AtomicU64,
    pub closes: Mutex<BTreeMap<u16, u64>>,
    pub errors: Mutex<Vec<String>>,

    pub attempted: AtomicU64,
    pub accepted: AtomicU64,
    pub expected: AtomicU64,
    pub send_errors: Mutex<BTreeMap<String, u64>>,
    /// First send and last accepted answer (µs).
    pub first_send_us: AtomicU64,
    pub last_accept_us: AtomicU64,
}

impl Shared {
    pub fn new(users: usize, max_messages: u64) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        hist: new_hist(),
                        delivered: 0,
                        unique: 0,
                        dups: 0,
                        misdelivered: 0,
                        reordered: 0,
                        last_us: 0,
                    })
                })
                .collect(),
            msg_max_us: (0..max_messages).map(|_| AtomicU32::new(0)).collect(),
            expected_per_user: (0..users).map(|_| AtomicU32::new(0)).collect(),
            sent_per_user: (0..users).map(|_| AtomicU32::new(0)).collect(),
            open: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            acks_sent: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
            ping_acks: AtomicU64::new(0),
            system_frames: AtomicU64::new(0),
            foreign_frames: AtomicU64::new(0),
            closes: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(Vec::new()),
            attempted: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            send_errors: Mutex::new(BTreeMap::new()),
            first_send_us: AtomicU64::new(u64::MAX),
            last_accept_us: AtomicU64::new(0),
        }
    }

    /// The shard for socket `idx`.
    pub fn shard(&self, idx: u32) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[idx as usize % SHARDS])
    }

    /// Records the latency of a first receipt of message `seq`.
    pub fn note_msg_latency(&self, seq: u64, lat_us: u64) {
        if let Some(slot) = self.msg_max_us.get(seq as usize) {
            let lat = lat_us.min(u32::MAX as u64) as u32;
            if slot.load(Relaxed) < lat {
                slot.fetch_max(lat, Relaxed);
            }
        }
    }

    /// Sum of receive counters (for progress and the report).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.shards {
            let s = lock(s);
            t.delivered += s.delivered;
            t.unique += s.unique;
            t.dups += s.dups;
            t.misdelivered += s.misdelivered;
            t.reordered += s.reordered;
            t.last_us = t.last_us.max(s.last_us);
        }
        t
    }

    /// All receive latencies merged.
    pub fn latency(&self) -> Histogram<u64> {
        let mut h = new_hist();
        for s in &self.shards {
            let _ = h.add(&lock(s).hist);
        }
        h
    }

    /// Time-to-last-recipient of every message that reached anyone.
    pub fn last_recipient_latency(&self) -> Histogram<u64> {
        let mut h = new_hist();
        for slot in &self.msg_max_us {
            let v = slot.load(Relaxed);
            if v > 0 {
                let _ = h.record(v as u64);
            }
        }
        h
    }

    pub fn note_close(&self, code: u16) {
        *lock(&self.closes).entry(code).or_default() += 1;
    }

    pub fn note_error(&self, what: String) {
        let mut e = lock(&self.errors);
        if e.len() < 20 {
            e.push(what);
        }
    }

    pub fn note_send_error(&self, what: String) {
        *lock(&self.send_errors).entry(what).or_default() += 1;
    }
}

/// Summed receive counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub delivered: u64,
    pub unique: u64,
    pub dups: u64,
    pub misdelivered: u64,
    pub reordered: u64,
    pub last_us: u64,
}

/// Locks, ignoring poison: a panicked task must not hide the numbers.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A growable bit set of message sequence numbers one socket has received.
#[derive(Debug, Default)]
pub struct SeqSet(Vec<u64>);

impl SeqSet {
    /// Inserts `seq`; false if it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        let fresh = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        fresh
    }
}
