//! What keeps lookups of unknown ids cheap: a bounded negative cache (ids Redis did not have,
//! remembered for a short while) and a global rate of the lookups that reach Redis.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sse_registry::ClientId;

/// Ids Redis did not have, each remembered until its expiry; at most `capacity` (the oldest
/// goes first).
pub(crate) struct Negative {
    capacity: usize,
    ttl: Duration,
    expiry: HashMap<ClientId, Instant>,
    /// Insertion order, for eviction; may hold ids already forgotten (skipped when popped).
    order: VecDeque<(ClientId, Instant)>,
}

impl Negative {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            expiry: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` is known to be unknown at `now`.
    pub(crate) fn contains(&mut self, id: ClientId, now: Instant) -> bool {
        match self.expiry.get(&id) {
            Some(&expiry) if now < expiry => true,
            Some(_) => {
                self.expiry.remove(&id);
                false
            }
            None => false,
        }
    }

    /// Remembers that Redis did not have `id`, as of `now`.
    pub(crate) fn insert(&mut self, id: ClientId, now: Instant) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let expiry = now + self.ttl;
        // Expired entries go first, then the oldest while full: the queue stays within twice
        // the capacity (each id at most once in the map, stale queue entries drained here).
        while let Some(&(old, at)) = self.order.front() {
            let full = self.expiry.len() >= self.capacity || self.order.len() >= 2 * self.capacity;
            if at > now && !full {
                break;
            }
            self.order.pop_front();
            if self.expiry.get(&old) == Some(&at) {
                self.expiry.remove(&old);
            }
        }
        self.expiry.insert(id, expiry);
        self.order.push_back((id, expiry));
    }

    /// Forgets `id` (its issue record was applied: it exists now).
    pub(crate) fn remove(&mut self, id: ClientId) {
        self.expiry.remove(&id);
    }

    /// Forgets every id (the client records may have changed in ways this node did not see).
    pub(crate) fn clear(&mut self) {
        self.expiry.clear();
        self.order.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.expiry.len()
    }
}

/// A token bucket: `limit` lookups at once, refilled at `limit` per `period`.
pub(crate) struct Rate {
    limit: u32,
    period: Duration,
    tokens: f64,
    at: Option<Instant>,
}

impl Rate {
    pub(crate) fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
            tokens: f64::from(limit),
            at: None,
        }
    }

    /// Takes a token at `now`; `false` when there is none left.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            let period = self.period.as_secs_f64();
            let refill = if period > 0.0 {
                elapsed / period * f64::from(self.limit)
            } else {
                f64::INFINITY
            };
            self.tokens = (self.tokens + refill).min(f64::from(self.limit));
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_negative_cache_is_bounded_and_expires() {
        let now = Instant::now();
        let mut cache = Negative::new(3, Duration::from_secs(10));
        let ids: Vec<_> = (0..5).map(|_| ClientId::random()).collect();
        for (n, id) in ids.iter().enumerate() {
            cache.insert(*id, now + Duration::from_millis(n as u64));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.order.len() <= 6);
        // The oldest two went first.
        assert!(!cache.contains(ids[0], now) && !cache.contains(ids[1], now));
        assert!(cache.contains(ids[4], now));
        assert!(!cache.contains(ids[4], now + Duration::from_secs(11)));
        cache.remove(ids[3]);
        assert!(!cache.contains(ids[3], now));
        // Inserting the same id again and again keeps the queue bounded.
        for n in 0..100 {
            cache.insert(ids[2], now + Duration::from_millis(10 + n));
        }
        assert!(
            cache.order.len() <= 6 && cache.len() <= 3,
            "{}",
            cache.order.len()
        );
        assert!(cache.contains(ids[2], now + Duration::from_millis(200)));
        let mut off = Negative::new(0, Duration::from_secs(1));
        off.insert(ids[0], now);
        assert!(!off.contains(ids[0], now));
    }

    #[test]
    fn the_rate_refills_over_its_period() {
        let now = Instant::now();
        let mut rate = Rate::new(2, Duration::from_secs(1));
        assert!(rate.take(now) && rate.take(now));
        assert!(!rate.take(now));
        assert!(!rate.take(now + Duration::from_millis(100)));
        assert!(rate.take(now + Duration::from_millis(700)));
        assert!(!rate.take(now + Duration::from_millis(700)));
        // Never more than the limit at once, however long it waited.
        let later = now + Duration::from_secs(3600);
        assert!(rate.take(later) && rate.take(later) && !rate.take(later));
    }
}
