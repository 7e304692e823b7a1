//! Cross-origin requests: the headers of every answer, and preflights.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::config::Config;
use crate::once::IDEMPOTENT_REPLAYED;
use crate::reply::{Reject, Res, empty};

/// The request headers a cross-origin caller may send (the others are never needed by the
/// protocol).
pub(crate) const ALLOWED_HEADERS: [&str; 4] = [
    "authorization",
    "content-type",
    "last-event-id",
    "idempotency-key",
];

/// How long a browser may cache a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

fn allowed_origin(config: &Config, origin: &HeaderValue) -> bool {
    config
        .cors_origins
        .iter()
        .any(|o| o == "*" || o.as_bytes() == origin.as_bytes())
}

/// Credentials go only to origins listed by name (never through `*`).
fn credentials_allowed(config: &Config, origin: &HeaderValue) -> bool {
    config.cors_credentials
        && config
            .cors_origins
            .iter()
            .any(|o| o.as_bytes() == origin.as_bytes())
}

/// Adds the CORS headers of an answer to a request from `origin` (none when CORS is off).
pub(crate) fn apply(config: &Config, origin: Option<&HeaderValue>, res: &mut Res) {
    if config.cors_origins.is_empty() {
        return;
    }
    // The answer depends on the origin, allowed or not: caches must keep them apart.
    let headers = res.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin.filter(|o| allowed_origin(config, o)) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if headers.contains_key(IDEMPOTENT_REPLAYED) {
            // Not a CORS-safelisted response header: a script reads it only when exposed.
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(IDEMPOTENT_REPLAYED),
            );
        }
        if credentials_allowed(config, origin) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// The answer to `OPTIONS` on a route whose methods are `allow`: a preflight (an allowed
/// `Origin` and `Access-Control-Request-Method`) is answered with the method and the headers
/// asked for that the route allows, or `403`; any other `OPTIONS` with a `204` and `Allow`. ([`apply`] adds the origin, `Vary` and credentials.)
pub(crate) fn preflight(
    config: &Config,
    headers: &HeaderMap,
    allow: &'static str,
) -> Result<Res, Reject> {
    let plain = || {
        let mut res = empty(StatusCode::NO_CONTENT);
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        res
    };
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(plain());
    };
    if !allowed_origin(config, origin) {
        return Err(Reject::forbidden("origin not allowed"));
    }
    let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) else {
        // Not a preflight (one always names its method): the route's methods.
        return Ok(plain());
    };
    let method = match Method::from_bytes(asked.as_bytes()) {
        Ok(m) if allows(allow, &m) => m,
        _ => return Err(Reject::forbidden("method not allowed on this route")),
    };
    let mut res = empty(StatusCode::NO_CONTENT);
    let out = res.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_str(method.as_str()).unwrap_or(HeaderValue::from_static("GET")),
    );
    let asked = headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|h| !h.is_empty());
    let mut granted = Vec::new();
    for name in asked {
        if let Some(known) = ALLOWED_HEADERS
            .iter()
            .find(|known| known.as_bytes().eq_ignore_ascii_case(name))
        {
            if !granted.contains(known) {
                granted.push(*known);
            }
        }
    }
    if !granted.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&granted.join(", ")) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    Ok(res)
}

/// Whether `method` is among the comma-separated `allow`.
fn allows(allow: &str, method: &Method) -> bool {
    allow.split(',').any(|m| m.trim() == method.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str]) -> Config {
        Config {
            cors_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..Config::default()
        }
    }

    fn asking(origin: &str, method: &str, headers: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        map.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).unwrap(),
        );
        if !headers.is_empty() {
            map.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(headers).unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_preflight_grants_what_was_asked_and_is_allowed() {
        let config = config(&["https://app.example"]);
        let headers = asking(
            "https://app.example",
            "PUT",
            "Content-Type, x-other,last-event-id",
        );
        let res = preflight(&config, &headers, "PUT, DELETE, OPTIONS").unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_METHODS], "PUT");
        assert_eq!(
            res.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type, last-event-id"
        );
        assert_eq!(res.headers()[header::ACCESS_CONTROL_MAX_AGE], "600");
    }

    #[test]
    fn a_preflight_refuses_what_is_not_allowed() {
        let config = config(&["https://app.example"]);
        let other = asking("https://evil.example", "PUT", "");
        assert_eq!(
            preflight(&config, &other, "PUT").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let wrong = asking("https://app.example", "POST", "");
        assert_eq!(
            preflight(&config, &wrong, "PUT, DELETE, OPTIONS")
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let mut plain = asking("https://app.example", "PUT", "");
        plain.remove(header::ACCESS_CONTROL_REQUEST_METHOD);
        let res = preflight(&config, &plain, "PUT, OPTIONS").unwrap();
        assert_eq!(res.headers()[header::ALLOW], "PUT, OPTIONS");
        // Without CORS configured, every origin is refused.
        let off = Config::default();
        let asked = asking("https://app.example", "PUT", "");
        assert!(preflight(&off, &asked, "PUT").is_err());
    }

    #[test]
    fn without_an_origin_options_lists_the_methods() {
        let res = preflight(&Config::default(), &HeaderMap::new(), "GET, OPTIONS").unwrap();
        assert_eq!(res.headers()[header::ALLOW], "GET, OPTIONS");
        assert!(
            !res.headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_METHODS)
        );
    }

    #[test]
    fn credentials_only_for_origins_listed_by_name() {
        let mut config = config(&["*", "https://app.example"]);
        config.cors_credentials = true;
        let mut res = empty(StatusCode::OK);
        let named = HeaderValue::from_static("https://app.example");
        apply(&config, Some(&named), &mut res);
        assert_eq!(
            res.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
            "true"
        );
        let mut res = empty(StatusCode::OK);
        let any = HeaderValue::from_static("https://other.example");
        apply(&config, Some(&any), &mut res);
        assert_eq!(
            res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://other.example"
        );
        assert!(
            !res.headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        );
        assert_eq!(res.headers()[header::VARY], "origin");
    }
}
