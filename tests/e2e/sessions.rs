//! Sessions: login, one session per user, logout (R6–R8, R21).

use huayi_im::protocol::close;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestServer, Ws};

#[tokio::test]
async fn sids_are_long_random_and_distinct() {
    // R6
    let s = TestServer::spawn().await;
    let a = s.login("alice").await;
    let b = s.login("bobby").await;
    assert!(a.sid.len() >= 32, "128 bits as hex");
    assert_ne!(a.sid, b.sid);
    let again = s.login("alice").await;
    assert_ne!(a.sid, again.sid);
}

#[tokio::test]
async fn a_new_login_revokes_the_old_session_and_closes_its_socket() {
    // R7
    let s = TestServer::spawn().await;
    let first = s.login("alice").await;
    let mut ws = first.ws().await;
    let second = s.login("alice").await;
    let (code, _) = ws.closed().await;
    assert_eq!(code, Some(close::REPLACED));
    assert_eq!(first.get("/api/users").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(second.get("/api/users").await.0, StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_closes_and_goes_offline() {
    // R8
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut ws = alice.ws().await;
    assert_eq!(bob.users("?online=true").await, ["alice"]);
    let (status, body) = alice.post("/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (code, _) = ws.closed().await;
    assert_eq!(code, Some(close::LOGGED_OUT));
    assert_eq!(alice.get("/api/users").await.0, StatusCode::UNAUTHORIZED);
    assert!(bob.users("?online=true").await.is_empty());
    // Still listed among all users (R9).
    assert_eq!(bob.users("").await, ["alice", "bobby"]);
}

#[tokio::test]
async fn a_second_socket_of_the_same_session_replaces_the_first() {
    // R21
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut first = alice.ws().await;
    let mut second = alice.ws().await;
    let (code, _) = first.closed().await;
    assert_eq!(code, Some(close::REPLACED));
    bob.send_ok(&["alice"], "to the new socket").await;
    assert_eq!(second.recv().await["content"], "to the new socket");
}

#[tokio::test]
async fn the_handshake_needs_a_live_sid() {
    // R21: 401 before any upgrade.
    let s = TestServer::spawn().await;
    for path in ["/api/ws", "/api/ws?sid=", "/api/ws?sid=nope"] {
        let resp = s
            .http
            .get(s.url(path))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The Authorization header works too.
    let alice = s.login("alice").await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/api/ws", s.addr),
    )
    .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", alice.sid).parse().expect("header"),
    );
    let (stream, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    let mut ws = Ws { stream };
    ws.send_json(json!({"message-type": "ping", "message-id": 1, "from": "alice"}))
        .await;
    assert_eq!(ws.recv().await["ack-id"], 1);
}
