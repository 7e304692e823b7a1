//! Which route of the protocol a request is for: a pure function of its method and path.

use http::Method;
use sse_registry::ClientId;

/// A route of the protocol, parsed from a request's method and its path under the prefix by
/// [`Route::parse`].
///
/// Client ids are parsed here (a malformed one is [`RouteError::MalformedId`]); keys, names and
/// task ids are left as they came, since what they may be depends on the
/// [`Config`](crate::Config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route<'a> {
    /// `GET`/`HEAD client.js`: the browser module.
    ClientJs,
    /// `POST clients`: issue a client id.
    Issue,
    /// `GET clients` (admin): list the clients.
    List,
    /// `DELETE clients` (admin): forget every client.
    Clear,
    /// `DELETE clients/{id}`: forget one client.
    Remove(ClientId),
    /// `GET events/{id}`: open the client's stream.
    Events(ClientId),
    /// `HEAD events/{id}`: the stream's headers without opening it.
    EventsHead(ClientId),
    /// `PUT listen/{id}/{key}`: subscribe.
    Listen(ClientId, &'a str),
    /// `DELETE listen/{id}/{key}`: unsubscribe.
    Unlisten(ClientId, &'a str),
    /// `PUT tasks/{id}/{task}`: submit a task.
    Task(ClientId, &'a str),
    /// `POST notify/{key}` (admin): publish to a key's subscribers.
    Notify(&'a str),
    /// `POST broadcast` (admin): publish to everyone.
    Broadcast,
    /// `GET stats` (admin): the counts.
    Stats,
    /// `POST sweep` (admin): a stale sweep now.
    Sweep,
    /// `GET metrics` (admin): the metrics, in the Prometheus text format.
    Metrics,
    /// `OPTIONS` on a route's path: a CORS preflight (or a plain `OPTIONS`).
    Preflight {
        /// The methods the path takes, as an `Allow` header value.
        allow: &'static str,
    },
}

/// Why a request matches no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// No route has this path: `404`.
    NotFound,
    /// The path is a route's, the method is not: `405`, with these methods in `Allow`.
    MethodNotAllowed {
        /// The methods the path takes, as an `Allow` header value.
        allow: &'static str,
    },
    /// The path's client id is not a UUID: `400`.
    MalformedId,
}

impl<'a> Route<'a> {
    /// The route of a request with `method` whose path, with the prefix removed, is `path`
    /// (`events/{id}` for `/sse/events/{id}` under the default prefix).
    ///
    /// ```
    /// use http::Method;
    /// use sse_http::{Route, RouteError};
    ///
    /// assert_eq!(Route::parse(&Method::POST, "clients"), Ok(Route::Issue));
    /// assert_eq!(Route::parse(&Method::POST, "events/x"), Err(RouteError::MethodNotAllowed { allow: "GET, HEAD, OPTIONS" }));
    /// assert_eq!(Route::parse(&Method::GET, "events/x"), Err(RouteError::MalformedId));
    /// assert_eq!(Route::parse(&Method::GET, "nowhere"), Err(RouteError::NotFound));
    /// ```
    pub fn parse(method: &Method, path: &'a str) -> Result<Self, RouteError> {
        let mut segments = path.split('/');
        let parts = (
            segments.next().unwrap_or(""),
            segments.next(),
            segments.next(),
            segments.next(),
        );
        let (allow, route): (&'static str, Option<Self>) = match parts {
            ("client.js", None, None, None) => ("GET, HEAD, OPTIONS", None),
            ("clients", None, None, None) => ("GET, POST, DELETE, OPTIONS", None),
            ("clients", Some(_), None, None) => ("DELETE, OPTIONS", None),
            ("events", Some(_), None, None) => ("GET, HEAD, OPTIONS", None),
            ("listen", Some(_), Some(_), None) => ("PUT, DELETE, OPTIONS", None),
            ("tasks", Some(_), Some(_), None) => ("PUT, OPTIONS", None),
            ("notify", Some(key), None, None) => ("POST, OPTIONS", Some(Self::Notify(key))),
            ("broadcast" | "sweep", None, None, None) => ("POST, OPTIONS", None),
            ("stats" | "metrics", None, None, None) => ("GET, OPTIONS", None),
            _ => return Err(RouteError::NotFound),
        };
        if *method == Method::OPTIONS {
            return Ok(Self::Preflight { allow });
        }
        let id = || {
            parts
                .1
                .unwrap_or("")
                .parse::<ClientId>()
                .map_err(|_| RouteError::MalformedId)
        };
        let third = parts.2.unwrap_or("");
        let found = match (parts.0, method) {
            ("client.js", &Method::GET | &Method::HEAD) => Some(Self::ClientJs),
            ("clients", &Method::POST) if parts.1.is_none() => Some(Self::Issue),
            ("clients", &Method::GET) if parts.1.is_none() => Some(Self::List),
            ("clients", &Method::DELETE) if parts.1.is_none() => Some(Self::Clear),
            ("clients", &Method::DELETE) => Some(Self::Remove(id()?)),
            ("events", &Method::GET) => Some(Self::Events(id()?)),
            ("events", &Method::HEAD) => Some(Self::EventsHead(id()?)),
            ("listen", &Method::PUT) => Some(Self::Listen(id()?, third)),
            ("listen", &Method::DELETE) => Some(Self::Unlisten(id()?, third)),
            ("tasks", &Method::PUT) => Some(Self::Task(id()?, third)),
            ("notify", &Method::POST) => route,
            ("broadcast", &Method::POST) => Some(Self::Broadcast),
            ("stats", &Method::GET) => Some(Self::Stats),
            ("metrics", &Method::GET) => Some(Self::Metrics),
            ("sweep", &Method::POST) => Some(Self::Sweep),
            _ => None,
        };
        found.ok_or(RouteError::MethodNotAllowed { allow })
    }

    /// Whether the route is an admin route (needs the admin token).
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Self::List
                | Self::Clear
                | Self::Notify(_)
                | Self::Broadcast
                | Self::Stats
                | Self::Sweep
                | Self::Metrics
        )
    }

    /// The client the route acts on, if any.
    pub fn client(&self) -> Option<ClientId> {
        match *self {
            Self::Remove(id)
            | Self::Events(id)
            | Self::EventsHead(id)
            | Self::Listen(id, _)
            | Self::Unlisten(id, _)
            | Self::Task(id, _) => Some(id),
            _ => None,
        }
    }

    /// A short name of the route, for logs and metrics (never an id).
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClientJs => "client.js",
            Self::Issue => "issue",
            Self::List => "list",
            Self::Clear => "clear",
            Self::Remove(_) => "remove",
            Self::Events(_) => "events",
            Self::EventsHead(_) => "events_head",
            Self::Listen(..) => "listen",
            Self::Unlisten(..) => "unlisten",
            Self::Task(..) => "task",
            Self::Notify(_) => "notify",
            Self::Broadcast => "broadcast",
            Self::Stats => "stats",
            Self::Sweep => "sweep",
            Self::Metrics => "metrics",
            Self::Preflight { .. } => "preflight",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f0e0d0c-0b0a-4908-8706-050403020100";

    fn id() -> ClientId {
        ID.parse().unwrap()
    }

    fn parse(method: Method, path: &str) -> Result<Route<'_>, RouteError> {
        Route::parse(&method, path)
    }

    #[test]
    fn every_route_parses() {
        let events = format!("events/{ID}");
        let listen = format!("listen/{ID}/news");
        let task = format!("tasks/{ID}/t1");
        let client = format!("clients/{ID}");
        assert_eq!(parse(Method::GET, "client.js"), Ok(Route::ClientJs));
        assert_eq!(parse(Method::HEAD, "client.js"), Ok(Route::ClientJs));
        assert_eq!(parse(Method::POST, "clients"), Ok(Route::Issue));
        assert_eq!(parse(Method::GET, "clients"), Ok(Route::List));
        assert_eq!(parse(Method::DELETE, "clients"), Ok(Route::Clear));
        assert_eq!(parse(Method::DELETE, &client), Ok(Route::Remove(id())));
        assert_eq!(parse(Method::GET, &events), Ok(Route::Events(id())));
        assert_eq!(parse(Method::HEAD, &events), Ok(Route::EventsHead(id())));
        assert_eq!(parse(Method::PUT, &listen), Ok(Route::Listen(id(), "news")));
        assert_eq!(
            parse(Method::DELETE, &listen),
            Ok(Route::Unlisten(id(), "news"))
        );
        assert_eq!(parse(Method::PUT, &task), Ok(Route::Task(id(), "t1")));
        assert_eq!(
            parse(Method::POST, "notify/news"),
            Ok(Route::Notify("news"))
        );
        assert_eq!(parse(Method::POST, "broadcast"), Ok(Route::Broadcast));
        assert_eq!(parse(Method::GET, "stats"), Ok(Route::Stats));
        assert_eq!(parse(Method::POST, "sweep"), Ok(Route::Sweep));
        assert_eq!(parse(Method::GET, "metrics"), Ok(Route::Metrics));
        assert!(Route::Metrics.is_admin());
        assert_eq!(
            parse(Method::OPTIONS, &events),
            Ok(Route::Preflight {
                allow: "GET, HEAD, OPTIONS"
            })
        );
    }

    #[test]
    fn wrong_methods_name_the_allowed_ones() {
        let cases = [
            (Method::POST, "client.js", "GET, HEAD, OPTIONS"),
            (Method::PUT, "clients", "GET, POST, DELETE, OPTIONS"),
            (Method::GET, "clients/x", "DELETE, OPTIONS"),
            (Method::POST, "events/x", "GET, HEAD, OPTIONS"),
            (Method::GET, "listen/x/k", "PUT, DELETE, OPTIONS"),
            (Method::GET, "tasks/x/t", "PUT, OPTIONS"),
            (Method::GET, "notify/k", "POST, OPTIONS"),
            (Method::GET, "broadcast", "POST, OPTIONS"),
            (Method::GET, "sweep", "POST, OPTIONS"),
            (Method::POST, "stats", "GET, OPTIONS"),
        ];
        for (method, path, allow) in cases {
            assert_eq!(
                parse(method.clone(), path),
                Err(RouteError::MethodNotAllowed { allow }),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn unknown_paths_and_malformed_ids() {
        for path in [
            "",
            "nowhere",
            "events",
            "events/x/y",
            "listen/x",
            "clients/x/y",
            "stats/",
            "client.js/",
        ] {
            assert_eq!(
                parse(Method::GET, path),
                Err(RouteError::NotFound),
                "{path}"
            );
        }
        assert_eq!(parse(Method::OPTIONS, "nowhere"), Err(RouteError::NotFound));
        for path in [
            "events/x",
            "events/",
            "clients/nope",
            "listen/1/k",
            "tasks//t",
        ] {
            let method = match path.split('/').next() {
                Some("events") => Method::GET,
                Some("clients") => Method::DELETE,
                _ => Method::PUT,
            };
            assert_eq!(parse(method, path), Err(RouteError::MalformedId), "{path}");
        }
    }

    #[test]
    fn admin_routes_and_clients() {
        let admin = [
            parse(Method::GET, "clients"),
            parse(Method::DELETE, "clients"),
            parse(Method::POST, "notify/k"),
            parse(Method::POST, "broadcast"),
            parse(Method::GET, "stats"),
            parse(Method::POST, "sweep"),
        ];
        assert!(admin.iter().all(|r| r.unwrap().is_admin()));
        let events = format!("events/{ID}");
        let open = parse(Method::GET, &events).unwrap();
        assert!(!open.is_admin());
        assert_eq!(open.client(), Some(id()));
        assert_eq!(parse(Method::POST, "clients").unwrap().client(), None);
    }
}
