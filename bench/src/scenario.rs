//! The four scenarios, as one pipeline with scenario-specific steps:
//! login → (topic/join) → (offline backlog) → open sockets → hold or send →
//! drain → final ping/ack round trip on every socket → close → check every
//! expected delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use huayi_im::protocol::{MESSAGE, TEXT_PLAIN, UpMessage};

use crate::net::anyhow_lite::{Result, bail};
use crate::net::{HttpConn, Target, pool_map};
use crate::report::{Latency, Memory, Report};
use crate::server::Server;
use crate::stats::{Shared, new_hist};
use crate::sys::{self, now_us};
use crate::ws::{self, Client, Control};

/// Which scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    P2p,
    Fanout,
    Offline,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::P2p => "p2p",
            Kind::Fanout => "fanout",
            Kind::Offline => "offline",
        }
    }
}

/// A fully resolved scenario size.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    /// Sockets (connect), online users (p2p), members (fanout), recipients (offline).
    pub users: usize,
    /// Hold time (connect) or send time (p2p, fanout).
    pub duration: Duration,
    /// Total message cap (p2p, fanout) or backlog per user (offline).
    pub messages: Option<u64>,
    /// Aggregate messages/s; 0 = as fast as possible.
    pub rate: f64,
    pub content_bytes: usize,
    /// Fanout senders, offline sender users.
    pub senders: usize,
    /// Extra `--set` settings for a spawned server.
    pub sets: Vec<String>,
}

impl Spec {
    pub fn label(&self) -> String {
        let rate = if self.rate > 0.0 {
            format!("{:.0} msg/s", self.rate)
        } else {
            "max rate".into()
        };
        match self.kind {
            Kind::Connect => format!(
                "connect {} sockets, {:.0} s",
                self.users,
                self.duration.as_secs_f64()
            ),
            Kind::P2p => format!(
                "p2p {} users, {rate}, {:.0} s",
                self.users,
                self.duration.as_secs_f64()
            ),
            Kind::Fanout => format!(
                "fanout {} members, {} senders, {rate}",
                self.users, self.senders
            ),
            Kind::Offline => format!(
                "offline {} users x {} msgs",
                self.users,
                self.messages.unwrap_or(0)
            ),
        }
    }
}

/// Run-wide settings that are not the scenario's size.
#[derive(Debug, Clone)]
pub struct Env {
    pub spawn: Option<std::path::PathBuf>,
    pub sets: Vec<String>,
    pub url: String,
    pub server_pid: Option<u32>,
    pub connections: usize,
    pub connect_concurrency: usize,
    pub source_addrs: u8,
    pub ping_every: Option<Duration>,
    pub drain_timeout: Duration,
    pub nofile: u64,
    pub progress: bool,
}

/// Runs one scenario (spawning and stopping its server if asked).
pub async fn run(spec: &Spec, env: &Env) -> Result<Report> {
    let mut spec = spec.clone();
    let mut notes = Vec::new();
    // Our sockets, HTTP connections and a margin must fit the open-files limit;
    // a spawned server inherits the same limit.
    let budget = env.nofile.saturating_sub(env.connections as u64 + 100) as usize;
    if spec.users > budget {
        notes.push(format!(
            "LIMIT: --users {} capped to {budget} by RLIMIT_NOFILE {} (minus {} HTTP connections and a margin)",
            spec.users, env.nofile, env.connections
        ));
        spec.users = budget;
    }
    if env.source_addrs == 0 && spec.users > 25_000 {
        notes.push(
            "LIMIT: one source address has ~28,000 ephemeral ports; use --source-addrs".into(),
        );
    }
    let server = match &env.spawn {
        Some(bin) => {
            // Server::spawn puts LOAD_TEST_SETTINGS first; these come after.
            let mut sets = env.sets.clone();
            sets.extend(spec.sets.iter().cloned());
            Server::spawn(bin, &sets, spec.kind.name()).await?
        }
        None => Server::attach(&env.url, env.server_pid),
    };
    if let Some(pid) = server.pid
        && let Some(n) = sys::nofile_of(pid)
        && (n as usize) < spec.users + env.connections + 50
    {
        notes.push(format!(
            "LIMIT: the server's open-files limit is {n}: fewer than {} sockets + {} HTTP connections",
            spec.users, env.connections
        ));
    }
    let result = run_on(&spec, env, &server).await.map_err(|e| {
        let e = e.to_string();
        if e.contains("429") {
            format!(
                "{e}\n  the server rate-limits one client address; run it with --set {}, or use --spawn",
                crate::server::LOAD_TEST_SETTINGS.join(" --set ")
            )
            .into()
        } else {
            crate::net::anyhow_lite::Error::from(e)
        }
    });
    let log = server.log.clone();
    let stop_problem = server.stop().await;
    let mut report = result?;
    report.notes.extend(notes);
    if let Some(p) = stop_problem {
        report.failures.push(p);
        report.ok = false;
    }
    if !report.ok
        && let Some(log) = log
    {
        report.notes.push(format!("server log: {}", log.display()));
    }
    Ok(report)
}

