//! Per-peer limits: how fast one address may register clients, and how many streams it may
//! hold open, so that one peer cannot take the hub's capacity from everyone else.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::HeaderMap;

use crate::reply::Reject;

/// The address a request came from, as the server accepted its connection. [`serve`] and
/// [`serve_app`] put it in every request's extensions; an application that calls
/// [`Sse::handle`](crate::Sse::handle) itself should too (from axum's `ConnectInfo`, say), or
/// all its requests count as one peer's.
///
/// [`serve`]: crate::serve
/// [`serve_app`]: crate::serve_app
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Limits per peer address (an IPv4 address, or an IPv6 /64: one host's usual share). Over a
/// limit, a request is answered `429 Too Many Requests` with `Retry-After`.
///
/// The defaults leave a real user alone (a browser opens a handful of streams, and registers a
/// client per tab) while a script on one address cannot fill the hub; a server behind a proxy
/// must name it in [`Config::trusted_proxies`](crate::Config::trusted_proxies), or every user
/// is the proxy's one address. Load tests from a few addresses turn them off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerLimits {
    /// Client ids one address may register at once before it is held to
    /// [`issue_per_sec`](Self::issue_per_sec). Default: 500.
    pub issue_burst: u32,
    /// Client ids one address may register per second, once its burst is spent. Default: 100.
    pub issue_per_sec: u32,
    /// Event streams one address may hold open at once. Default: 1,024.
    pub max_streams: u32,
    /// Addresses tracked at once (a few dozen bytes each). Beyond it, addresses not seen yet
    /// share one allowance, so a flood from many addresses is limited as one. Default: 65,536.
    pub max_peers: usize,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            issue_burst: 500,
            issue_per_sec: 100,
            max_streams: 1024,
            max_peers: 65_536,
        }
    }
}

/// Who a peer is for the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The /64 of an IPv6 address.
    V6([u8; 8]),
    /// An address not known (the request has no [`PeerAddr`]), or one beyond
    /// [`PeerLimits::max_peers`].
    Other,
}

impl PeerKey {
    /// The key of the request whose connection came from `peer` with `headers`: the address a
    /// trusted proxy says it forwarded for (the last `X-Forwarded-For` entry), else the peer's.
    pub(crate) fn of(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Self {
        let Some(peer) = peer else {
            return Self::Other;
        };
        let mut ip = canonical(peer.ip());
        if trusted.contains(&ip) {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|last| last.trim().parse::<IpAddr>().ok());
            if let Some(client) = forwarded {
                ip = canonical(client);
            }
        }
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                Self::V6(prefix)
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One address's allowances.
#[derive(Debug)]
struct Peer {
    /// Registrations left in the bucket, as of `updated`.
    tokens: f64,
    updated: Instant,
    /// Streams open.
    streams: u32,
}

/// The per-peer state of one service.
#[derive(Debug)]
pub(crate) struct Peers {
    limits: PeerLimits,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    peers: HashMap<PeerKey, Peer>,
    /// When the table was last cleared of peers with nothing to remember.
    pruned: Option<Instant>,
}

/// A stream counted against its peer's [`PeerLimits::max_streams`], given back on drop.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    peers: Arc<Peers>,
    key: PeerKey,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut state = self.peers.lock();
        if let Some(peer) = state.peers.get_mut(&self.key) {
            peer.streams = peer.streams.saturating_sub(1);
        }
    }
}

/// At most one pass over the table to drop idle peers per this long, so that a flood of new
/// addresses does not make every request scan it.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

