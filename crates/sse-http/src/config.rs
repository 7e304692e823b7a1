//! Server configuration: routes, limits, timings, CORS and the admin token.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::access::Access;
use crate::peers::PeerLimits;

/// Everything the protocol layer can be told. Every limit is a defence against a client that
/// sends too much; each is enforced with a 4xx (or 503 for capacity) and a short reason.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The path prefix of every route, starting and ending with `/`. Default: `/sse/`.
    pub prefix: String,
    /// The bearer token of the admin routes. `None` (the default) turns them off: they answer
    /// 403. Compared in constant time.
    pub admin_token: Option<String>,
    /// A comment is written on a stream idle for this long, so that proxies keep it open and a
    /// vanished client is noticed when the write fails. Default: 15 s.
    pub keep_alive: Duration,
    /// The reconnection time sent to clients in the first frame (`retry:`). Default: 2 s.
    pub retry: Duration,
    /// How often the stale sweep runs at the least; it runs sooner when the hub's next client
    /// deadline comes first (see [`Sse::sweeper`](crate::Sse::sweeper)). Default: 10 s.
    pub sweep_interval: Duration,
    /// How often the hub's client set is checked for changes while someone (the admin page)
    /// listens to [`ADMIN_KEY`](crate::ADMIN_KEY): at most one notification per this long,
    /// however many clients come and go. Default: 250 ms.
    pub admin_watch: Duration,
    /// How long a connection may take to send a request head, counted from its start or, on a
    /// keep-alive connection, from the end of the last response; then it is closed (a slow or silent peer holds no connection longer). Applies to the lean path
    /// and to hyper's HTTP/1.1 connections (`header_read_timeout`). Default: 30 s.
    pub head_timeout: Duration,
    /// How long a graceful shutdown waits for connections to finish after ending every stream,
    /// before the adapter drops them. Default: 10 s.
    pub shutdown_timeout: Duration,
    /// Origins allowed to call the routes from a browser on another origin (`*` allows any).
    /// Empty (the default) sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// Whether browsers may send credentials (cookies) on cross-origin calls, as `client.js`
    /// does with `withCredentials`: answers `Access-Control-Allow-Credentials: true` to the
    /// origins listed by name in `cors_origins`, never to one allowed only by `*`. Default: off.
    pub cors_credentials: bool,
    /// The largest request body accepted (notify, broadcast). Default: 64 KiB; larger is 413.
    pub max_body: usize,
    /// The longest client name, in bytes. Default: 64.
    pub max_name_len: usize,
    /// The longest key or task id, in bytes. Default: 64.
    pub max_key_len: usize,
    /// The most tasks running at once, over all clients; more is 503. Default: 1024.
    pub max_tasks: usize,
    /// The most tasks one client may have running at once; more is `429`, so that one client
    /// cannot take every slot of `max_tasks`. Default: 8.
    pub max_tasks_per_client: usize,
    /// Most clients listed in one page of `GET clients`. Default: 1000.
    pub max_list: usize,
    /// Most distinct keys subscribed to, over all clients; a subscription to another key is
    /// refused with `503`. Default: 100,000.
    pub max_keys: usize,
    /// Most subscriptions held, over all clients (each client holds at most
    /// `registry.max_keys_per_client`); more is `503`. Default: 4,000,000.
    pub max_subscriptions: usize,
    /// Limits per peer address on registering clients and on open streams (`429` with
    /// `Retry-After` beyond them). `None` turns them off (load tests from a few addresses).
    /// Default: on, with [`PeerLimits::default`].
    pub peer_limits: Option<PeerLimits>,
    /// Proxies whose `X-Forwarded-For` is believed: for a request from one of these addresses,
    /// the per-peer limits count the address the proxy appended (the header's last entry).
    /// Default: none.
    pub trusted_proxies: Vec<IpAddr>,
    /// The application's say over who a request is and what it may do (see [`Access`]).
    /// Default: none, so names are open and the admin token alone opens the admin routes.
    pub access: Option<Arc<dyn Access>>,
    /// How long the key of an idempotent publish (its `Idempotency-Key` header, scoped to the
    /// route and target) is remembered: a publish with the same key within it is answered as
    /// a replay and publishes nothing. Default: 24 hours.
    pub idempotency_ttl: Duration,
    /// The most keys of idempotent publishes remembered (per node in memory; over the cluster
    /// with `sse-redis`); beyond it the oldest key is forgotten first, before its TTL. `0`
    /// remembers none (the header is still checked, and every publish is made). Each key costs
    /// up to ~300 bytes (~130 for a UUID). Default: 100,000.
    pub idempotency_capacity: usize,
    /// The registry's own limits: total clients (beyond it, 503), keys per client, queues,
    /// history, grace periods.
    pub registry: sse_registry::Config,
    /// Whether [`serve`](crate::serve) and [`serve_app`](crate::serve_app) answer bodiless
    /// HTTP/1.1 requests of the protocol (registering, subscribing, opening a stream) with
    /// their lean writer instead of hyper: the same responses (a stream close-delimited), for a
    /// few KiB per open stream instead of hyper's per-connection buffers (8–24 KiB). A
    /// connection goes to hyper for good at its first request with a body, one of the
    /// application's (under `serve_app`), or on HTTP/2. Default: on.
    pub lean_streams: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            prefix: "/sse/".into(),
            admin_token: None,
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            sweep_interval: Duration::from_secs(10),
            admin_watch: Duration::from_millis(250),
            head_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            cors_origins: Vec::new(),
            cors_credentials: false,
            max_body: 64 * 1024,
            max_name_len: 64,
            max_key_len: 64,
            max_tasks: 1024,
            max_tasks_per_client: 8,
            max_list: 1000,
            max_keys: 100_000,
            max_subscriptions: 4_000_000,
            peer_limits: Some(PeerLimits::default()),
            trusted_proxies: Vec::new(),
            access: None,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_capacity: 100_000,
            registry: sse_registry::Config::default(),
            lean_streams: true,
        }
    }
}

