//! The admin routes' token and their answers: the client list and the counts.

use http::StatusCode;
use http::header::{self, HeaderMap};
use serde_json::json;
use sse_registry::Hub;
use subtle::ConstantTimeEq;

use crate::backend::Backend;
use crate::config::Config;
use crate::reply::{Reject, Res, json};

/// Whether the request carries the admin token: `403` without a configured token (the admin
/// routes are off), `401` with a wrong or missing one.
pub(crate) fn authorize(config: &Config, headers: &HeaderMap) -> Result<(), Reject> {
    let Some(token) = &config.admin_token else {
        return Err(Reject::forbidden(
            "admin routes are disabled (no admin token configured)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    match given {
        Some(given) if token_matches(given, token.as_bytes()) => Ok(()),
        _ => Err(Reject::new(
            StatusCode::UNAUTHORIZED,
            "admin token required",
        )),
    }
}

/// The credentials of an `Authorization: Bearer …` value (the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
}

/// Whether `given` is the admin token, in time that depends only on the token's length: every
/// byte of the token is compared (with what `given` has at that place, or a filler), so neither
/// a wrong byte's position nor the length of `given` shows.
fn token_matches(given: &[u8], token: &[u8]) -> bool {
    let padded: Vec<u8> = (0..token.len())
        .map(|i| given.get(i).copied().unwrap_or(0))
        .collect();
    let same_len = (given.len() as u64).ct_eq(&(token.len() as u64));
    bool::from(padded.as_slice().ct_eq(token) & same_len)
}

/// `GET clients`: a page of clients, from `offset`, at most `limit` (and `max_list`).
pub(crate) fn list(config: &Config, hub: &Hub, query: &str) -> Result<Res, Reject> {
    let (mut offset, mut limit) = (0, config.max_list);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let number = || {
            v.parse::<usize>()
                .map_err(|_| Reject::bad_request("offset and limit must be numbers"))
        };
        match &*k {
            "offset" => offset = number()?,
            "limit" => limit = number()?.min(config.max_list),
            // Other parameters are not ours to refuse.
            _ => {}
        }
    }
    if limit == 0 {
        return Err(Reject::bad_request("limit must be at least 1"));
    }
    let (clients, next) = hub.list(offset, limit);
    let clients: Vec<_> = clients
        .iter()
        .map(|c| {
            json!({
                "id": c.id.to_string(),
                "tag": c.id.tag().to_string(),
                "name": c.name.as_deref(),
                "keys": c.keys.iter().map(|k| &**k).collect::<Vec<_>>(),
                "attached": c.attached,
                "idle_ms": u64::try_from(c.idle.as_millis()).unwrap_or(u64::MAX),
                "queued": c.queued,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "clients": clients, "next": next }),
    ))
}

/// `GET stats`: the hub's counts, tasks running, and what the backend reports.
pub(crate) fn stats(hub: &Hub, tasks_running: usize, backend: &dyn Backend) -> Res {
    let s = hub.stats();
    json(
        StatusCode::OK,
        &json!({
            "clients": s.clients,
            "attached": s.attached,
            "keys": s.keys,
            "subscriptions": s.subscriptions,
            "queued": s.queued,
            "history": s.history,
            "seq": s.seq,
            "published": s.published,
            "lagged": s.lagged,
            "swept": s.swept,
            "tasks_running": tasks_running,
            "backend": backend.report(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_token_is_compared_whole() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secre", b"secret"));
        assert!(!token_matches(b"secret!", b"secret"));
        assert!(!token_matches(b"", b"secret"));
        assert!(!token_matches(b"Secret", b"secret"));
        assert_eq!(bearer(b"bEaReR abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
    }

    #[test]
    fn admin_routes_need_the_configured_token() {
        let mut headers = HeaderMap::new();
        let off = Config::default();
        assert_eq!(
            authorize(&off, &headers).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let config = Config {
            admin_token: Some("t0ken".into()),
            ..Config::default()
        };
        assert_eq!(
            authorize(&config, &headers).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0ken"),
        );
        assert!(authorize(&config, &headers).is_ok());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(authorize(&config, &headers).is_err());
    }

    #[test]
    fn the_list_is_paged() {
        let hub = Hub::default();
        let now = std::time::Instant::now();
        for _ in 0..3 {
            hub.issue(None, now).unwrap();
        }
        let config = Config::default();
        let page = list(&config, &hub, "limit=2&other=1").unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            list(&config, &hub, "limit=0").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            list(&config, &hub, "offset=x").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
