//! Huayi IM: an instant-messaging server. Messages go up over HTTP
//! (`POST /api/messages`) and come down over a WebSocket (`/api/ws`).
//!
//! The library owns the whole server so tests start exactly what `main`
//! starts: [`app`] builds the router over a [`Hub`], [`serve`] runs it on a
//! listener until a shutdown signal, then closes sockets and waits, bounded.
//!
//! Modules: [`config`] (settings), [`protocol`] (wire types), [`domain`]
//! (validated values), [`hub`] (all shared state), [`http`] (REST handlers),
//! [`ws`] (socket tasks).

pub mod config;
pub mod domain;
pub mod http;
pub mod hub;
pub mod protocol;
pub mod ws;

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use hub::Hub;

/// Lower-case hex of `bytes` (session ids, ETags).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole HTTP surface over a hub.
pub fn app(hub: Hub) -> Router {
    let body_limit = hub.config().limits.max_body_bytes;
    http::routes()
        .route("/api/ws", get(ws::handler))
        .fallback(http::assets::serve)
        .method_not_allowed_fallback(|| async { http::ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(hub)
}

/// Serves on `listener` until `signal` resolves, then shuts down gracefully
/// (R31): stops accepting, closes every socket with 1001, lets in-flight
/// requests finish, and returns within `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = CancellationToken::new();
    let grace = config.shutdown_grace;
    let sweep_every =
        (config.offline.ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let hub = Hub::new(config, shutdown.clone());
    let sweeper = tokio::spawn(hub.clone().run_sweeper(sweep_every));
    tracing::info!(addr = %listener.local_addr()?, "listening on {}", listener.local_addr()?);

    let stop = shutdown.clone();
    let server = axum::serve(
        listener,
        app(hub.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        signal.await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    let server = tokio::spawn(async move { server.await });

    shutdown.cancelled().await;
    let sockets = hub.sockets().clone();
    sockets.close();
    let drained = tokio::time::timeout(grace, async {
        let _ = server.await;
        sockets.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            ?grace,
            "shutdown grace period over; exiting with work in flight"
        );
    }
    let _ = sweeper.await;
    Ok(())
}
