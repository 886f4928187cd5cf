//! HTTP basics, names, users and topics (R1–R5, R9–R12, R14, R15, R27).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestServer, list_of};

#[tokio::test]
async fn health_answers_any_method_without_auth() {
    // R4
    let s = TestServer::spawn().await;
    for method in [Method::GET, Method::POST, Method::DELETE, Method::PUT] {
        let (status, _) = s.call(method.clone(), "/api/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{method}");
    }
    assert_eq!(
        s.call(Method::GET, "/healthz", None, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    // R3
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let (status, body) = alice.get("/api/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let (status, body) = s.call(Method::GET, "/api/login", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
    // Malformed JSON: 400 in the same shape, not a plain-text rejection.
    let resp = s
        .http
        .post(s.url("/api/login"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert!(body["error"].as_str().expect("error").contains("JSON"));
}

#[tokio::test]
async fn every_api_route_needs_a_session() {
    // R5
    let s = TestServer::spawn().await;
    let routes = [
        (Method::POST, "/api/logout"),
        (Method::GET, "/api/users"),
        (Method::GET, "/api/topics"),
        (Method::POST, "/api/topics"),
        (Method::DELETE, "/api/topics/room1"),
        (Method::POST, "/api/topics/room1/actions/join"),
        (Method::POST, "/api/topics/room1/actions/quit"),
        (Method::POST, "/api/messages"),
    ];
    for (method, path) in routes {
        let (status, body) = s.call(method.clone(), path, None, Some(json!({}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(body["error"].is_string());
        let (status, _) = s.call(method.clone(), path, Some("not-a-sid"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} bad sid");
    }
}

#[tokio::test]
async fn names_are_checked() {
    // R1
    let s = TestServer::spawn().await;
    for bad in ["abc", "a b c d", "x".repeat(31).as_str(), "名字名字", ""] {
        let (status, body) = s
            .call(
                Method::POST,
                "/api/login",
                None,
                Some(json!({ "username": bad })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
    }
    let (status, _) = s
        .call(
            Method::POST,
            "/api/login",
            None,
            Some(json!({ "username": 1234 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let alice = s.login("alice").await;
    assert_eq!(alice.create_topic("no").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        alice.create_topic("bad/topic").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        alice.post("/api/topics/x/actions/join", json!({})).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn users_list_everyone_who_logged_in_and_who_is_online() {
    // R2, R9, R23
    let s = TestServer::spawn().await;
    let carol = s.login("carol").await;
    let alice = s.login("alice").await;
    let _bob = s.login("bobby").await;
    // A user only addressed is not listed.
    alice.send_ok(&["dave-never"], "hi").await;
    assert_eq!(alice.users("").await, ["alice", "bobby", "carol"]);
    assert_eq!(
        alice.users("?online=false").await,
        ["alice", "bobby", "carol"]
    );
    assert!(alice.users("?online=true").await.is_empty());
    let _ws = carol.ws().await;
    let _ws2 = alice.ws().await;
    assert_eq!(alice.users("?online=true").await, ["alice", "carol"]);
    assert_eq!(
        alice.get("/api/users?online=maybe").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn topics_are_created_listed_and_conflict() {
    // R10, R11
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    assert_eq!(alice.create_topic("zeta").await, StatusCode::OK);
    assert_eq!(alice.create_topic("alpha").await, StatusCode::OK);
    assert_eq!(alice.create_topic("alpha").await, StatusCode::CONFLICT);
    let (status, body) = alice.get("/api/topics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list_of(&body, "topic"), ["alpha", "zeta"]);
}

#[tokio::test]
async fn join_and_quit_need_an_existing_topic() {
    // R12
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    assert_eq!(alice.join("ghost").await, StatusCode::NOT_FOUND);
    let (status, _) = alice
        .post("/api/topics/ghost/actions/quit", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    alice.create_topic("room1").await;
    // Quitting a topic one is not in is fine.
    let (status, _) = alice
        .post("/api/topics/room1/actions/quit", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alice.join("room1").await, StatusCode::OK);
    assert_eq!(alice.join("room1").await, StatusCode::OK);
    let (status, _) = alice
        .post("/api/topics/room1/actions/dance", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn up_messages_are_strict() {
    // R14, R15, R16, R27
    let s = TestServer::spawn_with(|c| {
        c.limits.max_to = 3;
        c.limits.max_content_bytes = 100;
        c.limits.max_body_bytes = 1000;
    })
    .await;
    let alice = s.login("alice").await;
    let good = json!({"message-type": "message", "from": "alice", "to": ["bobby"],
                      "content-type": "text/plain", "content": "hi"});
    assert_eq!(
        alice.post("/api/messages", good.clone()).await.0,
        StatusCode::OK
    );
    let with = |key: &str, value: serde_json::Value| {
        let mut m = good.clone();
        m[key] = value;
        m
    };
    let bad_requests = [
        with("extra", json!(1)),
        with("to", json!("bobby")),
        with("to", json!([])),
        with("to", json!(["b"])),
        with("to", json!(["bob1", "bob2", "bob3", "bob4"])),
        with("content", json!(5)),
        with("content-type", json!("text/html")),
        with("message-type", json!("ping")),
        with("topic", json!("no")),
        json!({"message-type": "message", "from": "alice", "to": ["bobby"], "content-type": "text/plain"}),
        json!([1, 2]),
    ];
    for body in bad_requests {
        let (status, answer) = alice.post("/api/messages", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert!(answer["error"].is_string());
    }
    let (status, _) = alice
        .post("/api/messages", with("from", json!("bobby")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = alice
        .post("/api/messages", with("content", json!("x".repeat(101))))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = alice
        .post("/api/messages", with("content", json!("x".repeat(2000))))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_web_client_is_served_and_api_404s_stay_json() {
    // Issue 4: assets at `/`; unknown `/api/*` is still the API's JSON 404 (R3).
    let s = TestServer::spawn().await;
    let page = s.http.get(s.url("/")).send().await.expect("request");
    assert_eq!(page.status(), StatusCode::OK);
    let content_type = page.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let etag = page.headers()["etag"].clone();
    assert!(page.text().await.expect("body").contains("<html"));
    let again = s
        .http
        .get(s.url("/"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let (status, body) = s.call(Method::GET, "/api/nothing-here", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let (status, _) = s.call(Method::GET, "/no-such-file.js", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
