//! The API's error type and the one place that maps the error vocabulary (`kefu_protocol::ErrorCode`)
//! to HTTP statuses. Every layer's error enum converts into `ApiError` here, once; REST bodies are
//! `{"error": {"code": "...", "message": "..."}}` and WebSocket `error` frames carry the same code
//! and message. Internal details are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kefu_kb::KbError;
use kefu_protocol::{ErrorCode, FrameError, ServerFrame};
use serde_json::json;

use crate::accounts::AccountError;
use crate::analytics::AnalyticsError;
use crate::attachments::AttachmentError;
use crate::channels::ChannelError;
use crate::conversation::ConversationError;
use crate::handoff::HandoffError;
use crate::privacy::PrivacyError;
use crate::store::StoreError;
use crate::triage::live_rules::ReplaceError;

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

/// The HTTP status of each code (the only such table).
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::InvalidFrame
        | C::UnknownType
        | C::InvalidJson
        | C::InvalidRequest
        | C::InvalidInput
        | C::UnsupportedVersion
        | C::ParseError
        | C::UnsupportedFile
        | C::UnknownModel => StatusCode::BAD_REQUEST,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::PayloadTooLarge | C::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::NotFound | C::UnknownSite | C::KbNotFound => StatusCode::NOT_FOUND,
        C::Unauthorized | C::InvalidCredentials | C::IdentityRequired | C::IdentityInvalid => {
            StatusCode::UNAUTHORIZED
        }
        C::Forbidden | C::OriginNotAllowed => StatusCode::FORBIDDEN,
        C::NotOwner | C::ConversationClosed | C::Conflict | C::AlreadyExists | C::ModelMismatch => {
            StatusCode::CONFLICT
        }
        C::RateLimited | C::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
        C::Overloaded | C::NotReady | C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::Internal | C::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }

    /// A server fault: logged here, reported to the client without details.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn not_ready() -> Self {
        Self::new(
            ErrorCode::NotReady,
            "the server is still loading its model and knowledge base",
        )
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn rate_limited() -> Self {
        Self::new(
            ErrorCode::RateLimited,
            "too many requests from this address; try again later",
        )
    }

    pub fn origin_not_allowed() -> Self {
        Self::new(
            ErrorCode::OriginNotAllowed,
            "this page's origin is not on the site's allow-list",
        )
    }

    /// The WebSocket `error` frame carrying this error.
    pub fn to_frame(&self, client_msg_id: Option<String>) -> ServerFrame {
        ServerFrame::Error {
            code: self.code,
            message: self.message.clone(),
            client_msg_id,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code.as_str(), "message": self.message } });
        (self.status(), Json(body)).into_response()
    }
}

