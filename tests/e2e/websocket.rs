//! The socket: heartbeats, presence, junk, limits, slow readers (R22–R24, R26).

use std::time::Duration;

use huayi_im::protocol::close;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Event, TestServer};

#[tokio::test]
async fn pings_are_acked_and_pongs_come_with_increasing_ids() {
    // R22
    let s = TestServer::spawn_with(|c| c.heartbeat.pong_interval = Duration::from_millis(50)).await;
    let alice = s.login("alice").await;
    let mut ws = alice.ws().await;
    ws.send_json(json!({"message-type": "ping", "message-id": 41, "from": "alice"}))
        .await;
    let mut ids = Vec::new();
    let mut acked = false;
    while ids.len() < 3 || !acked {
        match ws.next_event().await {
            Event::Json(v) if v["message-type"] == "pong" => {
                assert_eq!(v["to"], "alice");
                let id = v["message-id"].as_u64().expect("id");
                ws.send_json(json!({"message-type": "ack", "ack-id": id}))
                    .await;
                ids.push(id);
            }
            Event::Json(v) => {
                assert_eq!(v, json!({"message-type": "ack", "ack-id": 41}));
                acked = true;
            }
            Event::Closed(code) => panic!("closed: {code:?}"),
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn a_silent_client_goes_offline_with_4003() {
    // R23
    let s = TestServer::spawn_with(|c| {
        c.heartbeat.pong_interval = Duration::from_millis(50);
        c.heartbeat.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let alice = s.login("alice").await;
    let mut ws = alice.ws().await;
    // Pongs arrive but are never acked.
    let (code, _) = ws.closed().await;
    assert_eq!(code, Some(close::IDLE));
    let bob = s.login("bobby").await;
    assert!(bob.users("?online=true").await.is_empty());
}

#[tokio::test]
async fn acks_and_http_requests_keep_a_socket_alive() {
    // R22, R23: activity is any client frame and any authenticated request.
    let s = TestServer::spawn_with(|c| {
        c.heartbeat.pong_interval = Duration::from_millis(40);
        c.heartbeat.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let alice = s.login("alice").await;
    let mut ws = alice.ws().await;
    // Acking ~25 pongs spans 1 s, far past the idle timeout.
    for _ in 0..25 {
        match ws.next_event().await {
            Event::Json(v) if v["message-type"] == "pong" => {
                ws.send_json(json!({"message-type": "ack", "ack-id": v["message-id"]}))
                    .await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Now only HTTP activity, no frames, for another ~1 s.
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(alice.users("?online=true").await, ["alice"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Then silence: closed as idle.
    let (code, _) = ws.closed().await;
    assert_eq!(code, Some(close::IDLE));
}

#[tokio::test]
async fn closing_the_socket_is_offline_at_once() {
    // R23
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut ws = alice.ws().await;
    assert_eq!(bob.users("?online=true").await, ["alice"]);
    ws.stream.close(None).await.expect("close");
    // The server notices the close frame promptly; poll rather than sleep.
    let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
    while !bob.users("?online=true").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still online");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn junk_frames_are_ignored_and_never_fatal() {
    // R24
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut ws = alice.ws().await;
    for junk in [
        Message::Text("not json".into()),
        Message::Text("{\"message-type\":\"dance\"}".into()),
        Message::Text("{\"message-type\":\"ping\",\"message-id\":\"x\"}".into()),
        Message::Text("[]".into()),
        Message::Binary(vec![0, 1, 2].into()),
    ] {
        ws.send_raw(junk).await.expect("sent");
    }
    bob.send_ok(&["alice"], "still here").await;
    assert_eq!(ws.recv().await["content"], "still here");
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    // R24, R27
    let s = TestServer::spawn_with(|c| c.limits.max_frame_bytes = 1024).await;
    let alice = s.login("alice").await;
    let mut ws = alice.ws().await;
    ws.send_raw(Message::Text("x".repeat(2048).into()))
        .await
        .expect("sent");
    let (code, _) = ws.closed().await;
    assert_eq!(code, Some(close::TOO_BIG));
}

#[tokio::test]
async fn a_socket_that_stops_reading_is_closed_and_loses_nothing() {
    // R26: closed with 4004; what it had not written is kept offline.
    let s = TestServer::spawn_with(|c| {
        c.limits.send_queue_frames = 8;
        c.offline.max_bytes_per_user = 64 << 20;
        c.limits.max_content_bytes = 64 << 10;
    })
    .await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    let big = "x".repeat(60_000);
    // bob does not read: send until the server gives up on his socket, which
    // shows as bob going offline (the kernel's buffers fill first).
    let total = 400;
    let mut sent = 0;
    while alice
        .users("?online=true")
        .await
        .contains(&"bobby".to_owned())
    {
        assert!(sent < total, "never closed as slow");
        alice.send_ok(&["bobby"], &format!("{sent}:{big}")).await;
        sent += 1;
    }
    // bob reads again: what reached the old socket, up to its close frame.
    let (code, before) = wb.closed().await;
    assert_eq!(code, Some(close::SLOW));
    // Later messages wait offline behind the unwritten ones.
    for i in sent..sent + 10 {
        alice.send_ok(&["bobby"], &format!("{i}:x")).await;
    }
    let total = sent + 10;
    let mut wb = bob.ws().await;
    let mut seen: Vec<usize> = before.iter().map(index).collect();
    while seen.len() < total {
        seen.push(index(&wb.recv().await));
    }
    assert_eq!(
        seen,
        (0..total).collect::<Vec<_>>(),
        "every message once, in order"
    );

    fn index(m: &serde_json::Value) -> usize {
        let content = m["content"].as_str().expect("content");
        content
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("index")
    }
}
