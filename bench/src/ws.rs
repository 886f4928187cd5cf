//! One benchmark client socket: a task that holds `/api/ws` open the way a
//! real client does — acks every server pong, pings on its own timer, and
//! reconnects after a `4004` (slow consumer) close to collect what the server
//! kept offline — while checking every chat frame it receives.
//!
//! Content of every bench message is `seq:send_us:from:to:xxxx…` (see
//! [`content`]); a receipt is checked against it: right recipient, not the
//! sender's own copy, not a duplicate, in order per sender (R19).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use tokio_util::sync::CancellationToken;

use huayi_im::protocol::{ClientFrame, ServerFrame, close};

use crate::net::Target;
use crate::net::anyhow_lite::{Context, Result};
use crate::stats::{SeqSet, Shared};
use crate::sys::now_us;

/// The id of the final liveness ping every socket sends when asked to verify.
const VERIFY_PING_ID: u64 = 4_000_000_000;

/// Builds a bench message content of at least `bytes` bytes.
pub fn content(seq: u64, send_us: u64, from: u32, to: Option<u32>, bytes: usize) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.max(48));
    let _ = match to {
        Some(to) => write!(s, "{seq}:{send_us}:{from}:{to}:"),
        None => write!(s, "{seq}:{send_us}:{from}:-:"),
    };
    while s.len() < bytes {
        s.push('x');
    }
    s
}

/// A parsed bench content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub send_us: u64,
    pub from: u32,
    pub to: Option<u32>,
}

/// Finds the bench stamp in a down chat frame without a full JSON parse: the
/// usernames before `content` match `[a-zA-Z0-9_-]` (R1), so the first
/// `"content":"` is the field.
pub fn parse_stamp(frame: &str) -> Option<Stamp> {
    const KEY: &str = "\"content\":\"";
    let start = frame.find(KEY)? + KEY.len();
    let mut it = frame[start..].splitn(5, ':');
    let seq = it.next()?.parse().ok()?;
    let send_us = it.next()?.parse().ok()?;
    let from = it.next()?.parse().ok()?;
    let to = match it.next()? {
        "-" => None,
        t => Some(t.parse().ok()?),
    };
    it.next()?;
    Some(Stamp {
        seq,
        send_us,
        from,
        to,
    })
}

fn is_chat(frame: &str) -> bool {
    frame.starts_with("{\"message-type\":\"message\"")
        || frame.contains("\"message-type\":\"message\"")
}

/// What all socket tasks of a run share besides the counters.
#[derive(Debug)]
pub struct Control {
    pub target: Target,
    pub shared: Arc<Shared>,
    /// Bounds concurrent handshakes.
    pub handshakes: Semaphore,
    pub ping_every: Option<Duration>,
    /// Ask every socket for a final ping/ack round trip.
    pub verify: CancellationToken,
    /// Close every socket.
    pub stop: CancellationToken,
}

/// One socket's identity.
#[derive(Debug, Clone)]
pub struct Client {
    pub idx: u32,
    pub user: String,
    pub sid: String,
}

/// What one socket saw, for the final per-recipient check.
#[derive(Debug, Default)]
pub struct Outcome {
    pub idx: u32,
    pub unique: u64,
    pub connected: bool,
    pub verified: bool,
}

