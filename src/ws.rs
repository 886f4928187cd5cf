//! The WebSocket endpoint `/api/ws` (R21–R24, R26).
//!
//! Each socket gets two tasks: the reader (the upgrade task itself) and the
//! writer (spawned). The reader owns the inbound half: it answers pings,
//! records activity and enforces the idle timeout. The writer owns the
//! outbound half: it drains the user's mailbox in batches (many frames, one
//! flush), sends pongs on its own timer, and writes the close frame. They share
//! nothing but the hub's [`Conn`]; either side ends the socket by closing it
//! through the hub, which also detaches it from the user.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        Query, State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use serde::Deserialize;

use crate::{
    AppState,
    guard::SocketRefusal,
    http::{ApiError, ClientIp, bearer},
    hub::{Conn, Hub},
    protocol::{ClientFrame, ServerFrame, close},
};

/// Frames the writer takes from the mailbox per lock.
const BATCH: usize = 64;
/// How long a close frame may take to go out before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    sid: Option<String>,
}

/// `GET /api/ws?sid=...`: authenticates before upgrading (R21).
pub async fn handler(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(sid) = query.sid.or_else(|| bearer(&headers).map(str::to_owned)) else {
        return ApiError::Unauthorized("pass the session id as `?sid=`".into()).into_response();
    };
    let hub = state.hub;
    if hub.authenticate(&sid).is_none() {
        return ApiError::Unauthorized("session is unknown or was ended; log in again".into())
            .into_response();
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return ApiError::BadRequest(format!("expected a WebSocket upgrade: {e}"))
                .into_response();
        }
    };
    let permit = match state.guard.socket(ip) {
        Ok(p) => p,
        Err(SocketRefusal::ServerFull) => {
            return ApiError::Unavailable(
                "the server holds all the sockets it can; retry later".into(),
            )
            .into_response();
        }
        Err(SocketRefusal::TooManyFromIp) => {
            return ApiError::TooManyRequests {
                message: "too many sockets from your address".into(),
                retry_after: Duration::from_secs(10),
            }
            .into_response();
        }
    };
    let limits = &hub.config().limits;
    upgrade
        .read_buffer_size(limits.ws_read_buffer)
        .write_buffer_size(limits.ws_write_buffer)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let tracker = hub.sockets().clone();
            tracker.track_future(async move {
                let _permit = permit;
                // The sid may have been revoked during the handshake.
                match hub.connect(&sid) {
                    Some(conn) => run(hub, socket, conn).await,
                    None => {
                        let mut socket = socket;
                        let _ = socket.send(close_message(close::REPLACED)).await;
                    }
                }
            })
        })
}

async fn run(hub: Hub, socket: WebSocket, conn: Arc<Conn>) {
    tracing::info!(user = %conn.name(), "socket open");
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(hub.clone(), sink, conn.clone()));
    read_loop(&hub, stream, &conn).await;
    hub.socket_ended(&conn);
    let _ = writer.await;
    tracing::info!(user = %conn.name(), code = conn.close_code().unwrap_or(1000), "socket closed");
}

async fn read_loop(hub: &Hub, mut stream: SplitStream<WebSocket>, conn: &Conn) {
    loop {
        let idle_in = hub.idle_in(conn);
        tokio::select! {
            _ = conn.closed() => return,
            _ = tokio::time::sleep(idle_in) => {
                // HTTP requests count as activity too, so look again (R22).
                if hub.idle_in(conn).is_zero() {
                    hub.close(conn, Some(close::IDLE));
                    return;
                }
            }
            frame = stream.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        if too_big(&e) {
                            hub.close(conn, Some(close::TOO_BIG));
                        }
                        return;
                    }
                    None => return,
                };
                // R24: whatever the frame, it is activity and never fatal.
                hub.activity(conn);
                match frame {
                    Message::Text(text) => on_text(hub, conn, &text),
                    Message::Close(_) => return,
                    _ => {}
                }
            }
        }
    }
}

fn too_big(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn on_text(hub: &Hub, conn: &Conn, text: &str) {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Ping { message_id, .. }) => {
            hub.push_control(conn, encode(&ServerFrame::Ack { ack_id: message_id }));
        }
        // A pong's ack is activity, which is all it has to be.
        Ok(ClientFrame::Ack { .. }) => {}
        Err(_) => tracing::trace!(user = %conn.name(), "ignored an unknown frame"),
    }
}

fn encode(frame: &ServerFrame) -> Utf8Bytes {
    serde_json::to_string(frame)
        .expect("server frames always serialize")
        .into()
}

fn close_message(code: u16) -> Message {
    let reason = match code {
        close::GOING_AWAY => "server shutting down",
        close::TOO_BIG => "frame too large",
        close::REPLACED => "replaced by a newer login",
        close::LOGGED_OUT => "logged out",
        close::IDLE => "idle timeout",
        close::SLOW => "too slow to keep up",
        _ => "",
    };
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn write_loop(hub: Hub, mut sink: SplitSink<WebSocket, Message>, conn: Arc<Conn>) {
    let interval = hub.config().heartbeat.pong_interval;
    let mut pong = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    pong.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_id = 0u64;
    let closed = conn.closed();
    tokio::pin!(closed);
    'run: loop {
        // Write everything queued, a batch per flush. Frames leave the mailbox
        // only once written (commit), so a write that never finishes leaves
        // them queued for the next socket (R26). The batch is allocated per
        // wake-up, not per socket: most sockets are idle most of the time.
        loop {
            let mut batch = Vec::new();
            let Some(mark) = hub.peek(&conn, BATCH, &mut batch) else {
                break 'run;
            };
            if batch.is_empty() {
                break;
            }
            let write = async {
                for frame in batch {
                    sink.feed(Message::Text(frame)).await?;
                }
                sink.flush().await
            };
            if !finish(write, closed.as_mut(), &hub).await {
                break 'run;
            }
            hub.commit(&conn, mark);
        }
        tokio::select! {
            biased;
            _ = &mut closed => break,
            _ = pong.tick() => {
                pong_id += 1;
                let frame = encode(&ServerFrame::Pong {
                    to: conn.name().to_string(),
                    message_id: pong_id,
                });
                if !finish(sink.send(Message::Text(frame)), closed.as_mut(), &hub).await {
                    break;
                }
            }
            _ = conn.notified() => {}
        }
    }
    // The reader may still be waiting on the client: make sure it stops.
    let code = conn
        .close_code()
        .or_else(|| hub.shutdown().is_cancelled().then_some(close::GOING_AWAY));
    hub.close(&conn, code);
    if let Some(code) = code {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close_message(code))).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// Runs a write to the end. If the socket is closed meanwhile (say 4004
/// because this very write is stuck), the write still gets [`CLOSE_TIMEOUT`]
/// to finish, so what reaches the client is not also kept offline. `false`
/// when the write failed or did not finish in time.
async fn finish<E>(
    write: impl Future<Output = Result<(), E>>,
    mut closed: std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    hub: &Hub,
) -> bool {
    tokio::pin!(write);
    tokio::select! {
        result = &mut write => return result.is_ok(),
        _ = &mut closed => {}
    }
    if hub.shutdown().is_cancelled() {
        // Nothing outlives the process: do not hold shutdown up.
        return false;
    }
    matches!(tokio::time::timeout(CLOSE_TIMEOUT, write).await, Ok(Ok(())))
}
