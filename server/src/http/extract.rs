//! The JSON body extractor whose rejections use the API's error shape and stable codes (query
//! strings need none: `error::json_errors` turns axum's plain-text 400 into `invalid_request`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use kefu_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Like `axum::Json`, but malformed, mistyped or oversize bodies become `ApiError`s.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => {
                    ApiError::new(ErrorCode::InvalidRequest, e.body_text())
                }
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::new(ErrorCode::InvalidJson, e.body_text())
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "expected Content-Type: application/json",
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("request body exceeds {} bytes", super::MAX_BODY_BYTES),
                    )
                }
                other => ApiError::new(ErrorCode::InvalidRequest, other.body_text()),
            }),
        }
    }
}