/// What is wrong with a [`Config`], as [`Config::validate`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`Config::admin_token`] is empty or only whitespace: it would let through anyone who
    /// sends `Authorization: Bearer ` (the admin routes are off with `None`).
    EmptyAdminToken,
    /// [`Config::prefix`] holds a character other than an unreserved URL one or `/`, or `//`.
    BadPrefix,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyAdminToken => {
                "the admin token is empty (use None to turn the admin routes off)"
            }
            Self::BadPrefix => "the prefix must be a path of unreserved URL characters",
        })
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks the configuration. The service's constructors
    /// ([`Sse::new`](crate::Sse::new) and the others) panic with this error on a configuration
    /// that fails it, so a program that takes its configuration from outside should call this
    /// first and report the error.
    ///
    /// ```
    /// use sse_http::{Config, ConfigError};
    ///
    /// let mut config = Config::default();
    /// config.admin_token = Some("  ".into());
    /// assert_eq!(config.validate(), Err(ConfigError::EmptyAdminToken));
    /// config.admin_token = Some("change me".into());
    /// assert_eq!(config.validate(), Ok(()));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .admin_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ConfigError::EmptyAdminToken);
        }
        let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
        if !self.prefix.chars().all(unreserved) || self.prefix.contains("//") {
            return Err(ConfigError::BadPrefix);
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("prefix", &self.prefix)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("keep_alive", &self.keep_alive)
            .field("retry", &self.retry)
            .field("sweep_interval", &self.sweep_interval)
            .field("admin_watch", &self.admin_watch)
            .field("head_timeout", &self.head_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("cors_origins", &self.cors_origins)
            .field("cors_credentials", &self.cors_credentials)
            .field("max_body", &self.max_body)
            .field("max_name_len", &self.max_name_len)
            .field("max_key_len", &self.max_key_len)
            .field("max_tasks", &self.max_tasks)
            .field("max_tasks_per_client", &self.max_tasks_per_client)
            .field("max_list", &self.max_list)
            .field("max_keys", &self.max_keys)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("peer_limits", &self.peer_limits)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("access", &self.access.as_ref().map(|_| "<set>"))
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("idempotency_capacity", &self.idempotency_capacity)
            .field("registry", &self.registry)
            .field("lean_streams", &self.lean_streams)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_tokens_are_checked() {
        let mut config = Config::default();
        assert_eq!(config.validate(), Ok(()));
        for bad in ["/a b/", "/sse//x/", "/s\u{e9}/", "/a?b/"] {
            config.prefix = bad.into();
            assert_eq!(config.validate(), Err(ConfigError::BadPrefix), "{bad}");
        }
        config.prefix = "/api/v1/events/".into();
        config.admin_token = Some(String::new());
        assert_eq!(config.validate(), Err(ConfigError::EmptyAdminToken));
        config.admin_token = Some("\t\n".into());
        assert_eq!(config.validate(), Err(ConfigError::EmptyAdminToken));
        config.admin_token = None;
        assert_eq!(config.validate(), Ok(()));
    }
}
