//! Sign-in for the axum example: who a request is comes from the application's own session,
//! through the protocol's identity seam ([`sse_http::Access`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::request::Parts;
use sse_codec::EventName;
use sse_http::{Access, Identity, Refusal, Route, Sse};

/// The most sessions kept; signing in beyond it forgets the oldest half (a toy bound: a real
/// application keeps its sessions where it keeps its users).
const MAX_SESSIONS: usize = 100_000;

/// Keys of the form `private.{user}` are that user's alone.
const PRIVATE: &str = "private.";

/// The application's sessions: random tokens, each a signed-in user. A browser carries its
/// token in the `session` cookie (which `EventSource` sends), other clients as
/// `Authorization: Bearer`.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, (u64, String)>>,
}

impl Sessions {
    /// Signs `user` in: a new session's token.
    pub fn sign_in(&self, user: &str) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut map = self.by_token.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            let mut ages: Vec<u64> = map.values().map(|(n, _)| *n).collect();
            let (_, median, _) = ages.select_nth_unstable(map.len() / 2);
            let median = *median;
            map.retain(|_, (n, _)| *n > median);
        }
        let serial = map.values().map(|(n, _)| *n).max().unwrap_or(0) + 1;
        map.insert(token.clone(), (serial, user.to_owned()));
        token
    }

    /// The user of `token`, if it is a session's.
    pub fn user(&self, token: &str) -> Option<String> {
        let map = self.by_token.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(token).map(|(_, user)| user.clone())
    }

    /// The session token a request carries, in its cookie or as a bearer token.
    fn token(headers: &HeaderMap) -> Option<&str> {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("session="));
        cookie.or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
    }
}

impl Access for Sessions {
    /// Registering a client needs a session; other routes go on anonymously when there is
    /// none (a client's id is its credential, and a named client's routes are its user's only).
    fn identify(&self, head: &Parts, route: &Route<'_>) -> Result<Identity, Refusal> {
        match Self::token(&head.headers).and_then(|t| self.user(t)) {
            Some(user) => Ok(Identity::user(user)),
            None if *route == Route::Issue => Err(Refusal::unauthorized("sign in first")),
            None => Ok(Identity::anonymous()),
        }
    }

    /// `private.{user}` keys are for that user; every other key is open.
    fn may_listen(&self, who: &Identity, key: &EventName) -> bool {
        match key.as_str().strip_prefix(PRIVATE) {
            Some(owner) => who.user.as_deref() == Some(owner),
            None => true,
        }
    }
}

#[derive(serde::Deserialize)]
struct SignIn {
    user: String,
}

/// `POST /login?user=NAME`: signs the user in (a toy: no password), sets the session cookie
/// and answers the token.
async fn login(State(sessions): State<Arc<Sessions>>, Query(q): Query<SignIn>) -> Response {
    let valid = !q.user.is_empty()
        && q.user.len() <= 64
        && q.user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            "user: 1 to 64 letters, digits or -",
        )
            .into_response();
    }
    let token = sessions.sign_in(&q.user);
    let cookie = format!("session={token}; HttpOnly; SameSite=Lax; Path=/");
    let mut res = token.into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    res
}

/// An axum application with sign-in (`POST /login?user=NAME`) and the protocol under its
/// prefix, whose identity seam is `sessions`: build `sse` with `config.access =
/// Some(sessions.clone())`. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn axum_router_with_sessions(sse: Sse, sessions: Arc<Sessions>) -> Router {
    let prefix = format!("{}{{*rest}}", sse.config().prefix);
    Router::new()
        .route("/login", post(login))
        .with_state(sessions)
        .route(&prefix, crate::protocol(sse))
}