fn ws_config() -> WebSocketConfig {
    // Small buffers like the server's: 10k sockets must not cost 1.3 GB here.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

async fn open(target: &Target, c: &Client) -> Result<WebSocketStream<TcpStream>> {
    let tcp = target.tcp(c.idx as usize).await?;
    let url = format!("ws://{}/api/ws?sid={}", target.authority, c.sid);
    let (ws, _) = client_async_with_config(url, tcp, Some(ws_config()))
        .await
        .context("ws handshake")?;
    Ok(ws)
}

/// Runs one client socket until `ctl.stop`.
pub async fn run(c: Client, ctl: Arc<Control>) -> Outcome {
    let sh = &ctl.shared;
    let mut out = Outcome {
        idx: c.idx,
        ..Outcome::default()
    };
    let ws = {
        let _permit = ctl.handshakes.acquire().await;
        tokio::select! {
            r = open(&ctl.target, &c) => r,
            _ = ctl.stop.cancelled() => Err("stopped before connect".into()),
        }
    };
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            sh.connect_failed.fetch_add(1, Relaxed);
            sh.note_error(format!("{}: {e}", c.user));
            return out;
        }
    };
    out.connected = true;
    sh.connected.fetch_add(1, Relaxed);
    sh.open.fetch_add(1, Relaxed);

    let mut rx = Rx {
        idx: c.idx,
        seen: SeqSet::default(),
        last_from: HashMap::new(),
        unique: 0,
    };
    let ping_every = ctl.ping_every.unwrap_or(Duration::from_secs(3600));
    // Spread the first pings over one interval so they do not arrive in bursts.
    let offset = ping_every.mul_f64((c.idx % 1000) as f64 / 1000.0);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + offset, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping_id: u64 = 0;
    let mut verify_sent = false;

    loop {
        tokio::select! {
            biased;
            _ = ctl.stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                break;
            }
            _ = ctl.verify.cancelled(), if !verify_sent => {
                verify_sent = true;
                if send_frame(&mut ws, &ClientFrame::Ping {
                    message_id: VERIFY_PING_ID.into(),
                    from: Some(c.user.clone()),
                }).await.is_err() {
                    sh.note_error(format!("{}: verify ping failed", c.user));
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if is_chat(t) {
                        rx.chat(t, sh);
                    } else {
                        match serde_json::from_str::<ServerFrame>(t) {
                            Ok(ServerFrame::Pong { message_id, .. }) => {
                                sh.pongs.fetch_add(1, Relaxed);
                                let ack = ClientFrame::Ack { ack_id: message_id.into() };
                                if send_frame(&mut ws, &ack).await.is_ok() {
                                    sh.acks_sent.fetch_add(1, Relaxed);
                                }
                            }
                            Ok(ServerFrame::Ack { ack_id }) => {
                                if ack_id.as_u64() == Some(VERIFY_PING_ID) {
                                    if !out.verified {
                                        out.verified = true;
                                        sh.verified.fetch_add(1, Relaxed);
                                    }
                                } else {
                                    sh.ping_acks.fetch_add(1, Relaxed);
                                }
                            }
                            Ok(ServerFrame::System { .. }) => {
                                sh.system_frames.fetch_add(1, Relaxed);
                            }
                            _ => {
                                sh.foreign_frames.fetch_add(1, Relaxed);
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    sh.note_close(code);
                    sh.open.fetch_sub(1, Relaxed);
                    if code == close::SLOW && !ctl.stop.is_cancelled() {
                        // A real client reconnects; the server kept the rest offline (R26).
                        sh.reconnects.fetch_add(1, Relaxed);
                        match open(&ctl.target, &c).await {
                            Ok(new) => {
                                ws = new;
                                sh.open.fetch_add(1, Relaxed);
                                continue;
                            }
                            Err(e) => sh.note_error(format!("{}: reconnect: {e}", c.user)),
                        }
                    } else {
                        sh.note_error(format!("{}: closed by server with {code}", c.user));
                    }
                    out.unique = rx.unique;
                    return out;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    sh.note_error(format!("{}: {e}", c.user));
                    sh.note_close(1006);
                    sh.open.fetch_sub(1, Relaxed);
                    out.unique = rx.unique;
                    return out;
                }
                None => {
                    sh.note_error(format!("{}: socket ended without close frame", c.user));
                    sh.note_close(1006);
                    sh.open.fetch_sub(1, Relaxed);
                    out.unique = rx.unique;
                    return out;
                }
            },
            _ = ping.tick(), if ctl.ping_every.is_some() => {
                ping_id += 1;
                let p = ClientFrame::Ping { message_id: ping_id.into(), from: Some(c.user.clone()) };
                if send_frame(&mut ws, &p).await.is_ok() {
                    sh.pings_sent.fetch_add(1, Relaxed);
                }
            }
        }
    }
    sh.open.fetch_sub(1, Relaxed);
    out.unique = rx.unique;
    out
}

async fn send_frame(ws: &mut WebSocketStream<TcpStream>, f: &ClientFrame) -> Result<()> {
    let text = serde_json::to_string(f).context("encode")?;
    ws.send(Message::text(text)).await.context("ws send")?;
    Ok(())
}

/// Receive-side checks of one socket.
struct Rx {
    idx: u32,
    seen: SeqSet,
    /// Last sequence number seen from each sender (R19 order check).
    last_from: HashMap<u32, u64>,
    unique: u64,
}

impl Rx {
    fn chat(&mut self, frame: &str, sh: &Shared) {
        let now = now_us();
        let Some(st) = parse_stamp(frame) else {
            sh.foreign_frames.fetch_add(1, Relaxed);
            return;
        };
        let lat = now.saturating_sub(st.send_us).max(1);
        let mis = st.from == self.idx || st.to.is_some_and(|to| to != self.idx);
        let mut fresh = false;
        let mut reordered = false;
        if !mis {
            fresh = self.seen.insert(st.seq);
            if fresh {
                self.unique += 1;
                if let Some(prev) = self.last_from.insert(st.from, st.seq) {
                    reordered = prev > st.seq;
                }
                sh.note_msg_latency(st.seq, lat);
            }
        }
        let mut s = sh.shard(self.idx);
        let _ = s.hist.record(lat);
        s.delivered += 1;
        s.last_us = s.last_us.max(now);
        if mis {
            s.misdelivered += 1;
        } else if fresh {
            s.unique += 1;
            s.reordered += reordered as u64;
        } else {
            s.dups += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_through_a_down_frame() {
        let c = content(42, 123456, 7, Some(9), 100);
        assert_eq!(c.len(), 100);
        let frame = format!(
            r#"{{"message-type":"message","from":"b_u7","to":["b_u9"],"content-type":"text/plain","content":"{c}","id":1,"sent-at":2}}"#
        );
        assert!(is_chat(&frame));
        assert_eq!(
            parse_stamp(&frame),
            Some(Stamp {
                seq: 42,
                send_us: 123456,
                from: 7,
                to: Some(9)
            })
        );
        let topic = content(1, 2, 3, None, 10);
        let frame = format!(r#"{{"content":"{topic}"}}"#);
        assert_eq!(parse_stamp(&frame).and_then(|s| s.to), None);
    }

    #[test]
    fn foreign_content_is_not_a_stamp() {
        assert_eq!(parse_stamp(r#"{"content":"hello"}"#), None);
    }
}
