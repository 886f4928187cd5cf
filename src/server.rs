//! The accept loop and the server's lifetime (R31).
//!
//! Our own loop rather than `axum::serve` for three reasons: a timer for
//! hyper's header-read timeout (slowloris), the client address on every
//! request (rate limits per IP), and a shutdown that finishes in-flight
//! requests on every connection within a bounded grace period.

use std::{future::Future, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{AppState, Config, app, guard::Guard, hub::Hub, metrics::HttpMetrics};

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
    let state = AppState {
        hub: Hub::new(config.clone(), shutdown.clone()),
        guard: Arc::new(Guard::new(&config)),
        http: Arc::new(HttpMetrics::default()),
    };
    let background = TaskTracker::new();
    background.spawn(sweep(state.clone(), sweep_every));
    if let Some(addr) = config.metrics.listen {
        let metrics = TcpListener::bind(addr).await?;
        tracing::info!("metrics on http://{}/metrics", metrics.local_addr()?);
        let router = crate::metrics_router(state.clone());
        let stop = shutdown.clone();
        background.spawn(async move {
            let served = axum::serve(metrics, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("metrics listener failed: {e}");
            }
        });
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening on {addr}");

    let stop = shutdown.clone();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down");
        stop.cancel();
    });

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.limits.header_read_timeout);
    let http = Arc::new(http);
    let app = app(state.clone());
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors or similar: back off, keep serving
                // the connections we have.
                tracing::warn!("accept failed: {e}; retrying shortly");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            peer,
            app.clone(),
            http.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);

    let sockets = state.hub.sockets().clone();
    sockets.close();
    connections.close();
    background.close();
    let drained = tokio::time::timeout(grace, async {
        connections.wait().await;
        sockets.wait().await;
        background.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            ?grace,
            "shutdown grace period over; exiting with work in flight"
        );
    }
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    http: Arc<http1::Builder>,
    shutdown: CancellationToken,
) {
    let service = app.map_request(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = http
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades();
    let mut conn = pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            // Finish the request in flight, then close (R31).
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn sweep(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = state.hub.shutdown().clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                state.hub.sweep();
                state.guard.sweep();
            }
        }
    }
}
