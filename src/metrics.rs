//! Prometheus text exposition of the server's counters and histograms.
//!
//! Counters live where they are counted (the hub's [`Stats`](crate::hub::Stats),
//! the edge [`Guard`](crate::guard::Guard), [`HttpMetrics`] here); this module
//! only owns the histogram type, the per-route HTTP figures and the renderer.
//! Everything is atomics: recording never takes a lock on a hot path except
//! the first request of a new route.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use dashmap::DashMap;

use crate::{guard::Guard, hub::Hub};

/// Upper bounds in seconds, from 100 µs to 10 s.
const BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Per-route request latency, keyed by route template and status (bounded:
/// the router's routes plus `unmatched`, times the statuses they answer).
/// Looked up by `&str`, so recording allocates only the first time.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: DashMap<String, DashMap<u16, Histogram>>,
}

impl HttpMetrics {
    pub fn observe(&self, route: &str, status: u16, d: Duration) {
        if let Some(statuses) = self.routes.get(route) {
            if let Some(h) = statuses.get(&status) {
                h.observe(d);
                return;
            }
            statuses.entry(status).or_default().observe(d);
            return;
        }
        self.routes
            .entry(route.to_owned())
            .or_default()
            .entry(status)
            .or_default()
            .observe(d);
    }
}

fn counter(out: &mut String, name: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// Renders every metric in the Prometheus text format.
pub fn render(hub: &Hub, guard: &Guard, http: &HttpMetrics) -> String {
    let s = hub.stats();
    let v = |a: &AtomicU64| a.load(Relaxed);
    let mut out = String::with_capacity(8192);
    gauge(
        &mut out,
        "huayi_sockets_open",
        "Open WebSockets.",
        s.sockets_open.load(Relaxed) as u64,
    );
    gauge(
        &mut out,
        "huayi_users_online",
        "Users online (R23).",
        hub.online_count() as u64,
    );
    gauge(
        &mut out,
        "huayi_users_known",
        "Users kept in memory.",
        hub.user_count() as u64,
    );
    gauge(
        &mut out,
        "huayi_offline_bytes",
        "Bytes held in offline stores.",
        hub.offline_bytes() as u64,
    );
    counter(
        &mut out,
        "huayi_logins_total",
        "Successful logins.",
        &[("", v(&s.logins))],
    );
    counter(
        &mut out,
        "huayi_messages_accepted_total",
        "Messages accepted by POST /api/messages.",
        &[("", v(&s.messages_accepted))],
    );
    counter(
        &mut out,
        "huayi_frames_delivered_total",
        "Frames handed to socket writers.",
        &[("", v(&s.frames_written))],
    );
    counter(
        &mut out,
        "huayi_messages_queued_offline_total",
        "Messages stored for a recipient without a socket.",
        &[("", v(&s.queued_offline))],
    );
    counter(
        &mut out,
        "huayi_messages_expired_total",
        "Offline messages dropped at their TTL.",
        &[("", v(&s.expired))],
    );
    counter(
        &mut out,
        "huayi_messages_dropped_total",
        "Queued messages dropped before delivery, by reason.",
        &[
            ("{reason=\"user_cap\"}", v(&s.dropped_user_cap)),
            ("{reason=\"global_cap\"}", v(&s.dropped_global_cap)),
            ("{reason=\"topic_deleted\"}", v(&s.dropped_topic_deleted)),
        ],
    );
    counter(
        &mut out,
        "huayi_send_queue_overflows_total",
        "Sockets closed with 4004 for not keeping up.",
        &[("", v(&s.slow_closes))],
    );
    let g = guard.stats();
    counter(
        &mut out,
        "huayi_rate_limited_total",
        "Requests refused with 429 by a rate limit, by limit.",
        &[
            ("{limit=\"login\"}", v(&g.limited_logins)),
            ("{limit=\"message\"}", v(&g.limited_messages)),
        ],
    );
    counter(
        &mut out,
        "huayi_sockets_refused_total",
        "WebSocket handshakes refused by a connection limit, by limit.",
        &[
            ("{limit=\"total\"}", v(&g.refused_total)),
            ("{limit=\"per_ip\"}", v(&g.refused_per_ip)),
        ],
    );
    let name = "huayi_delivery_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From acceptance to the socket writer taking the message.\n# TYPE {name} histogram"
    );
    s.delivery_latency.render(&mut out, name, "");
    let name = "huayi_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} HTTP request latency by route and status.\n# TYPE {name} histogram"
    );
    let mut routes: Vec<String> = http.routes.iter().map(|e| e.key().clone()).collect();
    routes.sort();
    for route in routes {
        let Some(statuses) = http.routes.get(&route) else {
            continue;
        };
        let mut codes: Vec<u16> = statuses.iter().map(|e| *e.key()).collect();
        codes.sort_unstable();
        for code in codes {
            if let Some(h) = statuses.get(&code) {
                let labels = format!("route=\"{route}\",status=\"{code}\"");
                h.render(&mut out, name, &labels);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{} 3\n"), "{out}");
    }
}
