//! The identity seam: the application says who a request is and what it may do.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use http::request::Parts;
use sse_codec::EventName;

use crate::route::Route;

/// Who sent a request, as the application's [`Access`] says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The user the request is from: the name a client it registers gets, and the only name
    /// whose clients it may act for. `None`: an anonymous request, which may register only
    /// clients without a name.
    pub user: Option<String>,
    /// Whether the request may use the admin routes (as the admin token allows).
    pub admin: bool,
}

impl Identity {
    /// An anonymous request: no user, not the admin.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A request of `user`.
    pub fn user(user: impl Into<String>) -> Self {
        Self {
            user: Some(user.into()),
            admin: false,
        }
    }

    /// The same identity, allowed the admin routes.
    #[must_use]
    pub fn with_admin(mut self) -> Self {
        self.admin = true;
        self
    }
}

/// The answer to a request the application refuses: a 4xx status and a short reason for the
/// body (it is sent to the peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) reason: Cow<'static, str>,
}

impl Refusal {
    /// A refusal with `status` (a 4xx; anything else is sent as `403`) and `reason`.
    pub fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::FORBIDDEN
        };
        Self {
            status,
            reason: reason.into(),
        }
    }

    /// `401 Unauthorized`: the request says nothing the application accepts.
    pub fn unauthorized(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason)
    }

    /// `403 Forbidden`: the application knows who it is, and refuses.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }
}

/// The application's say over who a request is and what it may do, the way a token decides a
/// client's topics in Mercure or Centrifugo. Set it in [`Config::access`](crate::Config::access).
///
/// [`identify`](Self::identify) runs for every request of the protocol (after its route is
/// known, before anything is done), on the lean path of [`serve`](crate::serve) and
/// [`serve_app`](crate::serve_app) and on hyper's alike, so it is also the place for what an
/// application's middleware would do on these routes (checking a session, refusing a banned
/// address): middleware does not see the lean path's requests. With an `Access`:
///
/// - `POST clients` registers a client of the identity's user; a `?name=` other than that user
///   is refused (`403`), and an anonymous request may register only nameless clients;
/// - every route on a client (its stream, subscriptions, tasks, removal) is refused (`403`) to
///   an identity whose user is not the client's name (nameless clients: the id is enough);
/// - `PUT listen` asks [`may_listen`](Self::may_listen), `PUT tasks`
///   [`may_submit`](Self::may_submit) (`403` when refused);
/// - the admin routes are open to an identity with [`Identity::admin`], besides the token.
///
/// Without one (the default), names are open: `?name=` is whatever the caller says, as the
/// demo uses them, and only the admin token opens the admin routes.
///
/// Implemented for every `Fn(&Parts, &Route<'_>) -> Result<Identity, Refusal>`:
///
/// ```
/// use sse_http::{Access, Config, Identity, Refusal, Route};
///
/// let mut config = Config::default();
/// config.access = Some(std::sync::Arc::new(|head: &http::request::Parts, _route: &Route<'_>| {
///     // Say, a header that the application's proxy sets after checking a session.
///     match head.headers.get("x-user").and_then(|v| v.to_str().ok()) {
///         Some(user) => Ok(Identity::user(user)),
///         None => Err(Refusal::unauthorized("sign in first")),
///     }
/// }));
/// ```
pub trait Access: Send + Sync + 'static {
    /// Who the request whose head is `head` is from, for `route`; an error is the answer.
    fn identify(&self, head: &Parts, route: &Route<'_>) -> Result<Identity, Refusal>;

    /// Whether `who` may subscribe to `key`. The default allows every key.
    fn may_listen(&self, who: &Identity, key: &EventName) -> bool {
        let _ = (who, key);
        true
    }

    /// Whether `who` may submit the task `task`. The default allows every task.
    fn may_submit(&self, who: &Identity, task: &str) -> bool {
        let _ = (who, task);
        true
    }
}

impl<F> Access for F
where
    F: Fn(&Parts, &Route<'_>) -> Result<Identity, Refusal> + Send + Sync + 'static,
{
    fn identify(&self, head: &Parts, route: &Route<'_>) -> Result<Identity, Refusal> {
        self(head, route)
    }
}

impl fmt::Debug for dyn Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Access")
    }
}
