//! Idempotent publishes: the `Idempotency-Key` of an admin publish, scoped to its route and
//! target, and the in-memory table that remembers the keys seen.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Recipients;

/// The request header of an admin publish (`POST notify/{key}`, `POST broadcast`) that makes
/// it idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The response header that says a publish was a replay of an earlier one with the same
/// [`IDEMPOTENCY_KEY`] (its value is `true`): it was not published again.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The longest [`IDEMPOTENCY_KEY`] accepted, in bytes (a UUID takes 36).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// An admin publish's `Idempotency-Key`, scoped to its route and target: the same key given
/// to `broadcast` and to `notify/news` names two publishes, not one. Cheap to clone.
///
/// Its text is `<target>/<key>`: `a` for a broadcast, `k:<key of the notify>` for a notify,
/// `c:<id>` for a client, and `n<length>:<name>` for a name. Keys and ids hold no `/` and a
/// name's length says where it ends, so no two targets and keys give the same text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Arc<str>);

/// Why a header value is not an [`IdempotencyKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadIdempotencyKey {
    /// Empty, or longer than [`MAX_IDEMPOTENCY_KEY_LEN`].
    Length,
    /// A byte that is not printable ASCII (`!` to `~`: no space, no control character).
    NotPrintable,
}

impl fmt::Display for BadIdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length => write!(
                f,
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes"
            ),
            Self::NotPrintable => {
                f.write_str("Idempotency-Key may contain only printable ASCII (! to ~, no spaces)")
            }
        }
    }
}

impl std::error::Error for BadIdempotencyKey {}

impl IdempotencyKey {
    /// The key `key` (a header value's bytes) for a publish to `to`.
    pub fn new(to: &Recipients, key: &[u8]) -> Result<Self, BadIdempotencyKey> {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(BadIdempotencyKey::Length);
        }
        if !key.iter().all(|b| b.is_ascii_graphic()) {
            return Err(BadIdempotencyKey::NotPrintable);
        }
        // Checked just above: printable ASCII is UTF-8.
        let key = std::str::from_utf8(key).map_err(|_| BadIdempotencyKey::NotPrintable)?;
        let scoped = match to {
            Recipients::All => format!("a/{key}"),
            Recipients::Key(k) => format!("k:{}/{key}", k.as_str()),
            Recipients::Name(name) => format!("n{}:{name}/{key}", name.len()),
            Recipients::Client(id) => format!("c:{id}/{key}"),
        };
        Ok(Self(scoped.into()))
    }

    /// The scoped key as text: `<target>/<key>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A client's target holds its id, a secret: only the kind of target shows.
        let kind = self.0.split(['/', ':']).next().unwrap_or("");
        write!(f, "IdempotencyKey({kind}…)")
    }
}

/// How a publish with an [`IdempotencyKey`] is deduplicated: for how long the key is
/// remembered, and how many keys are remembered at most (the oldest forgotten first).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Once {
    /// The publish's key.
    pub key: IdempotencyKey,
    /// How long a repeat of the key is a replay ([`Config::idempotency_ttl`]).
    ///
    /// [`Config::idempotency_ttl`]: crate::Config::idempotency_ttl
    pub ttl: Duration,
    /// Keys remembered at most ([`Config::idempotency_capacity`]).
    ///
    /// [`Config::idempotency_capacity`]: crate::Config::idempotency_capacity
    pub capacity: usize,
}

