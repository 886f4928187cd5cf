//! `im-bench`: loads a huayi-im server through its public API only — login,
//! `POST /api/messages`, `/api/ws` — exactly as real clients do, and reports
//! what actually arrived.
//!
//! ```text
//! im-bench all --spawn                 # every scenario, ~2 minutes, table at the end
//! im-bench all --spawn --smoke         # a few seconds; fails only on loss/errors
//! im-bench all --spawn --full --svg bench/latency.svg   # issue-3 sizes
//! im-bench fanout --users 10000 --rate 100 --duration 10s --spawn
//! im-bench p2p --url http://127.0.0.1:8080 --server-pid 1234 --json
//! ```
//!
//! Exit status: 0 when every scenario lost nothing and saw no error, 1
//! otherwise, 2 when a run could not be set up.

mod net;
mod report;
mod scenario;
mod server;
mod stats;
mod sys;
mod ws;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use report::Report;
use scenario::{Env, Kind, Spec};

#[derive(Debug, Parser)]
#[command(name = "im-bench", version, about = "Load generator for huayi-im")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// N idle logged-in sockets held for --duration, every pong acked.
    Connect(Opts),
    /// N online users, random pairs, aggregate --rate messages/s (0 = max).
    P2p(Opts),
    /// One topic with --users members, --senders of them posting at --rate.
    Fanout(Opts),
    /// --messages queued per offline user, then everyone connects and drains.
    Offline(Opts),
    /// Every scenario in turn (about two minutes; --smoke: seconds; --full: issue-3 sizes).
    All(Opts),
}

#[derive(Debug, Args, Clone)]
struct Opts {
    /// Server base URL (ignored with --spawn).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Sockets / online users / topic members / offline recipients.
    #[arg(long)]
    users: Option<usize>,
    /// Hold time (connect) or send time (p2p, fanout), e.g. 10s, 500ms.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Message cap (p2p, fanout) or backlog per user (offline).
    #[arg(long)]
    messages: Option<u64>,
    /// Aggregate messages per second; 0 = as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Size of each message content in bytes (the stamp is at least ~30).
    #[arg(long, default_value_t = 100)]
    content_bytes: usize,
    /// Fanout: members that post; offline: sender users.
    #[arg(long)]
    senders: Option<usize>,
    /// Start the server binary on a free loopback port for each scenario.
    #[arg(long)]
    spawn: bool,
    /// Server binary for --spawn (default: huayi-im next to im-bench).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// A server setting for --spawn, passed as `--set key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Pid of a running server, to read its RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Keep-alive HTTP connections (each is one sender worker).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// WebSocket handshakes in flight at once. Above the server's listen
    /// backlog (128 with tokio's `TcpListener::bind`) SYNs are dropped and
    /// retried after 1 s, which then dominates connect times.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Loopback source addresses to spread sockets over (127.0.0.2 …); 0 = kernel's choice.
    #[arg(long, default_value_t = 16)]
    source_addrs: u8,
    /// Client ping interval like the reference client; 0s = no pings.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    ping_interval: Duration,
    /// How long to wait for outstanding deliveries after the last send;
    /// whatever has not arrived by then counts as lost.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Print the reports as JSON on stdout (progress and tables go away).
    #[arg(long)]
    json: bool,
    /// Write the latency percentile curves as an SVG picture.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// `all`: tiny sizes for CI.
    #[arg(long)]
    smoke: bool,
    /// `all`: the full sizes of issue 3.
    #[arg(long, conflicts_with = "smoke")]
    full: bool,
}

