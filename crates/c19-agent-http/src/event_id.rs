//! Event ids that survive a restart: `<run>-<point>`.
//!
//! Points of a state's history start again at 0 when the agent restarts, so a bare
//! point from before a restart could name a point of the new run and skip changes. Each
//! id therefore carries a token drawn when this process started; an id with another
//! token resumes from the beginning (a full replay), which misses nothing. A bare number
//! is still accepted as a point of the current run.

use std::{
    hash::BuildHasher,
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

/// This run's token: 8 hex digits, random per process.
fn run() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // RandomState is seeded randomly per process; hashing the time mixes it further.
        let random = std::collections::hash_map::RandomState::new().hash_one(now.as_nanos());
        format!("{:08x}", random as u32)
    })
}

/// The id of point `point` of this run.
pub(crate) fn format(point: u64) -> String {
    format!("{}-{point}", run())
}

/// The point to resume after for `id`: its point when it is of this run (or a bare
/// number), 0 (everything) when it is of another run; `None` when it is malformed.
pub(crate) fn parse(id: &str) -> Option<u64> {
    match id.split_once('-') {
        Some((token, point)) => {
            let point = point.parse::<u64>().ok()?;
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                None
            } else if token == run() {
                Some(point)
            } else {
                Some(0)
            }
        }
        None => id.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_this_run_resume_where_they_point() {
        assert_eq!(parse(&format(42)), Some(42));
        assert_eq!(parse("17"), Some(17));
    }

    #[test]
    fn ids_of_another_run_replay_everything() {
        let other = if run() == "00000000" {
            "00000001"
        } else {
            "00000000"
        };
        assert_eq!(parse(&format!("{other}-42")), Some(0));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "x", "-5", "zz-5", "abc-", "abc-x", "1.5"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
