//! The binary itself: layered configuration and graceful shutdown (R30, R31).

use std::{
    io::{BufRead, BufReader, Lines},
    process::{Child, ChildStderr, Command, Stdio},
    time::Duration,
};

use huayi_im::protocol::close;

use crate::helpers::{PATIENCE, TestServer};

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_returns() {
    // R31
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let mut ws = alice.ws().await;
    let stop = tokio::spawn(async move { s.stop().await });
    let (code, _) = ws.closed().await;
    assert_eq!(code, Some(close::GOING_AWAY));
    stop.await.expect("join").expect("serve returns Ok");
}

/// The real binary, started on a free port, its log read from stderr.
struct Binary {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
    /// Log lines read so far.
    log: Vec<String>,
    addr: String,
}

impl Binary {
    /// Starts `huayi-im --listen 127.0.0.1:0 ARGS` and reads its log up to
    /// the `listening on ADDR` line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_huayi-im"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut log = Vec::new();
        let addr = loop {
            let line = lines.next().expect("a log line").expect("utf-8");
            log.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split(|c: char| c == '"' || c.is_whitespace())
                    .next()
                    .expect("address")
                    .to_owned();
            }
        };
        Self {
            child,
            lines,
            log,
            addr,
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit; asserts it is 0 (R31).
    /// Returns the whole log.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(code) = self.child.try_wait().expect("wait") {
                assert!(code.success(), "exit status {code}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log.extend(self.lines.map_while(Result::ok));
        self.log
    }
}

#[test]
fn the_binary_reads_env_and_flags_and_exits_cleanly_on_sigterm() {
    // R30: env (`__` nesting) and flags layered over defaults; R31: SIGTERM → exit 0.
    let server = Binary::start(
        &["--set", "log.level=info"],
        &[
            ("HUAYI_LISTEN", "256.0.0.1:1"), // overridden by the flag
            ("HUAYI_HEARTBEAT__PONG_INTERVAL", "1s"),
        ],
    );
    let health = raw_http(
        &server.addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    server.stop();
}

#[test]
fn bad_configuration_is_refused_with_its_key() {
    // R30
    let out = Command::new(env!("CARGO_BIN_EXE_huayi-im"))
        .args(["--set", "offline.ttl=forever"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forever"), "{err}");
}

/// One HTTP/1.1 request over a fresh connection; the whole raw answer.
fn raw_http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn json_logs_have_a_line_per_request_and_never_a_sid() {
    // Issue 5 (structured logs), R6 (a sid is never logged).
    let server = Binary::start(&["--set", "log.format=json"], &[]);
    let addr = server.addr.clone();
    let body = r#"{"username":"alice"}"#;
    let login = raw_http(
        &addr,
        &format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let sid = login
        .split(r#""sid":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a sid in the answer")
        .to_owned();
    let users = raw_http(
        &addr,
        &format!(
            "GET /api/users?sid={sid} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sid}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(users.starts_with("HTTP/1.1 200"), "{users}");
    let log = server.stop();

    for line in &log {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(parsed["level"].is_string(), "{line}");
        assert!(!line.contains(&sid), "a sid was logged: {line}");
    }
    let request_line = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["route"] == "/api/users")
        .expect("a line for GET /api/users");
    assert_eq!(request_line["fields"]["status"], 200);
    assert_eq!(request_line["fields"]["method"], "GET");
}