/// Parses `10s`, `500ms`, `2m`, `1h` or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A scenario's size: the flag if given, else the default of the chosen tier.
fn spec(kind: Kind, o: &Opts, tier: Tier) -> Spec {
    use Tier::*;
    // (users, duration s, rate, senders, messages)
    let (users, dur, rate, senders, messages) = match (kind, tier) {
        (Kind::Connect, Smoke) => (200, 3.0, 0.0, 0, None),
        (Kind::Connect, Normal) => (10_000, 30.0, 0.0, 0, None),
        (Kind::Connect, Full) => (15_000, 60.0, 0.0, 0, None),
        (Kind::P2p, Smoke) => (200, 2.0, 500.0, 0, None),
        (Kind::P2p, Normal) => (5_000, 10.0, 2_000.0, 0, None),
        (Kind::P2p, Full) => (10_000, 10.0, 2_000.0, 0, None),
        (Kind::Fanout, Smoke) => (200, 2.0, 20.0, 5, None),
        (Kind::Fanout, Normal) => (5_000, 10.0, 100.0, 10, None),
        (Kind::Fanout, Full) => (10_000, 10.0, 100.0, 10, None),
        (Kind::Offline, Smoke) => (100, 0.0, 0.0, 8, Some(10)),
        (Kind::Offline, Normal | Full) => (1_000, 0.0, 0.0, 32, Some(100)),
    };
    let mut sets = Vec::new();
    if kind == Kind::Connect && tier == Smoke {
        // Exercise pong/ack within a few seconds.
        sets.push("heartbeat.pong_interval=500ms".into());
    }
    Spec {
        kind,
        users: o.users.unwrap_or(users),
        duration: o.duration.unwrap_or(secs(dur)),
        messages: o.messages.or(messages),
        rate: o.rate.unwrap_or(rate),
        content_bytes: o.content_bytes,
        senders: o.senders.unwrap_or(senders),
        sets,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Smoke,
    Normal,
    Full,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("im-bench: runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    rt.block_on(real_main(cli))
}

async fn real_main(cli: Cli) -> std::process::ExitCode {
    let (kinds, o): (Vec<(Kind, Option<f64>)>, Opts) = match cli.cmd {
        Cmd::Connect(o) => (vec![(Kind::Connect, None)], o),
        Cmd::P2p(o) => (vec![(Kind::P2p, None)], o),
        Cmd::Fanout(o) => (vec![(Kind::Fanout, None)], o),
        Cmd::Offline(o) => (vec![(Kind::Offline, None)], o),
        Cmd::All(o) => (
            vec![
                (Kind::Connect, None),
                (Kind::P2p, None),
                // The accept-rate run: p2p as fast as keep-alive HTTP goes.
                (Kind::P2p, Some(0.0)),
                (Kind::Fanout, None),
                (Kind::Offline, None),
            ],
            o,
        ),
    };
    let tier = if o.smoke {
        Tier::Smoke
    } else if o.full {
        Tier::Full
    } else {
        Tier::Normal
    };
    let nofile = sys::raise_nofile();
    sys::now_us();
    let env = Env {
        spawn: o
            .spawn
            .then(|| o.server_bin.clone().unwrap_or_else(server::default_bin)),
        sets: o.sets.clone(),
        url: o.url.clone(),
        server_pid: o.server_pid,
        connections: o.connections,
        connect_concurrency: o.connect_concurrency,
        source_addrs: o.source_addrs,
        ping_every: (!o.ping_interval.is_zero()).then_some(o.ping_interval),
        drain_timeout: o.drain_timeout,
        nofile,
        progress: !o.json,
    };
    if !o.spawn
        && let Err(e) = scenario::check_reachable(&o.url).await
    {
        eprintln!("im-bench: {e}");
        return std::process::ExitCode::from(2);
    }
    if !o.json {
        eprintln!(
            "im-bench: {} cores, open-files limit {nofile}, server {}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            env.spawn
                .as_ref()
                .map(|b| format!("spawned from {}", b.display()))
                .unwrap_or_else(|| o.url.clone())
        );
    }
    let mut reports: Vec<Report> = Vec::new();
    let mut setup_failed = false;
    for (kind, rate) in kinds {
        let mut s = spec(kind, &o, tier);
        if let Some(r) = rate {
            s.rate = r;
            if o.users.is_none() {
                s.users = match tier {
                    Tier::Smoke => 100,
                    Tier::Normal => 1_000,
                    Tier::Full => 10_000,
                };
            }
        }
        if !o.json {
            eprintln!("im-bench: running {}", s.label());
        }
        match scenario::run(&s, &env).await {
            Ok(r) => {
                if !o.json {
                    println!("{}", r.text());
                }
                reports.push(r);
            }
            Err(e) => {
                eprintln!("im-bench: {}: {e}", s.label());
                setup_failed = true;
            }
        }
    }
    if let Some(path) = &o.svg {
        match std::fs::write(path, report::svg(&reports)) {
            Ok(()) if !o.json => {
                eprintln!("im-bench: latency picture written to {}", path.display())
            }
            Ok(()) => {}
            Err(e) => eprintln!("im-bench: writing {}: {e}", path.display()),
        }
    }
    let ok = !setup_failed && reports.iter().all(|r| r.ok);
    if o.json {
        let out = serde_json::json!({ "ok": ok, "scenarios": reports });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        if reports.len() > 1 {
            println!("{}", report::summary_table(&reports));
        }
        if !ok {
            let failed: Vec<_> = reports
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.label.clone())
                .collect();
            eprintln!(
                "\nim-bench: FAILED: {failed:?}{}",
                if setup_failed {
                    " (and a scenario could not run)"
                } else {
                    ""
                }
            );
        }
    }
    if setup_failed {
        std::process::ExitCode::from(2)
    } else if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
