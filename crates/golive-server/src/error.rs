//! The server's one error type: a refusal of the lifecycle becomes 403, 404,
//! 409 or 422 with its own words; a failure becomes a 500 that carries a
//! tracking id, which the structured log carries with the cause. Nothing
//! internal reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use golive_deploy::RefusalKind as K;
use serde_json::json;

/// Why a request was not carried out.
#[derive(Debug)]
pub enum ApiError {
    /// No token, or one that is unknown, revoked or expired (401).
    Unauthorized(String),
    /// The person may not do this (403): the lifecycle's words.
    Forbidden(String),
    /// No such deployment, runbook, report or route (404).
    NotFound(String),
    /// The deployment moved on, or its rules say no now (409).
    Conflict(String),
    /// The request cannot be read or carried out as given (422).
    Unprocessable(String),
    /// The body is over the limit (413).
    TooLarge(usize),
    /// Too many requests (429): retry after this many seconds.
    TooMany(u64),
    /// Something failed inside; logged with a tracking id (500).
    Internal(String),
    /// A service golive depends on (the identity provider) does not answer
    /// as it should (502).
    BadGateway(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The short name of the error in a JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::TooLarge(_) => "too_large",
            ApiError::TooMany(_) => "too_many_requests",
            ApiError::Internal(_) => "internal",
            ApiError::BadGateway(_) => "bad_gateway",
        }
    }

    /// What the client is told, and for a 500 the tracking id it carries
    /// (the cause goes to the log only).
    pub fn public(&self) -> (String, Option<String>) {
        match self {
            ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Unprocessable(m)
            | ApiError::BadGateway(m) => (m.clone(), None),
            ApiError::TooLarge(n) => (
                format!("the request body is over the limit of {n} bytes"),
                None,
            ),
            ApiError::TooMany(s) => (
                format!("too many requests from this client: retry after {s} s"),
                None,
            ),
            ApiError::Internal(cause) => {
                let id = crate::random_hex(8);
                tracing::error!(tracking_id = %id, cause = %cause, "request failed");
                (
                    format!(
                        "golive could not carry this out; the server's log has what happened under tracking id {id}"
                    ),
                    Some(id),
                )
            }
        }
    }

    /// The headers the status asks for (Retry-After on a 429).
    pub fn decorate(&self, r: &mut Response) {
        if let ApiError::TooMany(s) = self
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let ApiError::Unauthorized(_) = self {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"golive\""),
            );
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (message, tracking) = self.public();
        let mut body = json!({ "error": self.code(), "message": message });
        if let Some(t) = tracking {
            body["tracking_id"] = json!(t);
        }
        let mut r = (self.status(), axum::Json(body)).into_response();
        self.decorate(&mut r);
        r
    }
}

impl From<golive_deploy::Error> for ApiError {
    fn from(e: golive_deploy::Error) -> Self {
        match e {
            golive_deploy::Error::Refused(r) => refusal(r.kind, r.message),
            golive_deploy::Error::Invalid(r) if r.kind == K::RunbookChanged => {
                ApiError::Conflict(r.message)
            }
            golive_deploy::Error::Invalid(r) => ApiError::Unprocessable(r.message),
            golive_deploy::Error::Failed(m) => ApiError::Internal(m),
        }
    }
}

impl From<golive_store::StoreError> for ApiError {
    fn from(e: golive_store::StoreError) -> Self {
        match e {
            golive_store::StoreError::NoDeployment(id) => {
                ApiError::NotFound(format!("no deployment `{id}` on this server"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The status a refusal of `kind` answers with: the role may not act
/// (403), the thing named is not there (404), the request names something
/// that cannot be done this way (422), or the deployment's state says no
/// now (409).
fn refusal(kind: K, message: String) -> ApiError {
    match kind {
        K::NotOnRoster | K::RoleNotHeld | K::WrongRole | K::BadSignature | K::SelfApproval => {
            ApiError::Forbidden(message)
        }
        K::Unknown => ApiError::NotFound(message),
        K::SubCheck
        | K::NotSignable
        | K::NotAStep
        | K::Incomplete
        | K::NoSuchChoice
        | K::NotOptional => ApiError::Unprocessable(message),
        _ => ApiError::Conflict(message),
    }
}
