//! Responses: refusals with their reasons, and the few shapes of answer the routes give.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::backend::BackendError;
use crate::body::Body;
use crate::route::RouteError;

/// A response of the service.
pub(crate) type Res = Response<Body>;

/// A refused request: its status and a short reason for the body, in our words (never a
/// dependency's error text), plus the headers some refusals carry.
#[derive(Debug)]
pub(crate) struct Reject {
    pub(crate) status: StatusCode,
    reason: Cow<'static, str>,
    /// `Allow` of a 405.
    allow: Option<&'static str>,
    /// `Retry-After` of a 429 or 503, in seconds.
    retry_after: Option<u64>,
}

impl Reject {
    pub(crate) fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: reason.into(),
            allow: None,
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    pub(crate) fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    pub(crate) fn unavailable(reason: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    pub(crate) fn unknown_client() -> Self {
        Self::new(StatusCode::NOT_FOUND, "unknown client id")
    }

    /// `429 Too Many Requests`, to be retried after `seconds`.
    pub(crate) fn too_many(reason: impl Into<Cow<'static, str>>, seconds: u64) -> Self {
        let mut reject = Self::new(StatusCode::TOO_MANY_REQUESTS, reason);
        reject.retry_after = Some(seconds.max(1));
        reject
    }

    /// What a backend's failure is answered with: the hub's refusal as the in-memory hub's
    /// would be, or `503` with the backend's reason (its own words, never its store's).
    pub(crate) fn backend(err: BackendError, hub: &sse_registry::Config) -> Self {
        match err {
            BackendError::Refused(err) => Self::hub(err, hub),
            BackendError::Unavailable {
                reason,
                maybe_applied,
            } => {
                tracing::warn!(%reason, maybe_applied, "backend unavailable");
                let reason = if maybe_applied {
                    Cow::Owned(format!("{reason} (the change may have been applied)"))
                } else {
                    reason
                };
                let mut reject = Self::new(StatusCode::SERVICE_UNAVAILABLE, reason);
                reject.retry_after = Some(1);
                reject
            }
        }
    }

    /// The answer to a refusal of the hub.
    pub(crate) fn hub(err: sse_registry::Error, hub: &sse_registry::Config) -> Self {
        use sse_registry::Error;
        match err {
            Error::UnknownClient => Self::unknown_client(),
            Error::Full => Self::unavailable("too many clients"),
            Error::NameFull => Self::too_many(
                format!("at most {} clients with one name", hub.max_name_members),
                1,
            ),
            Error::TooManyKeys => Self::bad_request(format!(
                "at most {} keys per client",
                hub.max_keys_per_client
            )),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "the hub refused"),
        }
    }

    pub(crate) fn into_response(self) -> Res {
        let mut res = text(self.status, &self.reason);
        let headers = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res
    }
}

impl From<RouteError> for Reject {
    fn from(err: RouteError) -> Self {
        match err {
            RouteError::NotFound => Self::not_found(),
            RouteError::MalformedId => Self::bad_request("malformed client id"),
            RouteError::MethodNotAllowed { allow } => {
                let mut reject = Self::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                reject.allow = Some(allow);
                reject
            }
        }
    }
}

/// A `text/plain` response.
pub(crate) fn text(status: StatusCode, message: &str) -> Res {
    let mut res = Response::new(Body::full(Bytes::copy_from_slice(message.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A response without a body.
pub(crate) fn empty(status: StatusCode) -> Res {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

/// An `application/json` response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Res {
    let mut res = Response::new(Body::full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The headers of an event stream's response.
pub(crate) fn stream_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_headers() {
        let res = Reject::from(RouteError::MethodNotAllowed { allow: "GET" }).into_response();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "GET");
        let res = Reject::too_many("slow down", 0).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        let res = Reject::new(StatusCode::UNAUTHORIZED, "token").into_response();
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn a_backend_failure_is_a_503_in_our_words() {
        let config = sse_registry::Config::default();
        let err = BackendError::unavailable("the shared store is unreachable");
        let res = Reject::backend(err, &config).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(header::RETRY_AFTER));
        let err = BackendError::maybe_applied("no reply from the shared store");
        let reject = Reject::backend(err, &config);
        assert!(reject.reason.contains("may have been applied"));
        let refused = BackendError::Refused(sse_registry::Error::UnknownClient);
        assert_eq!(
            Reject::backend(refused, &config).status,
            StatusCode::NOT_FOUND
        );
    }
}
