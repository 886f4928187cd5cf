//! Wire types: every JSON shape that crosses HTTP or the WebSocket.
//!
//! These are serde types only; they carry no behaviour and check nothing
//! beyond JSON shape. Validation of names and values lives in [`crate::domain`].
//! Field names follow `reference/openapi.yaml` exactly (kebab-case on the wire).
//! Both directions are (de)serializable so that clients (tests, `im-bench`)
//! share them with the server.

use serde::{Deserialize, Serialize};

/// `message-type` of a chat message, up or down.
pub const MESSAGE: &str = "message";
/// `content-type` of a chat message.
pub const TEXT_PLAIN: &str = "text/plain";
/// System message topic: a topic the user belonged to was deleted (R13).
pub const TOPIC_IS_DELETED: &str = "__topic_is_deleted__";
/// System message topic: the user sent to a topic that does not exist (R17).
pub const TOPIC_NOT_FOUND: &str = "__topic_not_found__";

/// `POST /api/login` body: `{"username": "alice"}`. Other fields are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
}

/// `POST /api/login` answer: `{"sid": "9f2c…", "username": "alice"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    pub sid: String,
    pub username: String,
}

/// `POST /api/topics` body: `{"topic": "rust-lang"}`. Other fields are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicRequest {
    pub topic: String,
}

/// A user in `GET /api/users`: `{"username": "alice"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserItem {
    pub username: String,
}

/// A topic in `GET /api/topics`: `{"topic": "rust-lang"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicItem {
    pub topic: String,
}

/// Every list answer: `{"total": 2, "list": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResponse<T> {
    pub total: usize,
    pub list: Vec<T>,
}

/// Every error answer: `{"error": "topic not found"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /api/messages` answer (an extension of the contract, R20):
/// `{"id": 42, "sent-at": 1764860000000}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResponse {
    pub id: u64,
    #[serde(rename = "sent-at")]
    pub sent_at: u64,
}

/// `POST /api/messages` body, one-to-one or topic (R14):
///
/// ```json
/// {"message-type":"message","from":"alice","to":["bob"],
///  "content-type":"text/plain","content":"hi"}
/// {"message-type":"message","from":"alice","to":["carol"],"topic":"rust-lang",
///  "content-type":"text/plain","content":"hi @carol"}
/// ```
///
/// Field types are strict; `message-type`/`content-type` values and the names
/// are checked by [`crate::domain::Outgoing::parse`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpMessage {
    #[serde(rename = "message-type")]
    pub message_type: String,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(rename = "content-type")]
    pub content_type: String,
    pub content: String,
}

/// A chat message as delivered down the WebSocket (R16, R18, R20):
///
/// ```json
/// {"message-type":"message","from":"alice","to":["bob"],
///  "content-type":"text/plain","content":"hi","id":42,"sent-at":1764860000000}
/// ```
///
/// `topic` is present for topic messages. `id` is unique per accepted
/// message (all recipients of one message see the same id); `sent-at` is the
/// acceptance time in Unix milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DownMessage<S = String> {
    #[serde(rename = "message-type")]
    pub message_type: S,
    pub from: S,
    pub to: Vec<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<S>,
    #[serde(rename = "content-type")]
    pub content_type: S,
    pub content: S,
    pub id: u64,
    #[serde(rename = "sent-at")]
    pub sent_at: u64,
}

/// The `content` of a system message: `{"topic": "rust-lang"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SystemContent<S = String> {
    pub topic: S,
}

/// Frames the server sends down the WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "message-type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// A chat message, see [`DownMessage`].
    Message(Box<DownMessage>),
    /// `{"message-type":"system","topic":"__topic_is_deleted__",
    ///   "content-type":"application/json","content":{"topic":"rust-lang"}}`
    System {
        topic: String,
        #[serde(rename = "content-type")]
        content_type: String,
        content: SystemContent,
    },
    /// Server heartbeat, to be acked: `{"message-type":"pong","to":"alice","message-id":7}`.
    Pong {
        to: String,
        #[serde(rename = "message-id")]
        message_id: u64,
    },
    /// Answer to a client ping: `{"message-type":"ack","ack-id":3}`.
    Ack {
        #[serde(rename = "ack-id")]
        ack_id: serde_json::Number,
    },
}

/// Frames a client sends up the WebSocket (R22). Anything else is ignored (R24).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "message-type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// `{"message-type":"ping","message-id":3,"from":"alice"}`; answered by an ack
    /// echoing the id exactly as sent.
    Ping {
        #[serde(rename = "message-id")]
        message_id: serde_json::Number,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// `{"message-type":"ack","ack-id":7}`: the client saw pong 7.
    Ack {
        #[serde(rename = "ack-id")]
        ack_id: serde_json::Number,
    },
}

/// WebSocket close codes the server uses (R7, R8, R23, R24, R26, R31).
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A client frame was larger than `limits.max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// A newer login (or a newer socket of the same session) replaced this one.
    pub const REPLACED: u16 = 4001;
    /// The session logged out.
    pub const LOGGED_OUT: u16 = 4002;
    /// No activity within `heartbeat.idle_timeout`.
    pub const IDLE: u16 = 4003;
    /// The socket did not keep up with its send queue; unwritten messages were
    /// kept offline.
    pub const SLOW: u16 = 4004;
}
