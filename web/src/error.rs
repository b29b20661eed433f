//! The API's one error type and its JSON form: `{"error": {"code": "...", "message": "..."}}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use surplus_contracts::Code;

use crate::node::Refusal;
pub use surplus_api::{ErrorBody, ErrorDetail};

/// The `Retry-After` of `overloaded` and `mempool_full`: about two blocks at the default batch
/// interval, by which time the backlog that made the node refuse has moved on.
pub const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Why a request failed. Every refusal carries a [`Code`] of the one vocabulary
/// ([`surplus_contracts::Code`]), which decides the HTTP status; bad input is a 4xx with a
/// message a user can act on; internal failures are an opaque 500 whose detail goes to the log
/// only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal; the status is [`Code::status`] of its code.
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// The client sends too fast (429 `rate_limited`, with `Retry-After`).
    #[error("too many requests from this address; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a request will be accepted.
        retry_after_secs: u64,
    },
    /// A failure inside the node (500); the detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A refusal with `code` (its status follows the code).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::Refused(Refusal::new(code, message))
    }

    /// The stable code of the error.
    pub fn code(&self) -> Code {
        match self {
            Self::Refused(r) => r.code,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The seconds a client should wait before it sends again, for the refusals that say so
    /// with `Retry-After`: a client over its rate, and a node that sheds load (`overloaded`) or
    /// whose mempool is full (`mempool_full`), which a block relieves.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            Self::Refused(r) if matches!(r.code, Code::Overloaded | Code::MempoolFull) => {
                Some(SHED_RETRY_AFTER_SECS)
            }
            _ => None,
        }
    }

    /// The JSON body of the error.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            Self::Internal(_) => "internal error; the node's log has the detail".to_owned(),
            other => other.to_string(),
        };
        ErrorBody { error: ErrorDetail { code: self.code().as_str().to_owned(), message } }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(detail) = self {
            tracing::error!(%detail, "internal error serving an API request");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after_secs() {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(self.body())
    }
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
