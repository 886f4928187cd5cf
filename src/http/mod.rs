//! The REST API: routes, extractors and handlers (R3–R19).
//!
//! Handlers parse input into domain types, call one hub method, and shape the
//! answer. They hold no state of their own and never see a lock.

pub mod assets;
mod error;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        ConnectInfo, FromRef, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request,
        State,
    },
    http::{HeaderMap, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{any, delete, get, post},
};
use serde::{Deserialize, de::DeserializeOwned};

pub use error::ApiError;

use crate::{
    AppState,
    domain::{MessageLimits, Name, Outgoing},
    hub::{Hub, Session},
    protocol::{
        ListResponse, LoginRequest, LoginResponse, SendResponse, TopicItem, TopicRequest,
        UpMessage, UserItem,
    },
};

/// The API routes, without the WebSocket (see [`crate::ws`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", any(healthz))
        .route("/api/healthz", any(healthz))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/users", get(users))
        .route("/api/topics", get(list_topics).post(create_topic))
        .route("/api/topics/{topic}", delete(delete_topic))
        .route("/api/topics/{topic}/actions/{action}", post(topic_action))
        .route("/api/messages", post(send_message))
        .route("/api/openapi.json", get(openapi))
}

/// This API's own OpenAPI 3 document, as implemented (`docs/openapi.json`).
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../docs/openapi.json"),
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Answers every route with a JSON `{}` so R3 ("every body is JSON") holds for
/// successes that carry no data.
fn ok() -> Json<serde_json::Value> {
    Json(serde_json::json!({}))
}

/// The sid from `Authorization: Bearer <sid>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, sid) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| sid.trim())
}

/// An authenticated caller; extracting it counts as activity (R5, R22).
#[derive(Debug)]
pub struct Auth(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for Auth
where
    Hub: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let hub = Hub::from_ref(state);
        let sid = bearer(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized("log in first: send `Authorization: Bearer <sid>`".into())
        })?;
        hub.authenticate(sid).map(Auth).ok_or_else(|| {
            ApiError::Unauthorized("session is unknown or was ended; log in again".into())
        })
    }
}

/// A JSON body parsed strictly, with failures in the API's error shape. The
/// `Content-Type` header is not required: curl's `-d` sends a form type.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T>
where
    Hub: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = Hub::from_ref(state).config().limits.max_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::TooLarge(format!(
                "request body is too large or unreadable; the limit is {limit} bytes"
            ))
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

fn name(text: &str) -> Result<Name, ApiError> {
    Ok(Name::parse(text)?)
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    state
        .guard
        .login(ip)
        .map_err(|retry_after| ApiError::TooManyRequests {
            message: "too many logins from your address; retry later".into(),
            retry_after,
        })?;
    let username = name(&req.username)?;
    let sid = state.hub.login(&username)?;
    tracing::info!(user = %username, "login");
    Ok(Json(LoginResponse {
        sid,
        username: username.to_string(),
    }))
}

async fn logout(State(hub): State<Hub>, Auth(session): Auth) -> Json<serde_json::Value> {
    hub.logout(&session);
    tracing::info!(user = %session.name(), "logout");
    ok()
}

#[derive(Debug, Deserialize)]
struct UsersQuery {
    online: Option<String>,
}

async fn users(
    State(hub): State<Hub>,
    _auth: Auth,
    query: Result<Query<UsersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse<UserItem>>, ApiError> {
    let online = match query.ok().and_then(|q| q.0.online).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`online` must be true or false, not `{}`",
                other.escape_default().take(40).collect::<String>()
            )));
        }
    };
    let list: Vec<UserItem> = hub
        .users(online)
        .into_iter()
        .map(|username| UserItem { username })
        .collect();
    Ok(Json(ListResponse {
        total: list.len(),
        list,
    }))
}

async fn list_topics(State(hub): State<Hub>, _auth: Auth) -> Json<ListResponse<TopicItem>> {
    let list: Vec<TopicItem> = hub
        .topics()
        .into_iter()
        .map(|topic| TopicItem { topic })
        .collect();
    Json(ListResponse {
        total: list.len(),
        list,
    })
}

async fn create_topic(
    State(hub): State<Hub>,
    _auth: Auth,
    JsonBody(req): JsonBody<TopicRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    hub.create_topic(&name(&req.topic)?)?;
    Ok(ok())
}

async fn delete_topic(
    State(hub): State<Hub>,
    _auth: Auth,
    Path(topic): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    hub.delete_topic(&name(&topic)?)?;
    Ok(ok())
}

async fn topic_action(
    State(hub): State<Hub>,
    Auth(session): Auth,
    Path((topic, action)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let topic = name(&topic)?;
    match action.as_str() {
        "join" => hub.join(&session, &topic)?,
        "quit" => hub.quit(&session, &topic)?,
        _ => return Err(not_found_route()),
    }
    Ok(ok())
}

async fn send_message(
    State(state): State<AppState>,
    Auth(session): Auth,
    JsonBody(up): JsonBody<UpMessage>,
) -> Result<Json<SendResponse>, ApiError> {
    let hub = &state.hub;
    state
        .guard
        .message(session.name())
        .map_err(|retry_after| ApiError::TooManyRequests {
            message: "you are sending too fast; retry later".into(),
            retry_after,
        })?;
    let limits = &hub.config().limits;
    let msg = Outgoing::parse(
        up,
        session.name(),
        MessageLimits {
            max_content_bytes: limits.max_content_bytes,
            max_to: limits.max_to,
        },
    )?;
    let receipt = hub.send(&session, msg).await?;
    Ok(Json(SendResponse {
        id: receipt.id,
        sent_at: receipt.sent_at,
    }))
}

/// Unknown route (R3).
pub fn not_found_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// The client's IP address (unspecified when the router runs without a
/// listener, as in unit tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientIp(ip))
    }
}

/// Around every request: the request timeout (408), the latency histogram by
/// route, and one log line (method, route template, status, duration; never
/// the sid or the content).
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = tokio::time::Instant::now();
    let method = req.method().clone();
    // A refcounted handle, not a copy of the text.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let config = state.hub.config();
    let response = tokio::time::timeout(config.limits.request_timeout, next.run(req))
        .await
        .unwrap_or_else(|_| ApiError::Timeout.into_response());
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    state.http.observe(route, status, elapsed);
    if config.log.requests {
        tracing::info!(
            target: "huayi_im::request",
            %method,
            route,
            status,
            micros = elapsed.as_micros() as u64,
            "request"
        );
    }
    response
}
