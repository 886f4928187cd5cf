//! Offline delivery (R25) and its bounds (R26).

use std::time::Duration;

use crate::helpers::TestServer;

#[tokio::test]
async fn offline_messages_come_first_oldest_first_exactly_once() {
    // R25, R2: also for a user who never logged in.
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    for i in 0..5 {
        alice.send_ok(&["bobby"], &format!("offline {i}")).await;
    }
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    alice.send_ok(&["bobby"], "live").await;
    for i in 0..5 {
        assert_eq!(wb.recv().await["content"], format!("offline {i}"));
    }
    assert_eq!(wb.recv().await["content"], "live");
    // Reconnecting does not deliver them again.
    drop(wb);
    let mut wb = bob.ws().await;
    alice.send_ok(&["bobby"], "marker").await;
    wb.expect_only_marker("marker").await;
}

#[tokio::test]
async fn expired_messages_are_never_delivered() {
    // R25
    let ttl = Duration::from_millis(300);
    let s = TestServer::spawn_with(|c| c.offline.ttl = ttl).await;
    let alice = s.login("alice").await;
    alice.send_ok(&["bobby"], "stale").await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    alice.send_ok(&["bobby"], "fresh").await;
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    assert_eq!(wb.recv().await["content"], "fresh");
}

#[tokio::test]
async fn a_full_offline_store_drops_the_oldest() {
    // R26
    let s = TestServer::spawn_with(|c| c.offline.max_messages_per_user = 3).await;
    let alice = s.login("alice").await;
    for i in 0..5 {
        alice.send_ok(&["bobby"], &i.to_string()).await;
    }
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    for i in 2..5 {
        assert_eq!(wb.recv().await["content"], i.to_string());
    }
    alice.send_ok(&["bobby"], "marker").await;
    wb.expect_only_marker("marker").await;
}

#[tokio::test]
async fn a_logged_out_user_gets_messages_on_the_next_login() {
    // R8, R25
    let s = TestServer::spawn().await;
    let alice = s.login("alice").await;
    let bob = s.login("bobby").await;
    let _wb = bob.ws().await;
    bob.post("/api/logout", serde_json::json!({})).await;
    alice.send_ok(&["bobby"], "while away").await;
    let bob = s.login("bobby").await;
    let mut wb = bob.ws().await;
    assert_eq!(wb.recv().await["content"], "while away");
}
