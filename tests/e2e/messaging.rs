//! Sending: one-to-one, topics, mentions, deletion, order (R11–R13, R16–R20).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestServer;

#[tokio::test]
async fn one_to_one_goes_to_each_recipient_alone() {
    // R16, R20
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let carol = s.login("carol").await;
    let (mut wa, mut wb, mut wc) = (alice.ws().await, bob.ws().await, carol.ws().await);
    let (status, receipt) = alice.send(&["bobby", "carol", "bobby"], "hello").await;
    assert_eq!(status, StatusCode::OK);
    for (ws, me) in [(&mut wb, "bobby"), (&mut wc, "carol")] {
        let m = ws.recv().await;
        assert_eq!(m["message-type"], "message");
        assert_eq!(m["from"], "alice");
        assert_eq!(m["to"], json!([me]));
        assert_eq!(m["content-type"], "text/plain");
        assert_eq!(m["content"], "hello");
        assert!(m.get("topic").is_none());
        assert_eq!(m["id"], receipt["id"]);
        assert_eq!(m["sent-at"], receipt["sent-at"]);
    }
    // Duplicates count once: the next thing bob sees is the marker.
    carol.send_ok(&["bobby"], "marker").await;
    wb.expect_only_marker("marker").await;
    // The sender gets no copy.
    bob.send_ok(&["alice"], "marker").await;
    wa.expect_only_marker("marker").await;
}

#[tokio::test]
async fn per_sender_order_is_kept() {
    // R19
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    for i in 0..100 {
        alice.send_ok(&["bobby"], &i.to_string()).await;
    }
    for i in 0..100 {
        assert_eq!(wb.recv().await["content"], i.to_string());
    }
}

#[tokio::test]
async fn topic_messages_reach_every_member_but_the_sender() {
    // R11, R18
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let carol = s.login("carol").await;
    let dave = s.login("davey").await;
    let (mut wa, mut wb, mut wc, mut wd) = (
        alice.ws().await,
        bob.ws().await,
        carol.ws().await,
        dave.ws().await,
    );
    assert_eq!(alice.create_topic("room1").await, StatusCode::OK);
    assert_eq!(bob.join("room1").await, StatusCode::OK);
    // Creating did not join alice; sending does. carol joins by mention.
    let (status, _) = alice.send_topic("room1", &["carol"], "hi @carol").await;
    assert_eq!(status, StatusCode::OK);
    for ws in [&mut wb, &mut wc] {
        let m = ws.recv().await;
        assert_eq!(m["topic"], "room1");
        assert_eq!(m["from"], "alice");
        assert_eq!(m["to"], json!(["carol"]));
        assert_eq!(m["content"], "hi @carol");
    }
    // Now all three are members: bob's message reaches alice and carol, not dave.
    bob.send_topic("room1", &[], "second").await;
    assert_eq!(wa.recv().await["content"], "second");
    assert_eq!(wc.recv().await["content"], "second");
    alice.send_ok(&["davey"], "marker").await;
    wd.expect_only_marker("marker").await;
    bob.send_ok(&["alice"], "marker").await;
    wa.expect_only_marker("marker").await;
}

#[tokio::test]
async fn creating_a_topic_does_not_join_it_and_quitting_stops_delivery() {
    // R11, R12
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let mut wa = alice.ws().await;
    alice.create_topic("room1").await;
    bob.send_topic("room1", &[], "not for alice").await;
    bob.send_ok(&["alice"], "marker").await;
    wa.expect_only_marker("marker").await;
    alice.join("room1").await;
    bob.send_topic("room1", &[], "for alice").await;
    assert_eq!(wa.recv().await["content"], "for alice");
    alice
        .post("/api/topics/room1/actions/quit", json!({}))
        .await;
    bob.send_topic("room1", &[], "after quit").await;
    bob.send_ok(&["alice"], "marker2").await;
    wa.expect_only_marker("marker2").await;
    // A mention joins again.
    bob.send_topic("room1", &["alice"], "come back").await;
    assert_eq!(wa.recv().await["content"], "come back");
}

#[tokio::test]
async fn an_unknown_topic_is_404_and_a_notice_to_the_sender_only() {
    // R17
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let (mut wa, mut wb) = (alice.ws().await, bob.ws().await);
    let (status, body) = alice.send_topic("nowhere", &["bobby"], "hi").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let notice = wa.recv().await;
    assert_eq!(
        notice,
        json!({"message-type": "system", "topic": "__topic_not_found__",
               "content-type": "application/json", "content": {"topic": "nowhere"}})
    );
    // Nothing forwarded, topic not created.
    alice.send_ok(&["bobby"], "marker").await;
    wb.expect_only_marker("marker").await;
    let (_, topics) = alice.get("/api/topics").await;
    assert_eq!(topics["total"], 0);
}

#[tokio::test]
async fn deleting_a_topic_notifies_members_drops_its_messages_and_forgets_them() {
    // R13
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let carol = s.login("carol").await;
    let mut wa = alice.ws().await;
    alice.create_topic("room1").await;
    alice.join("room1").await;
    bob.join("room1").await;
    // bob is offline: a topic message and a one-to-one wait for him.
    alice.send_topic("room1", &[], "doomed").await;
    carol.send_ok(&["bobby"], "survives").await;
    let (status, _) = carol.delete("/api/topics/room1").await;
    assert_eq!(status, StatusCode::OK);
    let deleted = json!({"message-type": "system", "topic": "__topic_is_deleted__",
                         "content-type": "application/json", "content": {"topic": "room1"}});
    assert_eq!(wa.recv().await, deleted);
    let mut wb = bob.ws().await;
    assert_eq!(wb.recv().await["content"], "survives");
    assert_eq!(wb.recv().await, deleted);
    // Missing topic: 404. Re-created: starts empty.
    assert_eq!(
        carol.delete("/api/topics/room1").await.0,
        StatusCode::NOT_FOUND
    );
    carol.create_topic("room1").await;
    carol.send_topic("room1", &[], "fresh start").await;
    carol.send_ok(&["alice"], "marker").await;
    wa.expect_only_marker("marker").await;
}
