//! One user's queue of serialized down frames.
//!
//! The same queue serves both states of a user: while a socket is attached it
//! is that socket's send queue (the writer task takes from the front); while
//! none is, it is the user's offline store (R25). Because there is only one
//! queue, the hand-over between the two states can neither reorder nor
//! duplicate a message: a backlog is simply what the next socket writes first,
//! and what a slow socket had not written is simply what stays (R26).
//!
//! This is plain data. Locking, global accounting and the choice of limits
//! belong to the hub, which owns one `Mailbox` per user behind that user's
//! mutex.

use std::collections::VecDeque;

use axum::extract::ws::Utf8Bytes;
use tokio::time::Instant;

/// One queued frame.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The serialized JSON text, shared with every other recipient of the same
    /// topic message.
    pub frame: Utf8Bytes,
    /// When it stops being deliverable (acceptance + `offline.ttl`).
    pub expires: Instant,
    /// The topic it belongs to (its creation id), so a topic deletion can purge it.
    pub topic: Option<u64>,
    /// Heartbeat answers: meaningful only to the socket they were queued for,
    /// never kept offline.
    pub control: bool,
}

impl Entry {
    fn cost(&self) -> usize {
        self.frame.len()
    }
}

/// What an operation removed, for the hub's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub messages: usize,
    pub bytes: usize,
}

impl Removed {
    fn add(&mut self, entry: &Entry) {
        if !entry.control {
            self.messages += 1;
        }
        self.bytes += entry.cost();
    }
}

/// An entry with its place in line, so a writer can remove exactly what it
/// wrote even if other entries were dropped meanwhile.
#[derive(Debug)]
struct Queued {
    seq: u64,
    entry: Entry,
}

/// A FIFO of frames with its byte total.
#[derive(Debug, Default)]
pub struct Mailbox {
    entries: VecDeque<Queued>,
    bytes: usize,
    next_seq: u64,
}

impl Mailbox {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends at the back.
    pub fn push(&mut self, entry: Entry) {
        self.bytes += entry.cost();
        self.next_seq += 1;
        self.entries.push_back(Queued {
            seq: self.next_seq,
            entry,
        });
    }

    /// Drops the oldest entries until at most `max_messages` entries and
    /// `max_bytes` bytes remain.
    pub fn trim(&mut self, max_messages: usize, max_bytes: usize) -> Removed {
        let mut removed = Removed::default();
        while self.entries.len() > max_messages || self.bytes > max_bytes {
            match self.entries.pop_front() {
                Some(q) => {
                    self.bytes -= q.entry.cost();
                    removed.add(&q.entry);
                }
                None => break,
            }
        }
        removed
    }

    /// Drops the single oldest entry (global eviction).
    pub fn pop_oldest(&mut self) -> Removed {
        self.trim(self.entries.len().saturating_sub(1), usize::MAX)
    }

    /// Drops every entry expired at `now`.
    pub fn drop_expired(&mut self, now: Instant) -> Removed {
        self.retain(|e| e.expires > now)
    }

    /// Drops every entry of the topic with this creation id (R13).
    pub fn drop_topic(&mut self, topic: u64) -> Removed {
        self.retain(|e| e.topic != Some(topic))
    }

    /// Drops heartbeat frames: they mean nothing to a later socket.
    pub fn drop_control(&mut self) -> Removed {
        self.retain(|e| !e.control)
    }

    /// Expiry of the oldest entry, if any.
    pub fn oldest_expiry(&self) -> Option<Instant> {
        self.entries.front().map(|q| q.entry.expires)
    }

    /// Copies up to `max` frames from the front into `out` (cheap: the bytes
    /// are shared) without removing them, and returns the mark to [`commit`]
    /// once they are written. Until then they still count as queued, and stay
    /// queued if the writer never gets them out.
    ///
    /// [`commit`]: Mailbox::commit
    pub fn peek(&self, max: usize, out: &mut Vec<Utf8Bytes>) -> u64 {
        let mut mark = 0;
        for q in self.entries.iter().take(max) {
            out.push(q.entry.frame.clone());
            mark = q.seq;
        }
        mark
    }

    /// Removes the entries up to `mark` that are still queued, calling
    /// `written` with the expiry of each message (not heartbeats).
    pub fn commit(&mut self, mark: u64, mut written: impl FnMut(Instant)) -> Removed {
        let mut removed = Removed::default();
        while self.entries.front().is_some_and(|q| q.seq <= mark) {
            if let Some(q) = self.entries.pop_front() {
                self.bytes -= q.entry.cost();
                removed.add(&q.entry);
                if !q.entry.control {
                    written(q.entry.expires);
                }
            }
        }
        if self.entries.is_empty() {
            // Most sockets are idle most of the time: give the buffer back
            // rather than keep it per socket (a malloc per burst is cheaper
            // than ~300 bytes on every idle connection).
            self.entries = VecDeque::new();
        }
        removed
    }

