//! Reports each contact with a peer to the operator's board ([`c19_core::status`]): what
//! the telemetry port's `GET /peers`, `c19 status` and the status page show.

use c19_core::status::{self, Contact};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// The dialect of a pull: an anti-entropy exchange.
pub(crate) const EXCHANGE: &str = "exchange";
/// The dialect of a pull: the 0.1 whole-state pull.
pub(crate) const LEGACY_PULL: &str = "0.1 pull";

fn contact<T>(result: &Result<T>, bytes_sent: usize, bytes_received: usize) -> Contact {
    Contact {
        at_ms: c19_core::clock::now_ms(),
        outcome: match result {
            Ok(_) => "ok".to_owned(),
            Err(error) => outcome(error),
        },
        bytes_sent: u64::try_from(bytes_sent).unwrap_or(u64::MAX),
        bytes_received: u64::try_from(bytes_received).unwrap_or(u64::MAX),
    }
}

/// A short outcome: the error's first line, at most 160 characters.
fn outcome(error: &Error) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(160).collect()
}

/// A push of `bytes` to `peer` ended with `result`.
pub(crate) fn pushed(peer: &str, result: &Result<()>, bytes: usize) {
    let contact = contact(result, bytes, 0);
    status::update(peer, |report| report.last_push = Some(contact));
}

/// A pull from `peer` in `dialect` ended with `result`, having sent and received these
/// body bytes; `in_sync`: whether both were at the same version when it began.
pub(crate) fn pulled<T>(
    peer: &str,
    dialect: &str,
    result: &Result<T>,
    in_sync: Option<bool>,
    (sent, received): (usize, usize),
) {
    let contact = contact(result, sent, received);
    status::update(peer, |report| {
        report.last_exchange = Some(contact);
        report.dialect = Some(dialect.to_owned());
        if in_sync.is_some() {
            report.in_sync = in_sync;
        }
    });
    let in_sync = status::count(|report| report.offered && report.in_sync == Some(true));
    // Exact far beyond any cluster's size.
    metrics::gauge!("c19_connection_peers_in_sync").set(in_sync as f64);
}

/// `peer` has failed `failures` times in a row and is skipped until `retry_at`.
pub(crate) fn standing(peer: &str, failures: u32, retry_at: Option<Instant>) {
    let until = retry_at
        .map(|at| at.saturating_duration_since(Instant::now()))
        .filter(|left| !left.is_zero())
        .map_or(0, |left| {
            c19_core::clock::now_ms()
                .saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
        });
    status::update(peer, |report| {
        report.failures = failures;
        report.backoff_until_ms = until;
    });
}

/// The peer at `addr` answered in `scheme` (`https`: TLS); `offset_ms`: the clock offset
/// the answer measured.
pub(crate) fn answered(addr: &str, scheme: &str, offset_ms: Option<i64>) {
    let transport = if scheme == "https" {
        "tls"
    } else {
        "plaintext"
    };
    status::update(addr, |report| {
        report.transport = Some(transport.to_owned());
        if offset_ms.is_some() {
            report.clock_offset_ms = offset_ms;
        }
    });
}
