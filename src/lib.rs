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
pub mod guard;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod protocol;
mod server;
pub mod ws;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef, State},
    middleware,
    routing::get,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::Config;
pub use hub::Hub;
pub use server::serve;

/// What every handler may reach: the hub (all IM state), the edge guard
/// (abuse limits) and the HTTP figures. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub hub: Hub,
    pub guard: Arc<guard::Guard>,
    pub http: Arc<metrics::HttpMetrics>,
}

impl FromRef<AppState> for Hub {
    fn from_ref(state: &AppState) -> Hub {
        state.hub.clone()
    }
}

/// Lower-case hex of `bytes` (session ids, ETags).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let config = state.hub.config();
    let mut router = http::routes()
        .route("/api/ws", get(ws::handler))
        .fallback(http::assets::serve)
        .method_not_allowed_fallback(|| async { http::ApiError::MethodNotAllowed });
    if config.metrics.enabled {
        router = router.route("/metrics", get(serve_metrics));
    }
    router = router
        .layer(middleware::from_fn_with_state(state.clone(), http::observe))
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes));
    if !config.cors.allow_origins.is_empty() {
        let origins = config
            .cors
            .allow_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect::<Vec<_>>();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods(tower_http::cors::Any)
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                ]),
        );
    }
    router.with_state(state)
}

/// `/metrics` alone, for `metrics.listen`.
fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(state)
}

async fn serve_metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&state.hub, &state.guard, &state.http),
    )
}