impl Peers {
    pub(crate) fn new(limits: PeerLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                peers: HashMap::new(),
                pruned: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one registration from `key`'s bucket, or refuses with `429`.
    pub(crate) fn issue(&self, key: PeerKey, now: Instant) -> Result<(), Reject> {
        let limits = &self.limits;
        let burst = f64::from(limits.issue_burst.max(1));
        let rate = f64::from(limits.issue_per_sec);
        let mut state = self.lock();
        let (_, peer) = self.entry(&mut state, key, now);
        let elapsed = now.saturating_duration_since(peer.updated).as_secs_f64();
        peer.tokens = (peer.tokens + elapsed * rate).min(burst);
        peer.updated = now;
        if peer.tokens >= 1.0 {
            peer.tokens -= 1.0;
            return Ok(());
        }
        let wait = if rate > 0.0 {
            ((1.0 - peer.tokens) / rate).ceil()
        } else {
            60.0
        };
        Err(Reject::too_many(
            "too many clients registered from this address; retry later",
            wait as u64,
        ))
    }

    /// Counts a stream of `key`'s, or refuses with `429` when it has
    /// [`PeerLimits::max_streams`] open.
    pub(crate) fn open_stream(
        self: &Arc<Self>,
        key: PeerKey,
        now: Instant,
    ) -> Result<StreamSlot, Reject> {
        let mut state = self.lock();
        let max = self.limits.max_streams;
        let (key, peer) = self.entry(&mut state, key, now);
        if peer.streams >= max {
            return Err(Reject::too_many(
                format!("at most {max} open streams from one address"),
                5,
            ));
        }
        peer.streams += 1;
        Ok(StreamSlot {
            peers: self.clone(),
            key,
        })
    }

    /// `key`'s entry, made if need be; beyond `max_peers` (after dropping the entries that hold
    /// nothing worth remembering), a new address shares the [`PeerKey::Other`] entry. Returns
    /// the key of the entry.
    fn entry<'s>(
        &self,
        state: &'s mut State,
        key: PeerKey,
        now: Instant,
    ) -> (PeerKey, &'s mut Peer) {
        let burst = f64::from(self.limits.issue_burst.max(1));
        let mut key = key;
        if !state.peers.contains_key(&key) && state.peers.len() >= self.limits.max_peers {
            let due = state
                .pruned
                .is_none_or(|at| now.saturating_duration_since(at) >= PRUNE_EVERY);
            if due {
                state.pruned = Some(now);
                let rate = f64::from(self.limits.issue_per_sec);
                state.peers.retain(|_, p| {
                    let elapsed = now.saturating_duration_since(p.updated).as_secs_f64();
                    p.streams > 0 || p.tokens + elapsed * rate < burst
                });
            }
            if state.peers.len() >= self.limits.max_peers {
                key = PeerKey::Other;
            }
        }
        let peer = state.peers.entry(key).or_insert(Peer {
            tokens: burst,
            updated: now,
            streams: 0,
        });
        (key, peer)
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn v4(last: u8) -> PeerKey {
        PeerKey::V4([10, 0, 0, last])
    }

    fn limits(burst: u32, per_sec: u32, streams: u32, peers: usize) -> PeerLimits {
        PeerLimits {
            issue_burst: burst,
            issue_per_sec: per_sec,
            max_streams: streams,
            max_peers: peers,
        }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let peers = Peers::new(limits(5, 2, 1, 16));
        let t0 = Instant::now();
        for _ in 0..5 {
            peers.issue(v4(1), t0).unwrap();
        }
        let refused = peers.issue(v4(1), t0).unwrap_err();
        assert_eq!(refused.status, http::StatusCode::TOO_MANY_REQUESTS);
        // Another address has its own bucket.
        peers.issue(v4(2), t0).unwrap();
        // Half a second later, one more (2 per second).
        peers.issue(v4(1), t0 + Duration::from_millis(500)).unwrap();
        assert!(peers.issue(v4(1), t0 + Duration::from_millis(500)).is_err());
        // Long after, the whole burst again, never more.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..5 {
            peers.issue(v4(1), later).unwrap();
        }
        assert!(peers.issue(v4(1), later).is_err());
    }

    #[test]
    fn open_streams_are_counted_and_given_back() {
        let peers = Arc::new(Peers::new(limits(5, 2, 2, 16)));
        let now = Instant::now();
        let a = peers.open_stream(v4(1), now).unwrap();
        let _b = peers.open_stream(v4(1), now).unwrap();
        assert!(peers.open_stream(v4(1), now).is_err());
        assert!(peers.open_stream(v4(2), now).is_ok());
        drop(a);
        assert!(peers.open_stream(v4(1), now).is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_prunes_idle_peers() {
        let peers = Peers::new(limits(2, 1, 4, 3));
        let t0 = Instant::now();
        for last in 0..10 {
            peers.issue(v4(last), t0).unwrap_or(());
        }
        // Three tracked, and the rest share one allowance, spent at once.
        assert!(peers.tracked() <= 4, "{}", peers.tracked());
        assert!(peers.issue(v4(200), t0).is_err());
        // Once the buckets have refilled, their peers are forgotten and new ones get their own.
        let later = t0 + Duration::from_secs(10);
        peers.issue(v4(201), later).unwrap();
        peers.issue(v4(201), later).unwrap();
        assert!(peers.issue(v4(201), later).is_err());
        assert!(peers.tracked() <= 4);
    }

    #[test]
    fn keys_come_from_the_peer_or_a_trusted_proxy() {
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7"),
        );
        let trusted = ["127.0.0.1".parse().unwrap()];
        assert_eq!(
            PeerKey::of(Some(peer), &headers, &trusted),
            PeerKey::V4([10, 1, 2, 3])
        );
        // From the trusted proxy: the address it appended (the last), not what the client said.
        assert_eq!(
            PeerKey::of(Some(proxy), &headers, &trusted),
            PeerKey::V4([198, 51, 100, 7])
        );
        assert_eq!(
            PeerKey::of(Some(proxy), &headers, &[]),
            PeerKey::V4([127, 0, 0, 1])
        );
        let v6a: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().unwrap();
        let v6b: SocketAddr = "[2001:db8:1:2:bbbb::9]:1".parse().unwrap();
        let none = HeaderMap::new();
        assert_eq!(
            PeerKey::of(Some(v6a), &none, &[]),
            PeerKey::of(Some(v6b), &none, &[])
        );
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:1".parse().unwrap();
        assert_eq!(
            PeerKey::of(Some(mapped), &none, &[]),
            PeerKey::V4([10, 1, 2, 3])
        );
        assert_eq!(PeerKey::of(None, &none, &[]), PeerKey::Other);
    }
}
