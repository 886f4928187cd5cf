//! The server under test: either one we spawn (`--spawn`, on a free loopback
//! port, with `--set` settings) or one already running (`--url`, with
//! `--server-pid` for its memory).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::net::Target;
use crate::net::anyhow_lite::{Context, Result, bail};
use crate::sys;

/// A server to load.
#[derive(Debug)]
pub struct Server {
    pub url: String,
    pub pid: Option<u32>,
    child: Option<Child>,
    pub log: Option<PathBuf>,
}

/// The `huayi-im` binary next to our own (both live in `target/<profile>/`).
pub fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("huayi-im")))
        .unwrap_or_else(|| PathBuf::from("target/release/huayi-im"))
}

impl Server {
    /// An already running server.
    pub fn attach(url: &str, pid: Option<u32>) -> Self {
        Self {
            url: url.to_string(),
            pid,
            child: None,
            log: None,
        }
    }

    /// Starts `bin --listen 127.0.0.1:<free port> --set k=v…` and waits for
    /// `/healthz`. Its stderr goes to a log file in the temp directory; it
    /// inherits our raised open-files limit.
    pub async fn spawn(bin: &PathBuf, sets: &[String], tag: &str) -> Result<Self> {
        if !bin.exists() {
            bail!(
                "server binary {} not found: build it with `cargo build --release -p huayi-im` or pass --server-bin",
                bin.display()
            );
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
            l.local_addr().context("local addr")?.port()
        };
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("im-bench-server-{tag}-{port}.log"));
        let log_file =
            std::fs::File::create(&log).context(format!("creating {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen").arg(&addr);
        // A load generator is one abusive-looking client: lift the server's
        // abuse limits (rate limits, sockets per IP) before the caller's --set.
        for s in LOAD_TEST_SETTINGS
            .iter()
            .copied()
            .chain(sets.iter().map(String::as_str))
        {
            cmd.arg("--set").arg(s);
        }
        // A per-request info log would be measured as server cost; keep the
        // user's RUST_LOG if given.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        // No stray config.yaml from the caller's directory (R30).
        cmd.current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        let mut child = cmd.spawn().context(format!("starting {}", bin.display()))?;
        let pid = child.id();
        let url = format!("http://{addr}");
        let target = Target::parse(&url, 0)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().context("server status")? {
                bail!(
                    "server exited at start ({status}); its log: {}",
                    log.display()
                );
            }
            if let Ok(mut c) = target.http(0).await
                && c.get_ok("/healthz").await.unwrap_or(false)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("server not healthy after 20 s; its log: {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            url,
            pid,
            child: Some(child),
            log: Some(log),
        })
    }

    /// Server RSS in KiB, when we know its pid.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid.and_then(sys::rss_kib)
    }

    pub fn hwm_kib(&self) -> Option<u64> {
        self.pid.and_then(sys::hwm_kib)
    }

    /// Stops a spawned server with SIGTERM and checks it exits 0 in time
    /// (R31). Returns a problem to report, if any.
    pub async fn stop(mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let pid = child.id()?;
        sys::terminate(pid);
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!("server exited with {status} after SIGTERM")),
            Ok(Err(e)) => Some(format!("waiting for server: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                Some("server did not exit within 15 s of SIGTERM".into())
            }
        }
    }
}

/// Settings every spawned server gets first; `--set` may override them.
pub const LOAD_TEST_SETTINGS: &[&str] = &[
    "rate_limits.logins_per_second=0",
    "rate_limits.messages_per_second=0",
    "limits.max_sockets_per_ip=100000",
    "log.requests=false",
];
