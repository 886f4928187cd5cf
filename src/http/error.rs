//! The one API error type and its one mapping to a status (R3).

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{domain::Invalid, hub::HubError, protocol::ErrorBody};

/// Every way a request can fail. The message is meant for the person reading
/// it; internals are logged, never sent.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    TooLarge(String),
    Unavailable(String),
    /// 429 with `Retry-After` in whole seconds.
    TooManyRequests {
        message: String,
        retry_after: Duration,
    },
    /// 408: the request (body included) took longer than `limits.request_timeout`.
    Timeout,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0))
            }
            _ => None,
        };
        let error = match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::TooLarge(m)
            | Self::Unavailable(m) => m,
            Self::MethodNotAllowed => "method not allowed on this route".into(),
            Self::TooManyRequests { message, .. } => message,
            Self::Timeout => "the request took too long to arrive or to handle".into(),
        };
        let mut response = (status, Json(ErrorBody { error })).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
        }
        response
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        match e {
            Invalid::BadRequest(m) => Self::BadRequest(m),
            Invalid::Forbidden(m) => Self::Forbidden(m),
            Invalid::TooLarge(m) => Self::TooLarge(m),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::TopicExists(t) => Self::Conflict(format!("topic `{t}` already exists")),
            HubError::TopicNotFound(t) => Self::NotFound(format!("topic `{t}` does not exist")),
            HubError::UserCapacity => {
                Self::Unavailable("the server keeps no more users; try again later".into())
            }
        }
    }
}
