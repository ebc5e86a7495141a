//! The agent's clock: milliseconds since the Unix epoch, the one time source that every
//! layer stamps writes with and compares timestamps to.
//!
//! It is the system clock, unless the testing aid [`TEST_OFFSET_VAR`] is set: the
//! multi-process tests use it to run an agent whose clock is minutes ahead or behind
//! without changing the machine's clock. It is read once, at the first reading of the
//! clock, and never meant for production.

use std::{
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

/// Testing aid: the environment variable holding a signed offset in milliseconds added
/// to every reading of the agent's clock (`600000`: ten minutes ahead). Read once; an
/// unparsable value is ignored (with a warning at start, see [`log_test_offset`]).
pub const TEST_OFFSET_VAR: &str = "C19_TEST_CLOCK_OFFSET_MS";

/// The default largest tolerated difference (ms) between this agent's clock and its
/// peers' or its clients' (`max_clock_skew` of the Default state): 30 seconds.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 30_000;

/// The offset set by [`TEST_OFFSET_VAR`], in ms (0 without it).
pub fn test_offset_ms() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| parse_offset(std::env::var(TEST_OFFSET_VAR).ok().as_deref()))
}

/// The offset a value of [`TEST_OFFSET_VAR`] sets; 0 when absent or unparsable.
fn parse_offset(value: Option<&str>) -> i64 {
    value
        .and_then(|value| value.trim().parse::<i64>().ok())
        .unwrap_or(0)
}

/// A replacement of the system clock: Unix ms, or `None` where it does not apply (and
/// the system clock is read).
pub type ClockSource = fn() -> Option<u64>;

static SOURCE: OnceLock<ClockSource> = OnceLock::new();

/// Simulation aid: makes [`now_ms`] read `source` first, for the rest of the process;
/// where it answers `None` the system clock is read as before. The simulator installs a
/// source that answers the virtual time of its runtime's thread, so its agents stamp
/// writes reproducibly. Only the first call installs; returns whether this one did (or
/// the same source was already installed).
pub fn set_source(source: ClockSource) -> bool {
    let installed = *SOURCE.get_or_init(|| source);
    std::ptr::fn_addr_eq(installed, source)
}

/// Milliseconds since the Unix epoch on the agent's clock (0 if the clock is before it).
pub fn now_ms() -> u64 {
    if let Some(source) = SOURCE.get()
        && let Some(ms) = source()
    {
        return ms;
    }
    let system = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    system.saturating_add_signed(test_offset_ms())
}

/// Warns when [`TEST_OFFSET_VAR`] shifts the clock (or is set but unparsable), so an
/// agent never runs on a fake clock unnoticed. The runtime calls it at start.
pub fn log_test_offset() {
    let Ok(value) = std::env::var(TEST_OFFSET_VAR) else {
        return;
    };
    match value.trim().parse::<i64>() {
        Err(_) => tracing::warn!("{TEST_OFFSET_VAR}={value:?} is not a number of ms: ignored"),
        Ok(0) => {}
        Ok(_) => {
            let offset = test_offset_ms();
            tracing::warn!(
                offset_ms = offset,
                "testing aid {TEST_OFFSET_VAR} is set: this agent's clock is shifted by {offset} ms"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_signed_and_default_to_zero() {
        assert_eq!(parse_offset(None), 0);
        assert_eq!(parse_offset(Some(" 600000 ")), 600_000);
        assert_eq!(parse_offset(Some("-1500")), -1500);
        assert_eq!(parse_offset(Some("ten minutes")), 0);
    }

    #[test]
    fn the_clock_reads_the_system_time() {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i128;
        let drift = now_ms() as i128 - system - i128::from(test_offset_ms());
        assert!(drift.abs() < 1000, "{drift}");
    }
}
