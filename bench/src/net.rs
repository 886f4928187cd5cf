//! Client connections: TCP sockets spread over loopback source addresses,
//! keep-alive HTTP/1.1 connections (one request in flight each, no pool lock),
//! and the typed API calls the scenarios need.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow_lite::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpSocket, TcpStream};

use huayi_im::protocol::{LoginRequest, LoginResponse, TopicRequest};

/// A tiny `anyhow`: a boxed error with context, to keep the dependency list short.
pub mod anyhow_lite {
    pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
    pub type Result<T, E = Error> = std::result::Result<T, E>;

    /// Adds a human-readable prefix to an error.
    pub trait Context<T> {
        fn context(self, what: impl std::fmt::Display) -> Result<T>;
    }

    impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
        fn context(self, what: impl std::fmt::Display) -> Result<T> {
            self.map_err(|e| format!("{what}: {e}").into())
        }
    }

    macro_rules! bail {
        ($($t:tt)*) => { return Err(format!($($t)*).into()) };
    }
    pub(crate) use bail;
}

/// Where the server is, and which local addresses clients connect from.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Host header / WebSocket URL authority.
    pub authority: String,
    /// Loopback source addresses to spread sockets over; empty means let the
    /// kernel choose (one address, about 28,000 ephemeral ports).
    pub sources: Vec<IpAddr>,
}

impl Target {
    /// Parses `http://host:port`. Sources are 127.0.0.2.. when the server is on
    /// loopback and `spread > 0`.
    pub fn parse(url: &str, spread: u8) -> Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url must start with http://, got {url}");
        };
        let authority = rest.trim_end_matches('/').to_string();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)
            .context(format!("resolving {authority}"))?
            .find(SocketAddr::is_ipv4);
        let Some(addr) = addr else {
            bail!("{authority} has no IPv4 address");
        };
        let sources = if addr.ip().is_loopback() {
            (0..spread)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            addr,
            authority,
            sources,
        })
    }

    /// The source address for the `i`-th connection.
    pub fn source(&self, i: usize) -> Option<IpAddr> {
        if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[i % self.sources.len()])
        }
    }

    /// Opens a TCP connection from the `i`-th source address.
    pub async fn tcp(&self, i: usize) -> Result<TcpStream> {
        let sock = TcpSocket::new_v4().context("socket")?;
        if let Some(ip) = self.source(i) {
            sock.bind(SocketAddr::new(ip, 0))
                .context(format!("bind {ip}"))?;
        }
        let stream = sock
            .connect(self.addr)
            .await
            .context(format!("connect {}", self.addr))?;
        stream.set_nodelay(true).context("nodelay")?;
        Ok(stream)
    }

    /// Opens a keep-alive HTTP/1.1 connection.
    pub async fn http(&self, i: usize) -> Result<HttpConn> {
        let stream = self.tcp(i).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("http handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn {
            sender,
            target: self.clone(),
            index: i,
        })
    }

    /// Opens `n` HTTP connections.
    pub async fn http_pool(&self, n: usize) -> Result<Vec<HttpConn>> {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(self.http(i).await?);
        }
        Ok(v)
    }
}

/// One keep-alive HTTP/1.1 connection; reconnects if the server closed it
/// between requests (never mid-request: a POST is not retried).
#[derive(Debug)]
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    target: Target,
    index: usize,
}

impl HttpConn {
    /// POSTs a JSON body; returns the status and the body bytes.
    pub async fn post(
        &mut self,
        path: &str,
        sid: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            *self = self.target.http(self.index).await?;
        }
        let mut req = Request::post(path)
            .header(header::HOST, &self.target.authority)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(sid) = sid {
            req = req.header(header::AUTHORIZATION, format!("Bearer {sid}"));
        }
        let req = req.body(Full::new(body)).context("request")?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .context(format!("POST {path}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .context(format!("POST {path} body"))?
            .to_bytes();
        Ok((status, body))
    }

    /// POSTs `body` as JSON and decodes a 200 answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        sid: Option<&str>,
        body: &B,
    ) -> Result<T> {
        let bytes = Bytes::from(serde_json::to_vec(body).context("encode")?);
        let (status, resp) = self.post(path, sid, bytes).await?;
        if status != StatusCode::OK {
            bail!(
                "POST {path}: {status}: {}",
                String::from_utf8_lossy(&resp)
                    .chars()
                    .take(200)
                    .collect::<String>()
            );
        }
        serde_json::from_slice(&resp).context(format!("POST {path}: decode"))
    }

    /// `POST /api/login`.
    pub async fn login(&mut self, username: &str) -> Result<LoginResponse> {
        let req = LoginRequest {
            username: username.to_string(),
        };
        self.post_json("/api/login", None, &req).await
    }

    /// `POST /api/topics`.
    pub async fn create_topic(&mut self, sid: &str, topic: &str) -> Result<()> {
        let req = TopicRequest {
            topic: topic.to_string(),
        };
        let _: serde_json::Value = self.post_json("/api/topics", Some(sid), &req).await?;
        Ok(())
    }

    /// `POST /api/topics/{topic}/actions/join`.
    pub async fn join(&mut self, sid: &str, topic: &str) -> Result<()> {
        let path = format!("/api/topics/{topic}/actions/join");
        let (status, body) = self.post(&path, Some(sid), Bytes::new()).await?;
        if status != StatusCode::OK {
            bail!("POST {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }

    /// `GET /healthz` is answered (used to wait for a spawned server).
    pub async fn get_ok(&mut self, path: &str) -> Result<bool> {
        let req = Request::get(path)
            .header(header::HOST, &self.target.authority)
            .body(Full::new(Bytes::new()))
            .context("request")?;
        let resp = self.sender.send_request(req).await.context("GET")?;
        Ok(resp.status() == StatusCode::OK)
    }
}

/// Runs `f(conn, i)` for `i` in `0..n` over the connections, one request in
/// flight per connection, on the current task (setup traffic only).
pub async fn pool_map<T, F>(conns: &mut [HttpConn], n: usize, f: F) -> Result<Vec<T>>
where
    F: AsyncFn(&mut HttpConn, usize) -> Result<T>,
{
    let next = std::cell::Cell::new(0usize);
    let results: std::cell::RefCell<Vec<Option<T>>> =
        std::cell::RefCell::new((0..n).map(|_| None).collect());
    let f = &f;
    let workers = conns.iter_mut().map(|c| {
        let next = &next;
        let results = &results;
        async move {
            loop {
                let i = next.get();
                if i >= n {
                    return Ok::<(), anyhow_lite::Error>(());
                }
                next.set(i + 1);
                let r = f(c, i).await?;
                results.borrow_mut()[i] = Some(r);
            }
        }
    });
    for r in futures_util::future::join_all(workers).await {
        r?;
    }
    Ok(results.into_inner().into_iter().flatten().collect())
}
