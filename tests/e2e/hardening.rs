//! Abuse limits, timeouts, CORS, metrics and shutdown under load (issue 5).

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{PATIENCE, TestServer};

#[tokio::test]
async fn logins_are_rate_limited_per_ip_with_retry_after() {
    // R3: 429 with Retry-After and the JSON error shape.
    let s = TestServer::spawn_with(|c| {
        c.rate_limits.logins_per_second = 0.5;
        c.rate_limits.login_burst = 3;
    })
    .await;
    for i in 0..3 {
        s.login(&format!("user{i}")).await;
    }
    let resp = s
        .http
        .post(s.url("/api/login"))
        .json(&json!({"username": "user9"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn messages_are_rate_limited_per_user() {
    let s = TestServer::spawn_with(|c| {
        c.rate_limits.messages_per_second = 1.0;
        c.rate_limits.message_burst = 5;
    })
    .await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    for i in 0..5 {
        alice.send_ok(&["bobby"], &i.to_string()).await;
    }
    let (status, body) = alice.send(&["bobby"], "one too many").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Another user is unaffected; the refused message was not delivered.
    bob.send_ok(&["alice"], "bob is fine").await;
    let mut wb = bob.ws().await;
    for i in 0..5 {
        assert_eq!(wb.recv().await["content"], i.to_string());
    }
    s.login("carol").await.send_ok(&["bobby"], "marker").await;
    wb.expect_only_marker("marker").await;
}

#[tokio::test]
async fn socket_limits_refuse_before_the_upgrade() {
    let s = TestServer::spawn_with(|c| c.limits.max_sockets_per_ip = 2).await;
    let users = [
        s.login("user1").await,
        s.login("user2").await,
        s.login("user3").await,
    ];
    let first = users[0].ws().await;
    let _second = users[1].ws().await;
    let url = format!("ws://{}/api/ws?sid={}", s.addr, users[2].sid);
    let err = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect_err("third socket from one IP");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        other => panic!("unexpected {other}"),
    }
    // A place frees up when a socket closes.
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio_tungstenite::connect_async(url.clone()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "place never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let s = TestServer::spawn_with(|c| c.limits.max_sockets = 1).await;
    let a = s.login("alice").await;
    let b = s.login("bobby").await;
    let _wa = a.ws().await;
    let url = format!("ws://{}/api/ws?sid={}", s.addr, b.sid);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_trickled_body_times_out_and_a_silent_connection_is_closed() {
    let s = TestServer::spawn_with(|c| {
        c.limits.request_timeout = Duration::from_millis(300);
        c.limits.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    // Headers promise 100 bytes; only 10 ever come.
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    conn.write_all(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");

    // Half a request line, then nothing: the server hangs up.
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    conn.write_all(b"GET /healthz HT").await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "connection still open after the header timeout"
    );
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allow_list() {
    let preflight = |s: &TestServer, origin: &'static str| {
        s.http
            .request(Method::OPTIONS, s.url("/api/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let s = TestServer::spawn().await;
    let resp = preflight(&s, "https://chat.example.com")
        .await
        .expect("request");
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let s =
        TestServer::spawn_with(|c| c.cors.allow_origins = vec!["https://chat.example.com".into()])
            .await;
    let resp = preflight(&s, "https://chat.example.com")
        .await
        .expect("request");
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://chat.example.com"
    );
    let resp = preflight(&s, "https://evil.example")
        .await
        .expect("request");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn metrics_show_traffic_in_prometheus_format() {
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    alice.send_ok(&["bobby"], "hi").await;
    alice.send_ok(&["carol"], "offline").await;
    wb.recv().await;
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    for line in [
        "huayi_sockets_open 1",
        "huayi_users_online 1",
        "huayi_logins_total 2",
        "huayi_messages_accepted_total 2",
        "huayi_messages_queued_offline_total 1",
        "huayi_messages_dropped_total{reason=\"user_cap\"} 0",
        "huayi_rate_limited_total{limit=\"login\"} 0",
        "huayi_delivery_latency_seconds_count{} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(
        text.contains(
            "huayi_http_request_duration_seconds_count{route=\"/api/messages\",status=\"200\"} 2"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_finishes_requests_and_closes_sockets() {
    // R31: in-flight requests complete, sockets get 1001, serve returns in time.
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    let send = |i: usize| {
        s.http
            .post(s.url("/api/messages"))
            .bearer_auth(&alice.sid)
            .json(
                &json!({"message-type": "message", "from": "alice", "to": ["bobby"],
                          "content-type": "text/plain", "content": i.to_string()}),
            )
            .send()
    };
    let first = send(0).await.expect("before shutdown");
    assert_eq!(first.status(), StatusCode::OK);
    let (results, ()) = tokio::join!(join_all((1..300).map(send)), async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        s.begin_shutdown();
    });
    let (code, _) = wb.closed().await;
    assert_eq!(code, Some(huayi_im::protocol::close::GOING_AWAY));
    // Every request either got a whole 200 or never got in (connection
    // refused or closed before it was read): none got a broken answer.
    for result in results {
        match result {
            Ok(resp) => assert_eq!(resp.status(), StatusCode::OK),
            Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
        }
    }
    let started = tokio::time::Instant::now();
    s.stop().await.expect("serve returns Ok");
    assert!(started.elapsed() < PATIENCE);
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let s = TestServer::spawn().await;
    let (status, doc) = s.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    assert!(doc["paths"]["/api/messages"]["post"].is_object());
}
