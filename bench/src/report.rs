//! The result of one scenario: a serde struct (`--json`), a readable block,
//! a one-line summary row against the issue's targets, and an SVG of the
//! latency percentile curves.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// (percentile, ms) points for the SVG picture.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

impl Latency {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        let curve = (0..=50)
            .map(|k| {
                let p = 1.0 - 10f64.powf(-(k as f64) / 10.0);
                (p * 100.0, ms(h.value_at_quantile(p)))
            })
            .chain(std::iter::once((100.0, ms(h.max()))))
            .collect();
        Self {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            curve,
        }
    }

    fn line(&self) -> String {
        if self.samples == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {:.2} ms   p90 {:.2}   p99 {:.2}   p99.9 {:.2}   max {:.2}   ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.samples
        )
    }
}

/// Server resident memory, KiB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub before_kib: Option<u64>,
    pub logged_in_kib: Option<u64>,
    pub connected_kib: Option<u64>,
    pub end_kib: Option<u64>,
    pub peak_kib: Option<u64>,
    /// (connected − before) / sockets: session + socket cost.
    pub per_socket_kib: Option<f64>,
    /// (connected − logged in) / sockets: the socket alone.
    pub per_socket_only_kib: Option<f64>,
    /// The bench process's own RSS at the end.
    pub bench_kib: Option<u64>,
}

/// CPU seconds used during the measured phase (sockets open → end), and the
/// wall time of that phase: on a shared 2-core box this says who was busy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    pub wall_s: f64,
    pub server_s: Option<f64>,
    pub bench_s: Option<f64>,
    /// The same over the sending phase alone (p2p, fanout): is anyone saturated?
    pub send_wall_s: Option<f64>,
    pub send_server_s: Option<f64>,
    pub send_bench_s: Option<f64>,
    /// Server CPU microseconds per unique delivery (p2p, fanout, offline).
    pub server_us_per_delivery: Option<f64>,
    pub bench_us_per_delivery: Option<f64>,
}

/// One scenario's numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub label: String,
    pub users: usize,
    pub content_bytes: usize,
    pub duration_s: f64,
    pub requested_rate: Option<f64>,

    pub sockets: u64,
    pub connect_failed: u64,
    pub connect_secs: f64,
    pub connects_per_s: f64,

    pub attempted: u64,
    pub accepted: u64,
    pub send_errors: std::collections::BTreeMap<String, u64>,
    pub accepted_per_s: f64,
    pub http_latency: Latency,

    pub expected: u64,
    pub received_unique: u64,
    pub delivered_frames: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub misdelivered: u64,
    pub reordered: u64,
    pub extra: u64,
    pub users_short: u64,
    pub deliveries_per_s: f64,
    /// Slowest full second of deliveries while sending (fanout, p2p).
    pub deliveries_per_s_min_1s: Option<f64>,
    /// Offline: backlog drained per second, from first connect to last receipt.
    pub drain_per_s: Option<f64>,
    pub latency: Latency,
    /// Time from send to the last recipient of each message.
    pub latency_last_recipient: Latency,

    pub memory: Memory,
    pub cpu: Cpu,
    pub pongs: u64,
    pub pong_acks: u64,
    pub pings: u64,
    pub ping_acks: u64,
    pub verified: u64,
    pub reconnects: u64,
    pub closes: std::collections::BTreeMap<u16, u64>,
    pub system_frames: u64,
    pub foreign_frames: u64,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
    pub ok: bool,
}

fn kib(v: Option<u64>) -> String {
    v.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "?".into())
}

