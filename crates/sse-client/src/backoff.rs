//! How long to wait before reconnecting: the stream's reconnection time, grown exponentially
//! with jitter while attempts keep failing, and capped.

use std::time::Duration;

/// The reconnection policy of an [`EventSource`](crate::EventSource).
///
/// The WHATWG *reconnection time* is where every delay starts: [`initial`](Self::initial) until
/// the server sends a `retry:` field, then the server's value. The `n`th attempt in a row (1
/// after a connection that had opened) waits
///
/// ```text
/// grown = min(reconnection time × 2^(n-1), max)
/// delay = max(reconnection time, min(grown × (1 + jitter × r), max))      r uniform in [0, 1)
/// ```
///
/// so the first reconnection after a cut waits the reconnection time (up to `jitter` more, to
/// spread out clients that lost the same server at once), failures double it up to
/// [`max`](Self::max), and a client never reconnects sooner than the server asked, even when the
/// server asks for more than `max`. The attempt count starts again at 1 once a connection opens
/// (`200` with `text/event-stream`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The reconnection time before the server sets one with `retry:`. Default: 3 s (what
    /// browsers use).
    pub initial: Duration,
    /// The cap on the exponential growth (not on a server's `retry:`). Default: 60 s.
    pub max: Duration,
    /// The most a delay is lengthened at random, as a fraction of it (clamped to `0.0..=1.0`;
    /// `0.0` makes delays exact). Default: `0.5`.
    pub jitter: f64,
    /// Give up with [`Error::GaveUp`](crate::Error::GaveUp) after this many failed attempts in
    /// a row (`None`: never give up). Default: `None`.
    pub max_attempts: Option<u32>,
}

impl Backoff {
    /// The defaults: 3 s, doubled up to 60 s, with up to 50 % jitter, never giving up.
    pub const DEFAULT: Self = Self {
        initial: Duration::from_secs(3),
        max: Duration::from_secs(60),
        jitter: 0.5,
        max_attempts: None,
    };

    /// The delay before attempt `attempt` (counting from 1) given the stream's reconnection
    /// time, with `random` in `[0, 1)` choosing the jitter (see [`Backoff`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sse_client::Backoff;
    ///
    /// let exact = Backoff { jitter: 0.0, max: Duration::from_millis(300), ..Backoff::DEFAULT };
    /// let ms = |attempt| exact.delay(attempt, Duration::from_millis(50), 0.9).as_millis();
    /// assert_eq!([ms(1), ms(2), ms(3), ms(4), ms(5)], [50, 100, 200, 300, 300]);
    /// ```
    pub fn delay(&self, attempt: u32, reconnection_time: Duration, random: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let grown = reconnection_time
            .saturating_mul(1 << doublings)
            .min(self.max);
        let jitter = unit(self.jitter) * unit(random);
        // `mul_f64` would panic on overflow; this saturates.
        let extra = Duration::try_from_secs_f64(grown.as_secs_f64() * jitter).unwrap_or(self.max);
        let jittered = grown.saturating_add(extra).min(self.max);
        jittered.max(reconnection_time)
    }
}

/// `x` clamped to `0.0..=1.0`, NaN as `0.0`.
fn unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff {
            jitter: 0.0,
            max: 1000 * MS,
            ..Backoff::DEFAULT
        };
        let delays: Vec<_> = (1..=8).map(|n| b.delay(n, 100 * MS, 0.5)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1000, 1000, 1000, 1000].map(|n| n * MS)
        );
    }

    #[test]
    fn jitter_lengthens_within_its_fraction_and_the_cap() {
        let b = Backoff {
            jitter: 0.5,
            max: 1000 * MS,
            ..Backoff::DEFAULT
        };
        assert_eq!(b.delay(1, 100 * MS, 0.0), 100 * MS);
        assert_eq!(b.delay(1, 100 * MS, 0.5), 125 * MS);
        assert_eq!(
            b.delay(2, 100 * MS, 0.999_999),
            299_999_900 * Duration::from_nanos(1)
        );
        // Near the cap, jitter cannot push past it.
        assert_eq!(b.delay(4, 100 * MS, 0.999), 1000 * MS);
    }

    #[test]
    fn never_sooner_than_the_server_asked() {
        let b = Backoff {
            jitter: 0.5,
            max: 1000 * MS,
            ..Backoff::DEFAULT
        };
        assert_eq!(b.delay(1, 5000 * MS, 0.7), 5000 * MS);
        assert_eq!(b.delay(9, 5000 * MS, 0.7), 5000 * MS);
    }

    #[test]
    fn huge_attempts_and_values_saturate() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.delay(u32::MAX, Duration::MAX, 0.9), Duration::MAX);
        assert_eq!(b.delay(u32::MAX, MS, 0.9), b.max);
        assert_eq!(b.delay(0, 10 * MS, 0.0), 10 * MS);
        // Out-of-range jitter and randomness are clamped, not trusted.
        let wild = Backoff {
            jitter: 7.0,
            ..Backoff::DEFAULT
        };
        assert_eq!(wild.delay(1, 10 * MS, 3.0), 20 * MS);
        assert_eq!(wild.delay(1, 10 * MS, f64::NAN), 10 * MS);
    }
}
