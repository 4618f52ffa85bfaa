//! The HTTP error type: every failure becomes `{"error": {"code": "...", "message": "..."}}` with a
//! status. Internal details are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kefu_kb::KbError;
use serde_json::json;

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is still loading its model and knowledge base",
        )
    }
}

impl From<KbError> for ApiError {
    fn from(e: KbError) -> Self {
        let status = match &e {
            KbError::KbNotFound(_) => StatusCode::NOT_FOUND,
            KbError::ModelMismatch { .. } => StatusCode::CONFLICT,
            _ if e.is_user_error() => StatusCode::BAD_REQUEST,
            KbError::ModelMissing { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
            return Self::new(status, "internal_error", "internal error");
        }
        Self::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::AlreadyExists(what) => Self::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("{what} already exists"),
            ),
            crate::store::StoreError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            other => {
                tracing::error!(error = %other, "store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error",
                )
            }
        }
    }
}

impl From<crate::conversation::ConversationError> for ApiError {
    fn from(e: crate::conversation::ConversationError) -> Self {
        use crate::conversation::ConversationError as E;
        let message = e.to_string();
        match e {
            E::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            E::Forbidden => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            E::NotOwner => Self::new(StatusCode::CONFLICT, "not_owner", message),
            E::Closed => Self::new(StatusCode::CONFLICT, "conversation_closed", message),
            E::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            E::InvalidInput(_) => Self::bad_request("invalid_input", message),
            E::Store(s) => s.into(),
        }
    }
}

impl ApiError {
    /// A server fault: logged here, reported to the client without details.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn unauthorized_code(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this address; try again later",
        )
    }
}