impl Report {
    /// The readable block printed after each scenario.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\n== {} ==", self.label);
        let _ = writeln!(
            s,
            "connect      {} sockets in {:.2} s ({:.0}/s), {} failed",
            self.sockets, self.connect_secs, self.connects_per_s, self.connect_failed
        );
        if self.attempted > 0 {
            let errs: u64 = self.send_errors.values().sum();
            let _ = writeln!(
                s,
                "sent         {} accepted of {} ({} errors), {:.0} accepted/s{}",
                self.accepted,
                self.attempted,
                errs,
                self.accepted_per_s,
                match self.requested_rate {
                    Some(r) if r > 0.0 => format!(" (asked {r:.0}/s)"),
                    _ => " (as fast as possible)".into(),
                }
            );
            let _ = writeln!(s, "http accept  {}", self.http_latency.line());
            let _ = writeln!(
                s,
                "deliveries   {} of {} expected: {} LOST, {} dup, {} misdelivered, {} reordered, {} extra",
                self.received_unique,
                self.expected,
                self.lost,
                self.duplicates,
                self.misdelivered,
                self.reordered,
                self.extra
            );
            let _ = writeln!(
                s,
                "rate         {:.0} deliveries/s{}{}",
                self.deliveries_per_s,
                self.deliveries_per_s_min_1s
                    .map(|m| format!(" (slowest 1-s window {m:.0}/s)"))
                    .unwrap_or_default(),
                self.drain_per_s
                    .map(|d| format!("; offline drain {d:.0} msg/s"))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "latency      {}", self.latency.line());
            if self.scenario == "fanout" {
                let _ = writeln!(s, "to last      {}", self.latency_last_recipient.line());
            }
        }
        let m = &self.memory;
        let _ = writeln!(
            s,
            "server RSS   before {}, logged in {}, connected {}, end {}, peak {}; {} per socket ({} socket only)",
            kib(m.before_kib),
            kib(m.logged_in_kib),
            kib(m.connected_kib),
            kib(m.end_kib),
            kib(m.peak_kib),
            m.per_socket_kib
                .map(|k| format!("{k:.2} KiB"))
                .unwrap_or_else(|| "?".into()),
            m.per_socket_only_kib
                .map(|k| format!("{k:.2} KiB"))
                .unwrap_or_else(|| "?".into()),
        );
        let _ = writeln!(
            s,
            "heartbeat    {} pongs, {} acked; {} pings, {} acked; final ping/ack {}/{}; bench RSS {}",
            self.pongs,
            self.pong_acks,
            self.pings,
            self.ping_acks,
            self.verified,
            self.sockets,
            kib(m.bench_kib)
        );
        let pct = |v: Option<f64>| {
            v.map(|c| format!("{:.0}%", 100.0 * c / self.cpu.wall_s.max(1e-9)))
                .unwrap_or_else(|| "?".into())
        };
        let _ = writeln!(
            s,
            "cpu          over {:.1} s: server {} of one core, im-bench {} (2 cores = 200%)",
            self.cpu.wall_s,
            pct(self.cpu.server_s),
            pct(self.cpu.bench_s)
        );
        if let Some(w) = self.cpu.send_wall_s {
            let p = |v: Option<f64>| {
                v.map(|c| format!("{:.0}%", 100.0 * c / w.max(1e-9)))
                    .unwrap_or_else(|| "?".into())
            };
            let _ = writeln!(
                s,
                "cpu sending  over {w:.1} s: server {}, im-bench {}",
                p(self.cpu.send_server_s),
                p(self.cpu.send_bench_s)
            );
        }
        if let (Some(a), Some(b)) = (
            self.cpu.server_us_per_delivery,
            self.cpu.bench_us_per_delivery,
        ) {
            let _ = writeln!(
                s,
                "cpu/delivery server {a:.2} µs, im-bench {b:.2} µs (CPU time, whole phase incl. sockets and heartbeats)"
            );
        }
        if !self.closes.is_empty() || self.reconnects > 0 {
            let _ = writeln!(
                s,
                "closes       {:?} (code: count), {} reconnects",
                self.closes, self.reconnects
            );
        }
        for e in self.errors.iter().take(5) {
            let _ = writeln!(s, "error        {e}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "note         {n}");
        }
        if self.ok {
            let _ = writeln!(s, "RESULT       ok");
        } else {
            for f in &self.failures {
                let _ = writeln!(s, "RESULT       FAILED: {f}");
            }
        }
        s
    }

    /// The headline number and the issue-3 target for this scenario.
    pub fn summary(&self) -> (String, String, String) {
        match self.scenario.as_str() {
            "connect" => (
                format!("{} idle sockets", self.sockets),
                format!(
                    "{} KiB/socket RSS, {:.0} connects/s",
                    self.memory
                        .per_socket_kib
                        .map(|k| format!("{k:.2}"))
                        .unwrap_or_else(|| "?".into()),
                    self.connects_per_s
                ),
                "15,000 held 60 s, ≤ 4 KiB/socket".into(),
            ),
            "fanout" => (
                format!("{} members", self.users),
                format!(
                    "{:.0} deliveries/s, p99 to last {:.1} ms",
                    self.deliveries_per_s, self.latency_last_recipient.p99_ms
                ),
                "≥ 1,000,000/s, p99 ≤ 50 ms".into(),
            ),
            "p2p" if self.requested_rate.unwrap_or(0.0) > 0.0 => (
                format!("{} users", self.users),
                format!(
                    "{:.0} msg/s, p99 {:.2} ms",
                    self.accepted_per_s, self.latency.p99_ms
                ),
                "2,000 msg/s, p99 ≤ 5 ms".into(),
            ),
            "p2p" => (
                format!("{} users", self.users),
                format!("{:.0} POST/s accepted", self.accepted_per_s),
                "≥ 30,000 POST/s".into(),
            ),
            "offline" => (
                format!("{} users", self.users),
                format!("{:.0} msg/s drained", self.drain_per_s.unwrap_or(0.0)),
                "≥ 200,000 msg/s".into(),
            ),
            _ => (String::new(), String::new(), String::new()),
        }
    }
}