fn bar(env: &Env, len: u64, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(len),
        if env.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{elapsed_precise}] {bar:30.cyan/blue} {pos:>7}/{len:7} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(prefix.to_string());
    pb
}

/// Short unique run tag, so that repeated runs against one server use fresh
/// names (a stale backlog or session must not count).
fn run_tag() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        ^ ((std::process::id() as u64) << 20);
    let mut n = n % 36u64.pow(6);
    let mut s = String::new();
    for _ in 0..6 {
        s.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
    }
    s
}

/// How a sender picks the next message.
#[derive(Debug)]
enum Pick {
    /// Random pairs among `users`; worker `w` sends as users ≡ w (mod workers)
    /// so each sender's requests are sequential and order can be checked.
    P2p { users: u32 },
    /// Worker `w` is member `w`, posting to the topic.
    Fanout { topic: String, members: u64 },
    /// Worker `w` is sender user `base + w`; message `i` goes to recipient `i % recipients`.
    Offline { recipients: u32, base: u32 },
}

#[derive(Debug)]
struct Plan {
    pick: Pick,
    workers: usize,
    rate: f64,
    max: u64,
    start: tokio::time::Instant,
    deadline: Option<tokio::time::Instant>,
    content_bytes: usize,
    next: AtomicU64,
    names: Arc<Vec<String>>,
    sids: Arc<Vec<String>>,
    shared: Arc<Shared>,
}

/// Small fast PRNG for picking pairs (xorshift64*).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % n as u64) as u32
    }
}

async fn sender(w: usize, mut conn: HttpConn, plan: Arc<Plan>) -> (HttpConn, Histogram<u64>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
    let mut hist = new_hist();
    let sh = &plan.shared;
    loop {
        let i = plan.next.fetch_add(1, Relaxed);
        if i >= plan.max {
            break;
        }
        if plan.rate > 0.0 {
            let due = plan.start + Duration::from_secs_f64(i as f64 / plan.rate);
            if plan.deadline.is_some_and(|d| due >= d) {
                break;
            }
            tokio::time::sleep_until(due).await;
        } else if plan
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            break;
        }
        let (from, to, topic) = match &plan.pick {
            Pick::P2p { users } => {
                let n = *users as usize;
                if w >= n {
                    break;
                }
                let owned = (n - 1 - w) / plan.workers + 1;
                let from = (w + plan.workers * rng.below(owned as u32) as usize) as u32;
                let mut to = rng.below(users - 1);
                if to >= from {
                    to += 1;
                }
                (from, Some(to), None)
            }
            Pick::Fanout { topic, .. } => (w as u32, None, Some(topic.clone())),
            Pick::Offline { recipients, base } => {
                (base + w as u32, Some((i % *recipients as u64) as u32), None)
            }
        };
        let t = now_us();
        sh.first_send_us.fetch_min(t, Relaxed);
        let up = UpMessage {
            message_type: MESSAGE.into(),
            from: plan.names[from as usize].clone(),
            to: to
                .map(|t| vec![plan.names[t as usize].clone()])
                .unwrap_or_default(),
            topic,
            content_type: TEXT_PLAIN.into(),
            content: ws::content(i, t, from, to, plan.content_bytes),
        };
        let body = match serde_json::to_vec(&up) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                sh.note_send_error(format!("encode: {e}"));
                continue;
            }
        };
        sh.attempted.fetch_add(1, Relaxed);
        match conn
            .post("/api/messages", Some(&plan.sids[from as usize]), body)
            .await
        {
            Ok((StatusCode::OK, _)) => {
                let done = now_us();
                let _ = hist.record((done - t).max(1));
                sh.last_accept_us.fetch_max(done, Relaxed);
                sh.accepted.fetch_add(1, Relaxed);
                match (&plan.pick, to) {
                    (Pick::Fanout { members, .. }, _) => {
                        sh.sent_per_user[from as usize].fetch_add(1, Relaxed);
                        sh.expected.fetch_add(members - 1, Relaxed);
                    }
                    (_, Some(to)) => {
                        sh.expected_per_user[to as usize].fetch_add(1, Relaxed);
                        sh.expected.fetch_add(1, Relaxed);
                    }
                    _ => {}
                }
            }
            Ok((status, body)) => {
                let body = String::from_utf8_lossy(&body);
                sh.note_send_error(format!(
                    "{status}: {}",
                    body.chars().take(80).collect::<String>()
                ));
            }
            Err(e) => sh.note_send_error(format!("io: {e}")),
        }
    }
    (conn, hist)
}

