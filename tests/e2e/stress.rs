//! Many users at once (R19, R28): nothing is lost under concurrency.

use std::collections::HashMap;

use futures_util::future::join_all;

use crate::helpers::{TestServer, User, Ws};

const USERS: usize = 1000;
const P2P_PER_USER: usize = 3;
const TOPIC_SENDERS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_users_chat_without_losing_a_message() {
    let s = TestServer::spawn().await;
    let names: Vec<String> = (0..USERS).map(|i| format!("user{i:04}")).collect();
    let users: Vec<User<'_>> = join_all(names.iter().map(|n| s.login(n))).await;
    let mut sockets: Vec<Ws> = join_all(users.iter().map(|u| u.ws())).await;
    users[0].create_topic("everyone").await;
    join_all(users.iter().map(|u| u.join("everyone"))).await;

    // Each user sends to three others, concurrently with everyone else; a few
    // also talk in the shared topic.
    join_all(users.iter().enumerate().map(|(i, u)| {
        let names = &names;
        async move {
            for k in 1..=P2P_PER_USER {
                let to = &names[(i + k * 7) % USERS];
                u.send_ok(&[to], &format!("{i}>{k}")).await;
            }
            if i < TOPIC_SENDERS {
                let (status, _) = u.send_topic("everyone", &[], &format!("topic {i}")).await;
                assert_eq!(status, 200);
            }
        }
    }))
    .await;

    // Every socket gets exactly its expected messages, per-sender in order.
    let received = join_all(sockets.iter_mut().enumerate().map(|(i, ws)| async move {
        let expected_p2p = P2P_PER_USER; // (i - 7k) mod USERS is a distinct sender per k
        let expected_topic = TOPIC_SENDERS - usize::from(i < TOPIC_SENDERS);
        let mut by_sender: HashMap<String, Vec<String>> = HashMap::new();
        for _ in 0..expected_p2p + expected_topic {
            let m = ws.recv().await;
            by_sender
                .entry(m["from"].as_str().expect("from").to_owned())
                .or_default()
                .push(m["content"].as_str().expect("content").to_owned());
        }
        (i, by_sender)
    }))
    .await;
    for (i, by_sender) in received {
        for (from, contents) in by_sender {
            let p2p: Vec<&String> = contents.iter().filter(|c| c.contains('>')).collect();
            let mut sorted = p2p.clone();
            sorted.sort();
            assert_eq!(p2p, sorted, "user {i}: order from {from}");
        }
    }
    // And nothing more: a marker is next for everyone.
    let first = &users[0];
    join_all(
        users[1..]
            .iter()
            .map(|u| async move { first.send_ok(&[&u.name], "end").await }),
    )
    .await;
    for (i, ws) in sockets.iter_mut().enumerate() {
        if i != 0 {
            ws.expect_only_marker("end").await;
        }
    }
}