impl From<FrameError> for ApiError {
    fn from(e: FrameError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<KbError> for ApiError {
    fn from(e: KbError) -> Self {
        let code = match &e {
            KbError::KbNotFound(_) => ErrorCode::KbNotFound,
            KbError::NotFound(_) => ErrorCode::NotFound,
            KbError::ModelMismatch { .. } => ErrorCode::ModelMismatch,
            KbError::Conflict(_) => ErrorCode::Conflict,
            KbError::Parse { .. } => ErrorCode::ParseError,
            KbError::UnsupportedFile(_) => ErrorCode::UnsupportedFile,
            KbError::UnknownModel(_) => ErrorCode::UnknownModel,
            KbError::InvalidInput(_) => ErrorCode::InvalidInput,
            KbError::ModelMissing { .. } => ErrorCode::Unavailable,
            KbError::ModelFormat { .. }
            | KbError::Inference(_)
            | KbError::Tokenizer(_)
            | KbError::Storage(_)
            | KbError::Corrupt(_)
            | KbError::Migrate(_)
            | KbError::Index(_)
            | KbError::Io { .. } => return Self::internal(e),
        };
        Self::new(code, e.to_string())
    }
}

impl From<AnalyticsError> for ApiError {
    fn from(e: AnalyticsError) -> Self {
        match e {
            AnalyticsError::Invalid(m) => Self::invalid_input(m),
            AnalyticsError::Store(s) => s.into(),
        }
    }
}

impl From<ReplaceError> for ApiError {
    fn from(e: ReplaceError) -> Self {
        let code = match &e {
            ReplaceError::Invalid(_) => ErrorCode::InvalidInput,
            ReplaceError::TooLarge => ErrorCode::PayloadTooLarge,
            ReplaceError::NoFile => ErrorCode::Conflict,
            ReplaceError::Write { .. } => return Self::internal(e),
        };
        Self::new(code, e.to_string())
    }
}

impl From<crate::llm::live::LlmSettingsError> for ApiError {
    fn from(e: crate::llm::live::LlmSettingsError) -> Self {
        use crate::llm::live::LlmSettingsError as E;
        let code = match &e {
            E::Invalid(_) => ErrorCode::InvalidInput,
            E::Pinned => ErrorCode::Conflict,
            E::File { .. } => return Self::internal(e),
        };
        Self::new(code, e.to_string())
    }
}

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(e: crate::webhooks::WebhookError) -> Self {
        use crate::webhooks::WebhookError as E;
        match e {
            E::Invalid(m) => Self::invalid_input(m),
            E::UnknownSite(_) => Self::new(ErrorCode::UnknownSite, e.to_string()),
            E::NotFound(_) => Self::not_found(e.to_string()),
            E::Store(s) => s.into(),
            E::Secret(_) => Self::internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(what) => {
                Self::new(ErrorCode::AlreadyExists, format!("{what} already exists"))
            }
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "the database is unreachable");
                Self::new(
                    ErrorCode::Unavailable,
                    "the database is unreachable; try again shortly",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(e: ConversationError) -> Self {
        use ConversationError as E;
        let code = match &e {
            E::Store(_) | E::Knowledge(_) | E::Handoff(_) => ErrorCode::Internal,
            E::NotFound => ErrorCode::NotFound,
            E::Forbidden => ErrorCode::Forbidden,
            E::NotOwner => ErrorCode::NotOwner,
            E::Closed => ErrorCode::ConversationClosed,
            E::UnknownAttachment => ErrorCode::InvalidInput,
        };
        match e {
            E::Store(s) => s.into(),
            E::Knowledge(k) => k.into(),
            E::Handoff(h) => h.into(),
            other => Self::new(code, other.to_string()),
        }
    }
}

impl From<HandoffError> for ApiError {
    fn from(e: HandoffError) -> Self {
        use HandoffError as E;
        let code = match &e {
            E::Store(_) => ErrorCode::Internal,
            E::NotFound => ErrorCode::NotFound,
            E::NotOwner => ErrorCode::NotOwner,
            E::Closed => ErrorCode::ConversationClosed,
            E::Conflict(_) => ErrorCode::Conflict,
            E::InvalidInput(_) => ErrorCode::InvalidInput,
        };
        match e {
            E::Store(s) => s.into(),
            other => Self::new(code, other.to_string()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        use AccountError as E;
        let code = match &e {
            E::Store(_) | E::Credentials(_) => ErrorCode::Internal,
            E::Invalid(_) | E::WeakPassword(_) => ErrorCode::InvalidInput,
            E::UnknownSite => ErrorCode::UnknownSite,
            E::OriginNotAllowed => ErrorCode::OriginNotAllowed,
            E::IdentityRequired => ErrorCode::IdentityRequired,
            E::IdentityInvalid => ErrorCode::IdentityInvalid,
            E::InvalidCredentials => ErrorCode::InvalidCredentials,
            E::NotAdmin => ErrorCode::Forbidden,
            E::Unauthorized(_) => ErrorCode::Unauthorized,
        };
        match e {
            E::Store(s) => s.into(),
            E::Credentials(c) => Self::internal(c),
            other => Self::new(code, other.to_string()),
        }
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        use ChannelError as E;
        let code = match &e {
            E::UnknownSite(_) => ErrorCode::UnknownSite,
            E::NotSetUp(_) => ErrorCode::NotFound,
            E::Unauthorized(_) => ErrorCode::Unauthorized,
            E::Invalid(_) => ErrorCode::InvalidInput,
            E::Message(m) => m.code,
            E::Conversation(_) | E::Account(_) | E::Store(_) | E::Secret(_) => ErrorCode::Internal,
        };
        match e {
            E::Conversation(c) => c.into(),
            E::Account(a) => a.into(),
            E::Store(s) => s.into(),
            E::Secret(s) => Self::internal(s),
            other => Self::new(code, other.to_string()),
        }
    }
}

impl From<AttachmentError> for ApiError {
    fn from(e: AttachmentError) -> Self {
        use AttachmentError as E;
        let code = match &e {
            E::Disabled | E::Unsupported(_) => ErrorCode::UnsupportedFile,
            E::Empty | E::Invalid(_) => ErrorCode::InvalidInput,
            E::TooLarge(_) => ErrorCode::PayloadTooLarge,
            E::NotFound => ErrorCode::NotFound,
            E::Expired | E::BadLink => ErrorCode::Forbidden,
            E::Store(_) | E::Io(_) => ErrorCode::Internal,
        };
        match e {
            E::Store(s) => s.into(),
            E::Io(io) => Self::internal(io),
            other => Self::new(code, other.to_string()),
        }
    }
}

impl From<PrivacyError> for ApiError {
    fn from(e: PrivacyError) -> Self {
        use PrivacyError as E;
        let code = match &e {
            E::Invalid(_) => ErrorCode::InvalidInput,
            E::UnknownSite(_) => ErrorCode::UnknownSite,
            E::NotFound => ErrorCode::NotFound,
            E::Store(_) | E::Knowledge(_) => ErrorCode::Internal,
        };
        match e {
            E::Store(s) => s.into(),
            E::Knowledge(k) => k.into(),
            other => Self::new(code, other.to_string()),
        }
    }
}

/// The code for a status that a layer below the handlers answered on its own (axum's router for
/// 405, a path rejection, the WebSocket upgrade, body limits).
fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    }
}

/// Middleware: an error response that is not already in the API's JSON shape (plain-text
/// rejections, empty 405s) is rewritten into it, so every error a client sees has a code.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let code = code_for_status(status);
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().chars().take(500).collect()
    };
    let mut out = ApiError::new(code, message).into_response();
    // Keep the headers that matter to the client (Allow on a 405).
    if let Some(allow) = parts.headers.get(axum::http::header::ALLOW) {
        out.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_servers_faults_are_5xx() {
        for code in ErrorCode::ALL {
            let status = status_of(*code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
            if code.is_transient() {
                assert!(
                    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
                    "{code} is retried, so it must not look like the client's fault"
                );
            } else {
                assert!(status.is_client_error(), "{code} is the client's to fix");
            }
        }
    }

    #[test]
    fn store_faults_become_internal_without_details() {
        let e: ApiError = StoreError::Corrupt("secret detail".into()).into();
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(!e.message.contains("secret"));
        // A database that cannot be reached is a transient 503, not a 500.
        let e: ApiError = StoreError::from(sqlx::Error::PoolTimedOut).into();
        assert_eq!(
            (e.code, e.status()),
            (ErrorCode::Unavailable, StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(e.code.is_transient());
        let e: ApiError =
            ConversationError::from(HandoffError::Conflict("at capacity".into())).into();
        assert_eq!(
            (e.code, e.status()),
            (ErrorCode::Conflict, StatusCode::CONFLICT)
        );
    }
}
