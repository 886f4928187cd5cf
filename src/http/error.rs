//! The one API error type and its one mapping to a status (R3).

use axum::{
    Json,
    http::StatusCode,
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::TooLarge(m)
            | Self::Unavailable(m) => m,
            Self::MethodNotAllowed => "method not allowed on this route".into(),
        };
        (status, Json(ErrorBody { error })).into_response()
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