    /// Moves up to `max` frames from the front into `out`: [`peek`] and
    /// [`commit`] in one step.
    ///
    /// [`peek`]: Mailbox::peek
    /// [`commit`]: Mailbox::commit
    pub fn take(&mut self, max: usize, out: &mut Vec<Utf8Bytes>, written: impl FnMut(Instant)) {
        let mark = self.peek(max, out);
        self.commit(mark, written);
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) -> Removed {
        let mut removed = Removed::default();
        self.entries.retain(|q| {
            let k = keep(&q.entry);
            if !k {
                removed.add(&q.entry);
            }
            k
        });
        self.bytes -= removed.bytes;
        removed
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(text: &str, ttl: Duration, topic: Option<u64>) -> Entry {
        Entry {
            frame: text.to_owned().into(),
            expires: Instant::now() + ttl,
            topic,
            control: false,
        }
    }

    fn drain(m: &mut Mailbox) -> Vec<String> {
        let mut out = Vec::new();
        m.take(usize::MAX, &mut out, |_| {});
        out.iter().map(|f| f.as_str().to_owned()).collect()
    }

    const TTL: Duration = Duration::from_secs(600);

    #[tokio::test(start_paused = true)]
    async fn keeps_order_and_delivers_once() {
        // R25: oldest first, then forgotten.
        let mut m = Mailbox::default();
        for t in ["a", "b", "c"] {
            m.push(entry(t, TTL, None));
        }
        assert_eq!(m.bytes(), 3);
        let mut first = Vec::new();
        m.take(2, &mut first, |_| {});
        assert_eq!(first, vec!["a", "b"]);
        assert_eq!(drain(&mut m), vec!["c"]);
        assert!(m.is_empty());
        assert_eq!(m.bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn peeked_frames_stay_until_committed() {
        // R26: what a writer has not finished writing is still queued.
        let mut m = Mailbox::default();
        for t in ["a", "b", "c"] {
            m.push(entry(t, TTL, None));
        }
        let mut out = Vec::new();
        let mark = m.peek(2, &mut out);
        assert_eq!(out, vec!["a", "b"]);
        assert_eq!(m.len(), 3);
        // Meanwhile the oldest is dropped (say, by a cap): commit removes
        // only what is left of the written batch.
        m.pop_oldest();
        m.push(entry("d", TTL, None));
        let removed = m.commit(mark, |_| {});
        assert_eq!(removed.messages, 1);
        assert_eq!(drain(&mut m), vec!["c", "d"]);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_dropped() {
        // R25: kept for the TTL from acceptance, never delivered after it.
        let mut m = Mailbox::default();
        m.push(entry("old", Duration::from_secs(10), None));
        tokio::time::advance(Duration::from_secs(5)).await;
        m.push(entry("new", Duration::from_secs(10), None));
        assert_eq!(m.drop_expired(Instant::now()), Removed::default());
        tokio::time::advance(Duration::from_secs(6)).await;
        let removed = m.drop_expired(Instant::now());
        assert_eq!(
            removed,
            Removed {
                messages: 1,
                bytes: 3
            }
        );
        assert_eq!(drain(&mut m), vec!["new"]);
    }

    #[tokio::test(start_paused = true)]
    async fn caps_drop_the_oldest_first() {
        // R26
        let mut m = Mailbox::default();
        for t in ["1", "22", "333", "4444"] {
            m.push(entry(t, TTL, None));
        }
        assert_eq!(m.trim(3, usize::MAX).messages, 1);
        assert_eq!(
            m.trim(10, 7),
            Removed {
                messages: 1,
                bytes: 2
            }
        );
        assert_eq!(m.pop_oldest().messages, 1);
        assert_eq!(drain(&mut m), vec!["4444"]);
    }

    #[tokio::test(start_paused = true)]
    async fn topic_purge_and_control_frames() {
        // R13: a deleted topic's messages go; others stay in order.
        let mut m = Mailbox::default();
        m.push(entry("t1", TTL, Some(7)));
        m.push(entry("p2p", TTL, None));
        m.push(Entry {
            control: true,
            ..entry("ack", TTL, None)
        });
        m.push(entry("t2", TTL, Some(8)));
        assert_eq!(m.drop_topic(7).messages, 1);
        let removed = m.drop_control();
        assert_eq!(
            removed,
            Removed {
                messages: 0,
                bytes: 3
            }
        );
        assert_eq!(drain(&mut m), vec!["p2p", "t2"]);
    }
}
