//! A real server on `127.0.0.1:0` and typed HTTP/WebSocket clients for it.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use huayi_im::{Config, protocol::LoginResponse};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest},
};

/// How long a test waits for something that should happen promptly. Generous,
/// because CI is a loaded 2-core machine; only failing tests ever wait it out.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A server running in this process; shuts down gracefully on [`TestServer::stop`]
/// and is aborted on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Settings for tests: heartbeats and rate limits out of the way unless a
/// test asks for them.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.rate_limits.logins_per_second = 0.0;
    c.rate_limits.messages_per_second = 0.0;
    c.heartbeat.pong_interval = Duration::from_secs(3600);
    c.heartbeat.idle_timeout = Duration::from_secs(3600);
    c.shutdown_grace = Duration::from_secs(5);
    c
}

impl TestServer {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(huayi_im::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            http: reqwest::Client::new(),
            stop: std::sync::Mutex::new(Some(stop)),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM's equivalent.
    pub fn begin_shutdown(&self) {
        let stop = self.stop.lock().map(|mut s| s.take());
        if let Ok(Some(stop)) = stop {
            let _ = stop.send(());
        }
    }

    /// Sends SIGTERM's equivalent and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.begin_shutdown();
        let task = self.task.take().expect("running");
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("server stops within its grace period")
            .expect("server task")
    }

    /// Any request, answered with its status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        sid: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(sid) = sid {
            req = req.bearer_auth(sid);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("body is not JSON (R3): {status} {text:?}"));
        (status, body)
    }

    pub async fn login(&self, name: &str) -> User<'_> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/login",
                None,
                Some(json!({ "username": name })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {name}: {body}");
        let login: LoginResponse = serde_json::from_value(body).expect("login shape");
        assert_eq!(login.username, name);
        User {
            server: self,
            name: name.to_owned(),
            sid: login.sid,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A logged-in user with typed API calls.
pub struct User<'a> {
    pub server: &'a TestServer,
    pub name: String,
    pub sid: String,
}

impl User<'_> {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.server
            .call(reqwest::Method::GET, path, Some(&self.sid), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.server
            .call(reqwest::Method::POST, path, Some(&self.sid), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.server
            .call(reqwest::Method::DELETE, path, Some(&self.sid), None)
            .await
    }

    /// One-to-one message (R16).
    pub async fn send(&self, to: &[&str], content: &str) -> (StatusCode, Value) {
        self.post(
            "/api/messages",
            json!({"message-type": "message", "from": self.name, "to": to,
                   "content-type": "text/plain", "content": content}),
        )
        .await
    }

    /// Like [`User::send`] but the answer must be 200.
    pub async fn send_ok(&self, to: &[&str], content: &str) {
        let (status, body) = self.send(to, content).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Topic message; `to` are the mentions (R18).
    pub async fn send_topic(&self, topic: &str, to: &[&str], content: &str) -> (StatusCode, Value) {
        self.post(
            "/api/messages",
            json!({"message-type": "message", "from": self.name, "to": to, "topic": topic,
                   "content-type": "text/plain", "content": content}),
        )
        .await
    }

    pub async fn create_topic(&self, topic: &str) -> StatusCode {
        self.post("/api/topics", json!({ "topic": topic })).await.0
    }

    pub async fn join(&self, topic: &str) -> StatusCode {
        self.post(&format!("/api/topics/{topic}/actions/join"), json!({}))
            .await
            .0
    }

    pub async fn users(&self, query: &str) -> Vec<String> {
        let (status, body) = self.get(&format!("/api/users{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        list_of(&body, "username")
    }

    pub async fn ws(&self) -> Ws {
        Ws::connect(self.server, &self.sid).await
    }
}

/// The `list` of a list answer, checked against its `total`.
pub fn list_of(body: &Value, field: &str) -> Vec<String> {
    let list = body["list"].as_array().expect("list");
    assert_eq!(body["total"].as_u64(), Some(list.len() as u64), "{body}");
    list.iter()
        .map(|item| item[field].as_str().expect("field").to_owned())
        .collect()
}

/// A client WebSocket.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a socket read produced.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn connect(server: &TestServer, sid: &str) -> Self {
        let url = format!("ws://{}/api/ws?sid={sid}", server.addr);
        let (stream, _) = connect_async(url.into_client_request().expect("url"))
            .await
            .expect("WebSocket handshake");
        Ws { stream }
    }

    /// The next frame, pongs included; panics after [`PATIENCE`].
    pub async fn next_event(&mut self) -> Event {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a frame within the patience window");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Event::Json(serde_json::from_str(&t).expect("server sends JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Event::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    /// The next message that is not a heartbeat.
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.next_event().await {
                Event::Json(v) if v["message-type"] == "pong" => continue,
                Event::Json(v) => return v,
                Event::Closed(code) => {
                    panic!("socket closed ({code:?}) while waiting for a message")
                }
            }
        }
    }

    /// Reads until the server closes; returns the close code and any messages
    /// that came before it.
    pub async fn closed(&mut self) -> (Option<u16>, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            match self.next_event().await {
                Event::Json(v) if v["message-type"] == "pong" => {}
                Event::Json(v) => before.push(v),
                Event::Closed(code) => return (code, before),
            }
        }
    }

    pub async fn send_json(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send frame");
    }

    pub async fn send_raw(&mut self, msg: Message) -> Result<(), tungstenite::Error> {
        self.stream.send(msg).await
    }

    /// Asserts no chat or system message arrives before a marker message that
    /// `marker_from` sends afterwards: proves absence without sleeping.
    pub async fn expect_only_marker(&mut self, marker_content: &str) {
        let next = self.recv().await;
        assert_eq!(
            next["content"], marker_content,
            "unexpected message: {next}"
        );
    }
}
