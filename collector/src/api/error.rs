//! The one place where errors become HTTP responses: `{"error": {"code", "message"}}` with a
//! fitting status. Internal details are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<crate::index::search::SearchError> for ApiError {
    fn from(e: crate::index::search::SearchError) -> Self {
        use crate::index::search::SearchError;
        match e {
            SearchError::Query(m) => ApiError::bad_request("bad_query", m),
            SearchError::Limit(m) => ApiError::bad_request("bad_parameter", m),
            // Too many buckets or too much memory: the request asks too much, not our fault.
            SearchError::Index(tantivy::TantivyError::AggregationError(e)) => {
                ApiError::bad_request("bad_parameter", e.to_string())
            }
            SearchError::Index(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::incidents::StoreError> for ApiError {
    fn from(e: crate::incidents::StoreError) -> Self {
        use crate::incidents::StoreError;
        use crate::incidents::lifecycle::ActionError;
        match e {
            StoreError::NotFound(_) => ApiError::NotFound(e.to_string()),
            StoreError::Action(ActionError::Invalid(m)) => ApiError::bad_request("bad_action", m),
            StoreError::Action(e @ ActionError::NotAllowed { .. }) => {
                ApiError::Conflict(e.to_string())
            }
            StoreError::Filter(m) => ApiError::bad_request("bad_parameter", m),
            StoreError::Open { .. } | StoreError::Migrate { .. } | StoreError::Db(_) => {
                ApiError::Unavailable(format!("the incident database is not answering: {e}"))
            }
        }
    }
}

impl ApiError {
    /// A reference data error; a bad field answers 400 with `code`.
    pub fn reference(e: crate::reference::directory::RefError, code: &'static str) -> Self {
        use crate::reference::directory::RefError;
        match e {
            RefError::Invalid(b) => ApiError::bad_request(code, b.to_string()),
            RefError::Conflict(m) => ApiError::Conflict(m),
            RefError::NotFound(m) => ApiError::NotFound(m),
            RefError::Db(e) => e.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::incidents::StoreError::Db(e).into()
    }
}

impl From<crate::incidents::lifecycle::ActionError> for ApiError {
    fn from(e: crate::incidents::lifecycle::ActionError) -> Self {
        crate::incidents::StoreError::Action(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error answering a request");
        }
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        });
        let mut resp = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unavailable(_)) {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}
