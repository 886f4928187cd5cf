//! Abuse limits at the edge: token buckets for logins (per client IP) and
//! messages (per user), and counts of open WebSockets (in all and per IP).
//!
//! This is HTTP-edge protection, separate from message governance in the
//! hub: it decides whether a request may proceed, never what happens to a
//! message. Its maps are bounded: buckets that have refilled completely carry
//! no information and are swept, and socket counts leave with their sockets.

use std::{
    hash::Hash,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use dashmap::DashMap;
use tokio::time::Instant;

use crate::{config::Config, domain::Name};

/// Counters of refusals, for `/metrics`.
#[derive(Debug, Default)]
pub struct GuardStats {
    pub limited_logins: AtomicU64,
    pub limited_messages: AtomicU64,
    pub refused_total: AtomicU64,
    pub refused_per_ip: AtomicU64,
}

/// Why a WebSocket handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRefusal {
    /// `limits.max_sockets` reached (503).
    ServerFull,
    /// `limits.max_sockets_per_ip` reached for this IP (429).
    TooManyFromIp,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per key. `rate == 0` means unlimited.
#[derive(Debug)]
struct Limiter<K: Hash + Eq> {
    rate: f64,
    burst: f64,
    buckets: DashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: DashMap::new(),
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    fn check(&self, key: &K) -> Result<(), Duration> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Forgets buckets that have refilled: they would start full anyway.
    fn sweep(&self) {
        if self.rate == 0.0 {
            return;
        }
        let now = Instant::now();
        let full_after = self.burst / self.rate;
        self.buckets
            .retain(|_, b| now.duration_since(b.updated).as_secs_f64() < full_after);
    }
}

/// The edge limits, shared by all requests.
#[derive(Debug)]
pub struct Guard {
    logins: Limiter<IpAddr>,
    messages: Limiter<Name>,
    max_sockets: usize,
    max_sockets_per_ip: usize,
    sockets: Arc<SocketCounts>,
    stats: GuardStats,
}

#[derive(Debug, Default)]
struct SocketCounts {
    total: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
}

/// Holds one socket's place in the counts; released on drop, whatever way the
/// socket ends.
#[derive(Debug)]
pub struct SocketPermit {
    ip: IpAddr,
    counts: Arc<SocketCounts>,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Relaxed);
        self.counts.per_ip.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

impl Guard {
    pub fn new(cfg: &Config) -> Self {
        let r = &cfg.rate_limits;
        Self {
            logins: Limiter::new(r.logins_per_second, r.login_burst),
            messages: Limiter::new(r.messages_per_second, r.message_burst),
            max_sockets: cfg.limits.max_sockets,
            max_sockets_per_ip: cfg.limits.max_sockets_per_ip,
            sockets: Arc::default(),
            stats: GuardStats::default(),
        }
    }

    pub fn stats(&self) -> &GuardStats {
        &self.stats
    }

    /// A login attempt from `ip`; `Err(retry_after)` when over the limit.
    pub fn login(&self, ip: IpAddr) -> Result<(), Duration> {
        self.logins.check(&ip).inspect_err(|_| {
            self.stats.limited_logins.fetch_add(1, Relaxed);
        })
    }

    /// A message from `user`; `Err(retry_after)` when over the limit.
    pub fn message(&self, user: &Name) -> Result<(), Duration> {
        self.messages.check(user).inspect_err(|_| {
            self.stats.limited_messages.fetch_add(1, Relaxed);
        })
    }

    /// Reserves a place for a new WebSocket from `ip`.
    pub fn socket(&self, ip: IpAddr) -> Result<SocketPermit, SocketRefusal> {
        let counts = &self.sockets;
        if counts.total.fetch_add(1, Relaxed) >= self.max_sockets {
            counts.total.fetch_sub(1, Relaxed);
            self.stats.refused_total.fetch_add(1, Relaxed);
            return Err(SocketRefusal::ServerFull);
        }
        let mut n = counts.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_sockets_per_ip {
            drop(n);
            counts.total.fetch_sub(1, Relaxed);
            counts.per_ip.remove_if(&ip, |_, n| *n == 0);
            self.stats.refused_per_ip.fetch_add(1, Relaxed);
            return Err(SocketRefusal::TooManyFromIp);
        }
        *n += 1;
        Ok(SocketPermit {
            ip,
            counts: Arc::clone(counts),
        })
    }

    /// Drops state that carries no information; called periodically.
    pub fn sweep(&self) {
        self.logins.sweep();
        self.messages.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(f: impl FnOnce(&mut Config)) -> Guard {
        let mut c = Config::default();
        f(&mut c);
        Guard::new(&c)
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_allow_a_burst_then_the_rate() {
        let g = guard(|c| {
            c.rate_limits.logins_per_second = 2.0;
            c.rate_limits.login_burst = 3;
        });
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(g.login(ip).is_ok());
        }
        let wait = g.login(ip).expect_err("burst spent");
        assert_eq!(wait, Duration::from_millis(500));
        // Another IP has its own bucket.
        assert!(g.login(IpAddr::from([10, 0, 0, 2])).is_ok());
        tokio::time::advance(wait).await;
        assert!(g.login(ip).is_ok());
        assert_eq!(g.stats().limited_logins.load(Relaxed), 1);
        // Refilled buckets are forgotten.
        tokio::time::advance(Duration::from_secs(2)).await;
        g.sweep();
        assert!(g.logins.buckets.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_rate_is_unlimited() {
        let g = guard(|c| c.rate_limits.messages_per_second = 0.0);
        let alice = Name::parse("alice").expect("name");
        for _ in 0..10_000 {
            assert!(g.message(&alice).is_ok());
        }
        assert!(g.messages.buckets.is_empty());
    }

    #[test]
    fn socket_permits_count_and_release() {
        let g = guard(|c| {
            c.limits.max_sockets = 3;
            c.limits.max_sockets_per_ip = 2;
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let p1 = g.socket(a).expect("first");
        let _p2 = g.socket(a).expect("second");
        assert_eq!(
            g.socket(a).expect_err("per ip"),
            SocketRefusal::TooManyFromIp
        );
        let _p3 = g.socket(b).expect("other ip");
        assert_eq!(g.socket(b).expect_err("total"), SocketRefusal::ServerFull);
        drop(p1);
        let _p4 = g.socket(b).expect("a place was freed");
        assert_eq!(g.sockets.total.load(Relaxed), 3);
        assert_eq!(g.sockets.per_ip.get(&a).map(|n| *n), Some(1));
    }
}
