//! When this agent's publisher may send its next round of new changes, as it tells the
//! peers that push to it.
//!
//! Under a steady write load every agent pushes once per `push_interval`, each at its own
//! phase, and a change it receives waits for its next round. A pusher that knows when
//! its peers' next rounds come picks those about to push ([`crate::peers`]), so a change
//! crosses the cluster in a fraction of an interval per hop instead of half of one on
//! average. Each answer to a push says how long until the receiver's next round
//! ([`NEXT_ROUND_HEADER`], in ms; `0`: it pushes what it took at once). Peers without
//! it (0.1) simply give no hint.

use std::{sync::Mutex, time::Duration};

use axum::http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

/// The response header of a push that says in how many ms the receiver's next round of
/// new changes may go.
pub(crate) const NEXT_ROUND_HEADER: &str = "c19-next-round";

/// The longest wait a peer's hint is believed for: beyond it, the hint is garbage.
const MAX_HINT: Duration = Duration::from_secs(3600);

/// This agent's next round of new changes.
#[derive(Debug, Default)]
pub(crate) struct Cadence {
    next: Mutex<Option<Instant>>,
}

impl Cadence {
    /// Notes that the next round of new changes may go at `at`.
    pub fn set(&self, at: Instant) {
        *self.lock() = Some(at);
    }

    /// How long from now until the next round of new changes may go: zero when new
    /// changes would go at once.
    pub fn wait(&self) -> Duration {
        self.lock().map_or(Duration::ZERO, |next| {
            next.saturating_duration_since(Instant::now())
        })
    }

    /// The [`NEXT_ROUND_HEADER`] value for now.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from(u64::try_from(self.wait().as_millis()).unwrap_or(u64::MAX))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // An instant cannot be left half-written: keep using it after a panic.
        self.next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The wait a push answer's headers announce, if they carry a sound one.
pub(crate) fn hint(headers: &HeaderMap) -> Option<Duration> {
    let ms = headers
        .get(NEXT_ROUND_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms)).filter(|wait| *wait <= MAX_HINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_wait_counts_down_to_the_next_round_and_stays_at_zero() {
        let cadence = Cadence::default();
        assert_eq!(cadence.wait(), Duration::ZERO, "an agent that never pushed");
        cadence.set(Instant::now() + Duration::from_millis(150));
        assert_eq!(cadence.wait(), Duration::from_millis(150));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(cadence.header_value(), "50");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(cadence.wait(), Duration::ZERO);
    }

    #[test]
    fn hints_are_read_only_when_sound() {
        let mut headers = HeaderMap::new();
        assert_eq!(hint(&headers), None, "a 0.1 peer says nothing");
        headers.insert(NEXT_ROUND_HEADER, HeaderValue::from_static("120"));
        assert_eq!(hint(&headers), Some(Duration::from_millis(120)));
        for garbage in ["soon", "-5", "1.5", "99999999999999999999", "7200000"] {
            headers.insert(NEXT_ROUND_HEADER, HeaderValue::from_static(garbage));
            assert_eq!(hint(&headers), None, "{garbage}");
        }
    }
}