/// Starts the senders; returns their handles.
fn start_senders(
    conns: Vec<HttpConn>,
    plan: &Arc<Plan>,
) -> Vec<tokio::task::JoinHandle<(HttpConn, Histogram<u64>)>> {
    conns
        .into_iter()
        .take(plan.workers)
        .enumerate()
        .map(|(w, c)| tokio::spawn(sender(w, c, plan.clone())))
        .collect()
}

async fn run_on(spec: &Spec, env: &Env, server: &Server) -> Result<Report> {
    let kind = spec.kind;
    let target = Target::parse(&server.url, env.source_addrs)?;
    let tag = run_tag();
    let n = spec.users;
    let extra_senders = if kind == Kind::Offline {
        spec.senders.max(1)
    } else {
        0
    };
    let names: Arc<Vec<String>> = Arc::new(
        (0..n + extra_senders)
            .map(|i| format!("b{tag}_{i}"))
            .collect(),
    );
    let per_user = spec.messages.unwrap_or(100);
    let max_messages = match kind {
        Kind::Connect => 0,
        Kind::Offline => n as u64 * per_user,
        _ => spec.messages.unwrap_or_else(|| {
            let secs = spec.duration.as_secs_f64();
            if spec.rate > 0.0 {
                (spec.rate * secs).ceil() as u64 + 1
            } else {
                (200_000.0 * secs) as u64
            }
        }),
    };
    let shared = Arc::new(Shared::new(n, max_messages));
    let mut mem = Memory {
        before_kib: server.rss_kib(),
        ..Memory::default()
    };

    // Login.
    let mut conns = target.http_pool(env.connections.max(1)).await?;
    let pb = bar(env, names.len() as u64, "login");
    let sids: Vec<String> = pool_map(&mut conns, names.len(), async |c, i| {
        let r = c.login(&names[i]).await?;
        pb.inc(1);
        Ok(r.sid)
    })
    .await?;
    pb.finish_and_clear();
    let sids = Arc::new(sids);

    // Fanout: one topic, every member joins.
    let topic = format!("bt{tag}");
    if kind == Kind::Fanout {
        conns[0].create_topic(&sids[0], &topic).await?;
        let pb = bar(env, n as u64, "join");
        pool_map(&mut conns, n, async |c, i| {
            c.join(&sids[i], &topic).await?;
            pb.inc(1);
            Ok(())
        })
        .await?;
        pb.finish_and_clear();
    }
    mem.logged_in_kib = server.rss_kib();

    let make_plan = |pick: Pick, workers: usize, rate: f64, deadline: Option<Duration>| {
        let start = tokio::time::Instant::now();
        Arc::new(Plan {
            pick,
            workers,
            rate,
            max: max_messages,
            start,
            deadline: deadline.map(|d| start + d),
            content_bytes: spec.content_bytes,
            next: AtomicU64::new(0),
            names: names.clone(),
            sids: sids.clone(),
            shared: shared.clone(),
        })
    };
    let mut http_hist = new_hist();
    let mut send_secs = 0.0;

    // Offline: queue the whole backlog before anyone connects.
    if kind == Kind::Offline {
        let workers = extra_senders.min(conns.len());
        let plan = make_plan(
            Pick::Offline {
                recipients: n as u32,
                base: n as u32,
            },
            workers,
            spec.rate,
            None,
        );
        let pb = bar(env, max_messages, "backlog");
        let t0 = Instant::now();
        let handles = start_senders(std::mem::take(&mut conns), &plan);
        while !handles.iter().all(|h| h.is_finished()) {
            pb.set_position(shared.attempted.load(Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for h in handles {
            let (c, hist) = h.await.map_err(|e| format!("sender: {e}"))?;
            conns.push(c);
            let _ = http_hist.add(&hist);
        }
        send_secs = t0.elapsed().as_secs_f64();
        pb.finish_and_clear();
    }

    // Open every socket.
    let ctl = Arc::new(Control {
        target: target.clone(),
        shared: shared.clone(),
        handshakes: Semaphore::new(env.connect_concurrency.max(1)),
        ping_every: env.ping_every,
        verify: CancellationToken::new(),
        stop: CancellationToken::new(),
    });
    let pb = bar(env, n as u64, "connect");
    let t_connect = Instant::now();
    let connect_us = now_us();
    let me = std::process::id();
    let cpu0 = (server.pid.and_then(sys::cpu_secs), sys::cpu_secs(me));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let c = Client {
                idx: i as u32,
                user: names[i].clone(),
                sid: sids[i].clone(),
            };
            tokio::spawn(ws::run(c, ctl.clone()))
        })
        .collect();
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = shared.connected.load(Relaxed) + shared.connect_failed.load(Relaxed);
        pb.set_position(done);
        if kind == Kind::Offline {
            pb.set_message(format!("{} drained", shared.totals().unique));
        }
        if done >= n as u64 || Instant::now() > connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    pb.finish_and_clear();
    mem.connected_kib = server.rss_kib();

    let mut per_second: Vec<u64> = Vec::new();
    let mut send_cpu: Option<(f64, Option<f64>, Option<f64>)> = None;
    let mut drain_per_s = None;
    match kind {
        Kind::Connect => {
            let pb = bar(env, spec.duration.as_secs(), "hold");
            let end = Instant::now() + spec.duration;
            while Instant::now() < end {
                pb.set_position((spec.duration - (end - Instant::now())).as_secs());
                pb.set_message(format!(
                    "open {} pongs {} acked {}",
                    shared.open.load(Relaxed),
                    shared.pongs.load(Relaxed),
                    shared.acks_sent.load(Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            pb.finish_and_clear();
            mem.connected_kib = mem.connected_kib.max(server.rss_kib());
        }
        Kind::Offline => {
            wait_drain(env, &shared, env.drain_timeout, "drain").await;
            let t = shared.totals();
            let secs = (t.last_us.saturating_sub(connect_us)) as f64 / 1e6;
            if secs > 0.0 {
                drain_per_s = Some(t.unique as f64 / secs);
            }
        }
        Kind::P2p | Kind::Fanout => {
            let (pick, workers) = if kind == Kind::Fanout {
                (
                    Pick::Fanout {
                        topic: topic.clone(),
                        members: n as u64,
                    },
                    spec.senders.clamp(1, n).min(conns.len()),
                )
            } else {
                (Pick::P2p { users: n as u32 }, conns.len().min(n))
            };
            let plan = make_plan(pick, workers, spec.rate, Some(spec.duration));
            let pb = bar(env, spec.duration.as_secs(), "send");
            let t0 = Instant::now();
            let send_cpu0 = (server.pid.and_then(sys::cpu_secs), sys::cpu_secs(me));
            let handles = start_senders(std::mem::take(&mut conns), &plan);
            let mut last_sample = (t0, shared.totals().unique);
            while !handles.iter().all(|h| h.is_finished()) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let t = shared.totals();
                if last_sample.0.elapsed() >= Duration::from_secs(1) {
                    per_second.push(t.unique - last_sample.1);
                    last_sample = (Instant::now(), t.unique);
                }
                pb.set_position(t0.elapsed().as_secs().min(spec.duration.as_secs()));
                pb.set_message(format!(
                    "accepted {} delivered {} of {}",
                    shared.accepted.load(Relaxed),
                    t.unique,
                    shared.expected.load(Relaxed)
                ));
            }
            pb.finish_and_clear();
            for h in handles {
                let (c, hist) = h.await.map_err(|e| format!("sender: {e}"))?;
                conns.push(c);
                let _ = http_hist.add(&hist);
            }
            send_secs = t0.elapsed().as_secs_f64();
            let (s0, b0) = send_cpu0;
            send_cpu = Some((
                send_secs,
                s0.zip(server.pid.and_then(sys::cpu_secs))
                    .map(|(a, b)| b - a),
                b0.zip(sys::cpu_secs(me)).map(|(a, b)| b - a),
            ));
            wait_drain(env, &shared, env.drain_timeout, "drain").await;
        }
    }

    // Every socket proves it is alive with one last ping/ack round trip.
    ctl.verify.cancel();
    let deadline = Instant::now() + Duration::from_secs(15);
    while shared.verified.load(Relaxed) < shared.open.load(Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mem.end_kib = server.rss_kib();
    mem.peak_kib = server.hwm_kib();
    mem.bench_kib = sys::rss_kib(me);
    let cpu = crate::report::Cpu {
        wall_s: t_connect.elapsed().as_secs_f64(),
        server_s: cpu0
            .0
            .zip(server.pid.and_then(sys::cpu_secs))
            .map(|(a, b)| b - a),
        bench_s: cpu0.1.zip(sys::cpu_secs(me)).map(|(a, b)| b - a),
        send_wall_s: send_cpu.map(|c| c.0),
        send_server_s: send_cpu.and_then(|c| c.1),
        send_bench_s: send_cpu.and_then(|c| c.2),
        ..Default::default()
    };
    ctl.stop.cancel();
    let mut outcomes = Vec::with_capacity(n);
    for h in handles {
        outcomes.push(h.await.map_err(|e| format!("socket task: {e}"))?);
    }
    drop(conns);

    // Check every expected delivery, recipient by recipient.
    let t = shared.totals();
    let accepted = shared.accepted.load(Relaxed);
    let mut expected = 0u64;
    let mut lost = 0u64;
    let mut extra = 0u64;
    let mut users_short = 0u64;
    for o in &outcomes {
        let i = o.idx as usize;
        let want = match kind {
            Kind::Fanout => accepted - shared.sent_per_user[i].load(Relaxed) as u64,
            _ => shared.expected_per_user[i].load(Relaxed) as u64,
        };
        expected += want;
        if o.unique < want {
            lost += want - o.unique;
            users_short += 1;
        } else {
            extra += o.unique - want;
        }
    }
    let connected = shared.connected.load(Relaxed);
    let first_send = shared.first_send_us.load(Relaxed);
    let deliveries_window = if kind == Kind::Offline {
        t.last_us.saturating_sub(connect_us)
    } else {
        t.last_us.saturating_sub(first_send)
    } as f64
        / 1e6;
    let steady: Vec<u64> = if per_second.len() > 2 {
        per_second[1..per_second.len() - 1].to_vec()
    } else {
        Vec::new()
    };

    let mut r = Report {
        scenario: kind.name().into(),
        label: spec.label(),
        users: n,
        content_bytes: spec.content_bytes,
        duration_s: spec.duration.as_secs_f64(),
        requested_rate: (kind != Kind::Connect).then_some(spec.rate),
        sockets: connected,
        connect_failed: shared.connect_failed.load(Relaxed),
        connect_secs,
        connects_per_s: connected as f64 / connect_secs.max(1e-9),
        attempted: shared.attempted.load(Relaxed),
        accepted,
        send_errors: crate::stats::lock(&shared.send_errors).clone(),
        accepted_per_s: if send_secs > 0.0 {
            accepted as f64 / send_secs
        } else {
            0.0
        },
        http_latency: Latency::from_hist(&http_hist),
        expected,
        received_unique: t.unique,
        delivered_frames: t.delivered,
        lost,
        duplicates: t.dups,
        misdelivered: t.misdelivered,
        reordered: t.reordered,
        extra,
        users_short,
        deliveries_per_s: if deliveries_window > 0.0 {
            t.unique as f64 / deliveries_window
        } else {
            0.0
        },
        deliveries_per_s_min_1s: steady.iter().min().map(|&m| m as f64),
        drain_per_s,
        latency: Latency::from_hist(&shared.latency()),
        latency_last_recipient: Latency::from_hist(&shared.last_recipient_latency()),
        memory: mem,
        cpu,
        pongs: shared.pongs.load(Relaxed),
        pong_acks: shared.acks_sent.load(Relaxed),
        pings: shared.pings_sent.load(Relaxed),
        ping_acks: shared.ping_acks.load(Relaxed),
        verified: shared.verified.load(Relaxed),
        reconnects: shared.reconnects.load(Relaxed),
        closes: crate::stats::lock(&shared.closes).clone(),
        system_frames: shared.system_frames.load(Relaxed),
        foreign_frames: shared.foreign_frames.load(Relaxed),
        errors: crate::stats::lock(&shared.errors).clone(),
        notes: Vec::new(),
        failures: Vec::new(),
        ok: true,
    };
    if let (Some(b), Some(c)) = (r.memory.before_kib, r.memory.connected_kib)
        && connected > 0
    {
        r.memory.per_socket_kib = Some(c.saturating_sub(b) as f64 / connected as f64);
    }
    if let (Some(l), Some(c)) = (r.memory.logged_in_kib, r.memory.connected_kib)
        && connected > 0
    {
        r.memory.per_socket_only_kib = Some(c.saturating_sub(l) as f64 / connected as f64);
    }
    if r.received_unique > 0 {
        let per = |c: Option<f64>| c.map(|c| c * 1e6 / r.received_unique as f64);
        r.cpu.server_us_per_delivery = per(r.cpu.server_s);
        r.cpu.bench_us_per_delivery = per(r.cpu.bench_s);
    }
    judge(&mut r, kind);
    Ok(r)
}

async fn wait_drain(env: &Env, shared: &Shared, timeout: Duration, prefix: &str) {
    let pb = bar(env, shared.expected.load(Relaxed), prefix);
    let deadline = Instant::now() + timeout;
    loop {
        let t = shared.totals();
        let want = shared.expected.load(Relaxed);
        pb.set_length(want);
        pb.set_position(t.unique);
        if t.unique >= want || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pb.finish_and_clear();
}

/// Every failure condition, loudly.
fn judge(r: &mut Report, kind: Kind) {
    let mut f = Vec::new();
    if r.lost > 0 {
        f.push(format!(
            "{} LOST deliveries ({} of {} recipients short)",
            r.lost, r.users_short, r.users
        ));
    }
    if r.connect_failed > 0 {
        f.push(format!("{} sockets failed to connect", r.connect_failed));
    }
    let errs: u64 = r.send_errors.values().sum();
    if errs > 0 {
        f.push(format!("{errs} sends not accepted: {:?}", r.send_errors));
    }
    if r.misdelivered > 0 {
        f.push(format!(
            "{} frames delivered to the wrong socket",
            r.misdelivered
        ));
    }
    if r.duplicates > 0 {
        f.push(format!("{} duplicate deliveries", r.duplicates));
    }
    if r.reordered > 0 {
        f.push(format!("{} deliveries out of order (R19)", r.reordered));
    }
    if r.extra > 0 {
        f.push(format!("{} deliveries of messages never accepted", r.extra));
    }
    if r.verified < r.sockets {
        f.push(format!(
            "only {} of {} sockets answered the final ping",
            r.verified, r.sockets
        ));
    }
    if r.pong_acks < r.pongs {
        f.push(format!(
            "{} of {} pongs could not be acked",
            r.pongs - r.pong_acks,
            r.pongs
        ));
    }
    let unexpected: u64 = r
        .closes
        .iter()
        .filter(|(c, _)| **c != huayi_im::protocol::close::SLOW)
        .map(|(_, n)| n)
        .sum();
    if unexpected > 0 {
        f.push(format!("sockets closed by the server: {:?}", r.closes));
    }
    if kind != Kind::Connect && r.accepted == 0 {
        f.push("no message was accepted".into());
    }
    r.ok = f.is_empty();
    r.failures = f;
}

/// Fails early with a clear message when the URL is not a server.
pub async fn check_reachable(url: &str) -> Result<()> {
    let target = Target::parse(url, 0)?;
    let mut c = match target.http(0).await {
        Ok(c) => c,
        Err(e) => bail!("cannot reach {url}: {e} (start the server, or use --spawn)"),
    };
    if !c.get_ok("/healthz").await.unwrap_or(false) {
        bail!("{url}/healthz did not answer 200");
    }
    Ok(())
}