/// The closing table of several scenarios.
pub fn summary_table(reports: &[Report]) -> String {
    let head = [
        "scenario",
        "size",
        "measured",
        "target (issue 3)",
        "lost",
        "result",
    ]
    .map(String::from);
    let mut rows = vec![head];
    for r in reports {
        let (size, measured, target) = r.summary();
        rows.push([
            r.scenario.clone(),
            size,
            measured,
            target,
            r.lost.to_string(),
            if r.ok { "ok" } else { "FAILED" }.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::from("\n");
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(t, w)| format!("{t}{}", " ".repeat(w - t.chars().count())))
            .collect();
        let _ = writeln!(s, "{}", cells.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(s, "{}", "-".repeat(widths.iter().sum::<usize>() + 10));
        }
    }
    s
}

/// Latency percentile curves of every scenario with samples, as an SVG:
/// x is the percentile on a log scale of 1/(1−p) (50 %, 90 %, 99 %, …), y is
/// milliseconds on a log scale.
pub fn svg(reports: &[Report]) -> String {
    let curves: Vec<(String, &Vec<(f64, f64)>)> = reports
        .iter()
        .flat_map(|r| {
            let mut v = Vec::new();
            // Offline latency is mostly the time spent offline, by design.
            if r.latency.samples > 0 && r.scenario != "offline" {
                v.push((format!("{}: each delivery", r.label), &r.latency.curve));
            }
            if r.scenario == "fanout" && r.latency_last_recipient.samples > 0 {
                v.push((
                    format!("{}: to the last member", r.label),
                    &r.latency_last_recipient.curve,
                ));
            }
            v
        })
        .collect();
    if curves.is_empty() {
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">no latency samples</text></svg>\n".into();
    }
    let (w, left, right, top, ph) = (900.0, 80.0, 30.0, 40.0, 380.0);
    let pw = w - left - right;
    let h = top + ph + 60.0 + 18.0 * curves.len() as f64;
    let xmax = 5.0; // 99.999 %
    let x_of = |p: f64| {
        let v = if p >= 100.0 {
            xmax
        } else {
            (1.0 / (1.0 - p / 100.0)).log10().min(xmax)
        };
        left + pw * v / xmax
    };
    let all: Vec<f64> = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .collect();
    let ymin = all
        .iter()
        .cloned()
        .fold(f64::MAX, f64::min)
        .clamp(0.001, 1e6);
    let ymax = all
        .iter()
        .cloned()
        .fold(0.0, f64::max)
        .clamp(ymin * 10.0, 1e7);
    let (lo, hi) = (ymin.log10().floor(), ymax.log10().ceil());
    let y_of = |ms: f64| top + ph - ph * (ms.max(10f64.powf(lo)).log10() - lo) / (hi - lo);
    let colors = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="24" font-size="15">huayi-im send-to-receipt latency by percentile (im-bench; log scales)</text>"#
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = left + pw * i as f64 / xmax;
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{label}</text>"##,
            top + ph,
            top + ph + 16.0
        );
    }
    let mut e = lo;
    while e <= hi {
        let ms = 10f64.powf(e);
        let y = y_of(ms);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{} ms</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0,
            if ms < 1.0 {
                format!("{ms}")
            } else {
                format!("{ms:.0}")
            }
        );
        e += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        left + pw / 2.0,
        top + ph + 34.0
    );
    for (i, (label, curve)) in curves.iter().enumerate() {
        let c = colors[i % colors.len()];
        let pts: Vec<String> = curve
            .iter()
            .map(|&(p, ms)| format!("{:.1},{:.1}", x_of(p), y_of(ms)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = top + ph + 56.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            left + 24.0,
            left + 30.0,
            ly + 4.0,
            xml_escape(label)
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