impl Once {
    /// The key `key`, remembered for `ttl`, with at most `capacity` keys remembered.
    pub fn new(key: IdempotencyKey, ttl: Duration, capacity: usize) -> Self {
        Self { key, ttl, capacity }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Published {
    /// It was published, to this many recipients (on this node).
    Delivered(usize),
    /// Its key was seen within the TTL: it was published then, not now.
    Replayed,
}

/// The keys of the in-memory backend's publishes, each until it expires: at most `capacity`
/// (a publish beyond it forgets the oldest key first). Takes `now` as an argument, so a test
/// drives its clock.
#[derive(Debug, Default)]
pub(crate) struct Remembered {
    /// Each key and when it expires.
    expiry: HashMap<IdempotencyKey, Instant>,
    /// The keys in the order they were remembered, with their expiry then (an entry whose
    /// expiry no longer matches `expiry` is a stale copy, dropped when it reaches the front).
    order: VecDeque<(Instant, IdempotencyKey)>,
}

impl Remembered {
    /// Remembers `once`'s key as of `now`; returns whether it is new (`false`: a replay, the
    /// key was seen within its TTL). A capacity of `0` remembers nothing (every key is new).
    pub(crate) fn admit(&mut self, once: &Once, now: Instant) -> bool {
        self.expire(now);
        if once.capacity == 0 {
            return true;
        }
        if self.expiry.get(&once.key).is_some_and(|&until| until > now) {
            return false;
        }
        let until = now + once.ttl;
        self.expiry.insert(once.key.clone(), until);
        self.order.push_back((until, once.key.clone()));
        while self.order.len() > once.capacity {
            self.pop_front();
        }
        true
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.expiry.len()
    }

    /// Forgets the keys at the front that have expired by `now`.
    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(until, _)| *until <= now) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((until, key)) = self.order.pop_front() {
            if self.expiry.get(&key) == Some(&until) {
                self.expiry.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sse_codec::EventName;

    use super::*;

    fn once(key: &str, ttl: Duration, capacity: usize) -> Once {
        Once::new(
            IdempotencyKey::new(&Recipients::All, key.as_bytes()).unwrap(),
            ttl,
            capacity,
        )
    }

    #[test]
    fn keys_are_printable_ascii_of_bounded_length_and_scoped() {
        let all = Recipients::All;
        assert_eq!(
            IdempotencyKey::new(&all, b""),
            Err(BadIdempotencyKey::Length)
        );
        let long = [b'a'; MAX_IDEMPOTENCY_KEY_LEN + 1];
        assert_eq!(
            IdempotencyKey::new(&all, &long),
            Err(BadIdempotencyKey::Length)
        );
        assert!(IdempotencyKey::new(&all, &long[1..]).is_ok());
        for bad in [&b"a b"[..], b"a\tb", b"\x7f", "é".as_bytes(), b"a\0"] {
            assert_eq!(
                IdempotencyKey::new(&all, bad),
                Err(BadIdempotencyKey::NotPrintable),
                "{bad:?}"
            );
        }
        let news = Recipients::Key(EventName::from_static("news"));
        let a = IdempotencyKey::new(&all, b"k-1/:x").unwrap();
        let k = IdempotencyKey::new(&news, b"k-1/:x").unwrap();
        assert_eq!(a.as_str(), "a/k-1/:x");
        assert_eq!(k.as_str(), "k:news/k-1/:x");
        assert_ne!(a, k);
        let id = sse_registry::ClientId::random();
        let c = IdempotencyKey::new(&Recipients::Client(id), b"x").unwrap();
        assert!(!format!("{c:?}").contains(&id.to_string()));
    }

    #[test]
    fn a_key_is_a_replay_until_its_ttl_passes() {
        let mut table = Remembered::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        assert!(table.admit(&once("a", ttl, 10), t0));
        assert!(!table.admit(&once("a", ttl, 10), t0));
        assert!(!table.admit(&once("a", ttl, 10), t0 + ttl - Duration::from_millis(1)));
        assert!(table.admit(&once("b", ttl, 10), t0 + Duration::from_secs(30)));
        // At t0 + ttl, `a` has expired (and is forgotten), `b` has not.
        assert!(table.admit(&once("a", ttl, 10), t0 + ttl));
        assert!(!table.admit(&once("b", ttl, 10), t0 + ttl));
        assert_eq!(table.len(), 2);
        // Long after, every key has expired and only the new one is held.
        assert!(table.admit(&once("c", ttl, 10), t0 + 10 * ttl));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn the_table_holds_at_most_its_capacity_forgetting_the_oldest() {
        let mut table = Remembered::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3600);
        for n in 0..1000 {
            assert!(table.admit(&once(&n.to_string(), ttl, 100), t0));
            assert!(table.len() <= 100);
            assert!(table.order.len() <= 100);
        }
        assert_eq!(table.len(), 100);
        // The newest 100 are held, the older forgotten.
        assert!(!table.admit(&once("999", ttl, 100), t0));
        assert!(!table.admit(&once("900", ttl, 100), t0));
        assert!(table.admit(&once("899", ttl, 100), t0));
        assert!(table.admit(&once("x", ttl, 0), t0), "capacity 0: off");
        assert!(table.admit(&once("x", ttl, 0), t0));
    }

    /// A key re-remembered after it expired, while an older entry with a longer TTL held the
    /// front: the stale copy of its order entry does not forget the new one.
    #[test]
    fn a_stale_order_entry_does_not_forget_a_newer_key() {
        let mut table = Remembered::default();
        let t0 = Instant::now();
        let (long, short) = (Duration::from_secs(100), Duration::from_secs(1));
        assert!(table.admit(&once("long", long, 10), t0));
        assert!(table.admit(&once("a", short, 10), t0));
        let t1 = t0 + Duration::from_secs(2);
        assert!(table.admit(&once("a", short, 10), t1), "expired");
        assert!(!table.admit(&once("a", short, 10), t1));
        let t2 = t0 + Duration::from_secs(101);
        // `long` and both copies of `a`'s entry go; `a` expired at t1 + 1 s anyway.
        assert!(table.admit(&once("z", short, 10), t2));
        assert_eq!(table.len(), 1);
    }
}
