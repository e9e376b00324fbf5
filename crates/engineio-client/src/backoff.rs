//! Reconnect delays: exponential backoff with jitter that stays random at the cap. Pure: the
//! random number is passed in.

use std::time::Duration;

/// How reconnect delays grow.
///
/// The n-th delay (n from 0) aims at `target = min(min · 2ⁿ, max)` and is drawn uniformly from
/// `target · (1 ± jitter)`. A draw above `max` is redrawn from `[max · (1 − jitter), max]`, so the
/// delay never exceeds `max` and stays random there: clients that lost the same server do not
/// come back in lock-step. The arithmetic saturates, so any attempt number is safe (the JS
/// client's `2ⁿ` overflows to a 0 ms delay after about 1 000 attempts).
///
/// ```
/// use std::time::Duration;
/// use engineio_client::Backoff;
/// let backoff = Backoff { min: Duration::from_millis(500), max: Duration::from_secs(30), jitter: 0.2 };
/// // The middle of each draw doubles up to the cap ...
/// assert_eq!(backoff.delay(0, 0.5, 0.5), Duration::from_millis(500));
/// assert_eq!(backoff.delay(3, 0.5, 0.5), Duration::from_secs(4));
/// // ... and stays random below it, however many attempts failed.
/// let late = backoff.delay(1_000, 0.9, 0.3);
/// assert!(late >= Duration::from_secs(24) && late <= Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay's target (JS `reconnectionDelay`, 1 s).
    pub min: Duration,
    /// The cap (JS `reconnectionDelayMax`, 5 s).
    pub max: Duration,
    /// The relative spread, clamped to `0.0..=1.0` (JS `randomizationFactor`, 0.5).
    pub jitter: f64,
}

impl Default for Backoff {
    /// 1 s, 5 s, 0.5: the JS client's defaults.
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(5),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0 for the first), given two uniform random
    /// numbers in `[0, 1)`.
    pub fn delay(&self, attempt: u32, r1: f64, r2: f64) -> Duration {
        let max = self.max.max(self.min);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let factor = 2u32.checked_pow(attempt.min(31)).unwrap_or(u32::MAX);
        let target = self.min.checked_mul(factor).unwrap_or(max).min(max);
        let low = target.as_secs_f64() * (1.0 - jitter);
        let high = target.as_secs_f64() * (1.0 + jitter);
        let drawn = low + (high - low) * unit(r1);
        let max_secs = max.as_secs_f64();
        let secs = if drawn > max_secs {
            max_secs * (1.0 - jitter * unit(r2))
        } else {
            drawn
        };
        Duration::try_from_secs_f64(secs).unwrap_or(max).min(max)
    }
}

/// `r` forced into `[0, 1]`.
fn unit(r: f64) -> f64 {
    if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn grows_from_min_like_the_js_client() {
        let b = Backoff::default();
        // Attempt 0 aims at 1 s: 0.5..1.5 s.
        assert_eq!(b.delay(0, 0.0, 0.0), S / 2);
        assert_eq!(b.delay(0, 0.5, 0.0), S);
        assert_eq!(b.delay(0, 1.0, 0.0), S * 3 / 2);
        // Attempt 1 aims at 2 s, attempt 2 at 4 s.
        assert_eq!(b.delay(1, 0.5, 0.0), 2 * S);
        assert_eq!(b.delay(2, 0.5, 0.0), 4 * S);
    }

    #[test]
    fn stays_random_at_the_cap_and_never_exceeds_it() {
        let b = Backoff::default();
        let draws: Vec<Duration> = (0..=10)
            .flat_map(|i| (0..=10).map(move |j| (f64::from(i) / 10.0, f64::from(j) / 10.0)))
            .map(|(r1, r2)| b.delay(50, r1, r2))
            .collect();
        assert!(
            draws.iter().all(|d| *d <= 5 * S && *d >= 5 * S / 2),
            "{draws:?}"
        );
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 5, "jitter at the cap: {distinct:?}");
    }

    #[test]
    fn any_attempt_number_is_safe() {
        let b = Backoff::default();
        for attempt in [31, 32, 64, 1014, u32::MAX] {
            let d = b.delay(attempt, 0.3, 0.7);
            assert!(d > Duration::ZERO && d <= 5 * S, "{attempt}: {d:?}");
        }
        let odd = Backoff {
            min: Duration::MAX,
            max: Duration::ZERO,
            jitter: f64::NAN,
        };
        assert_eq!(odd.delay(3, f64::INFINITY, -1.0), Duration::MAX);
    }

    #[test]
    fn no_jitter_is_exact() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(b.delay(0, 0.9, 0.9), S);
        assert_eq!(b.delay(10, 0.9, 0.9), 5 * S);
    }
}
