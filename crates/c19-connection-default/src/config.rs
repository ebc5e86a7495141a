//! The configuration of the Default connection (`kind: Default`).
//!
//! Every 0.1 field keeps its name, unit and default; the fields 0.1 did not have
//! (`address`, `body_limit`, `max_push_bytes`, `max_message_bytes`, `concurrency`,
//! `sync_timeout`) have defaults, so 0.1 files work unchanged.

use std::{
    net::{IpAddr, Ipv4Addr},
    num::{NonZeroU64, NonZeroUsize},
    time::Duration,
};

use c19_core::PeerProviderConfig;
use serde::{Deserialize, Serialize};
use serde_with::{DisplayFromStr, PickFirst, serde_as};

use crate::tls::PeerTls;

/// The configuration of the Default connection (`kind: Default`): it pushes recent
/// changes to a few peers at most once per `push_interval`, runs an anti-entropy
/// exchange with a few random peers every `pull_interval` (a 0.1 peer's whole state is
/// pulled instead), and serves peers on `address:port`. It builds the live
/// [`DefaultConnection`](crate::DefaultConnection).
#[serde_as]
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultConnectionConfig {
    /// The IP address the peer server binds to (`0.0.0.0`: every interface).
    #[serde(default = "default_address")]
    pub address: IpAddr,
    /// The port the peer server listens on (default 4097).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_port")]
    pub port: u16,
    /// The port dialled on peers that are given without one; `port` when absent.
    #[serde_as(as = "Option<PickFirst<(_, DisplayFromStr)>>")]
    #[serde(default)]
    pub target_port: Option<u16>,
    /// Milliseconds between pushes of recent changes (default 1000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_push_interval")]
    pub push_interval: NonZeroU64,
    /// Milliseconds between anti-entropy pulls: an exchange with a c19 peer, the whole
    /// state of a 0.1 one (default 60000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_pull_interval")]
    pub pull_interval: NonZeroU64,
    /// How many peers, chosen at random, each push and each pull goes to (default 3).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_r0")]
    pub r0: NonZeroUsize,
    /// Milliseconds allowed to connect to a peer and to complete a push (default 1000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_timeout")]
    pub timeout: NonZeroU64,
    /// The largest body, in bytes, accepted from a peer (a push or a pulled state);
    /// larger pushes get HTTP 413 (default 64 MiB).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_body_limit")]
    pub body_limit: NonZeroUsize,
    /// The most bytes of changes one push message carries; more changes are sent as
    /// several messages (default 4 MiB).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_max_push_bytes")]
    pub max_push_bytes: NonZeroUsize,
    /// The most bytes (before compression) of one anti-entropy message between c19
    /// agents, in either direction; larger differences, and the whole state for an
    /// empty agent, go in several (default 4 MiB).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: NonZeroUsize,
    /// The most requests to peers in flight at once (default 8).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_concurrency")]
    pub concurrency: NonZeroUsize,
    /// Milliseconds the connection waits, at start, for a peer to answer its first sync
    /// before it reports ready anyway, with a warning (default 10000). Until its first
    /// sync with a peer completes, or this long passes with no peer answering, the
    /// `connection` component (and so `/readyz`) is not ready; with no peer to ask it is
    /// ready at once.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_sync_timeout")]
    pub sync_timeout: NonZeroU64,
    /// Who the peers are. Without one, this agent exchanges nothing (a warning says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_provider: Option<Box<dyn PeerProviderConfig>>,
    /// Mutual TLS between agents; without it peers speak plaintext HTTP, as in 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PeerTls>,
}

fn default_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

fn default_port() -> u16 {
    4097
}

fn non_zero_u64(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)
}

fn non_zero_usize(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

fn default_push_interval() -> NonZeroU64 {
    non_zero_u64(1000)
}

fn default_pull_interval() -> NonZeroU64 {
    non_zero_u64(60_000)
}

fn default_r0() -> NonZeroUsize {
    non_zero_usize(3)
}

fn default_timeout() -> NonZeroU64 {
    non_zero_u64(1000)
}

fn default_body_limit() -> NonZeroUsize {
    non_zero_usize(64 << 20)
}

fn default_max_push_bytes() -> NonZeroUsize {
    non_zero_usize(4 << 20)
}

fn default_max_message_bytes() -> NonZeroUsize {
    non_zero_usize(4 << 20)
}

fn default_concurrency() -> NonZeroUsize {
    non_zero_usize(8)
}

fn default_sync_timeout() -> NonZeroU64 {
    non_zero_u64(10_000)
}

impl Default for DefaultConnectionConfig {
    fn default() -> Self {
        Self {
            address: default_address(),
            port: default_port(),
            target_port: None,
            push_interval: default_push_interval(),
            pull_interval: default_pull_interval(),
            r0: default_r0(),
            timeout: default_timeout(),
            body_limit: default_body_limit(),
            max_push_bytes: default_max_push_bytes(),
            max_message_bytes: default_max_message_bytes(),
            concurrency: default_concurrency(),
            sync_timeout: default_sync_timeout(),
            peer_provider: None,
            tls: None,
        }
    }
}

/// The configuration in the units the code works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// The port dialled on peers given without one.
    pub dial_port: u16,
    pub push_interval: Duration,
    pub pull_interval: Duration,
    pub r0: usize,
    /// Connect timeout, and the whole-request timeout of pushes.
    pub timeout: Duration,
    /// How long the server waits on a silent client (headers, body, or reading the
    /// response) before closing the connection: lenient, as 0.1 clients have no timeout
    /// of their own and a push may be large.
    pub server_timeout: Duration,
    /// How long a connection between peers may stay idle before the server closes it
    /// (the client lets go a little earlier): twice `server_timeout`, longer with TLS
    /// ([`Settings::with_tls`]).
    pub keep_alive: Duration,
    pub body_limit: usize,
    pub max_push_bytes: usize,
    /// The largest anti-entropy message, before compression (at most `body_limit`).
    pub max_message_bytes: usize,
    pub concurrency: usize,
    /// How long the first sync may go without a peer answering before the connection
    /// reports ready anyway.
    pub sync_timeout: Duration,
    /// The first back-off after a peer fails; it doubles up to [`MAX_BACKOFF`].
    pub backoff: Duration,
}

/// The longest idle time of a TLS connection between peers ([`Settings::with_tls`]).
const MAX_TLS_KEEP_ALIVE: Duration = Duration::from_secs(600);

impl Settings {
    /// The settings for mutual TLS: a new TLS connection costs a handshake (kilobytes,
    /// with both certificates) where a plaintext one costs a few TCP segments, so idle
    /// connections are kept for ten pull intervals (at most ten minutes), so that the
    /// random peers of later rounds mostly find theirs open. Only peers that passed the
    /// handshake hold a connection that long.
    pub(crate) fn with_tls(mut self) -> Self {
        self.keep_alive = self
            .keep_alive
            .max((self.pull_interval * 10).min(MAX_TLS_KEEP_ALIVE));
        self
    }
}

/// The longest a failing peer is skipped before it is tried again.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl DefaultConnectionConfig {
    /// The settings for a connection whose peer server listens on `listen_port` (the
    /// configured `port`, or the one the system chose when it is 0).
    pub(crate) fn settings(&self, listen_port: u16) -> Settings {
        let ms = |n: NonZeroU64| Duration::from_millis(n.get());
        let timeout = ms(self.timeout);
        let push_interval = ms(self.push_interval);
        Settings {
            dial_port: self.target_port.unwrap_or(if self.port == 0 {
                listen_port
            } else {
                self.port
            }),
            push_interval,
            pull_interval: ms(self.pull_interval),
            r0: self.r0.get(),
            timeout,
            server_timeout: (timeout * 5).max(Duration::from_secs(1)),
            keep_alive: (timeout * 5).max(Duration::from_secs(1)) * 2,
            body_limit: self.body_limit.get(),
            max_push_bytes: self.max_push_bytes.get(),
            max_message_bytes: self.max_message_bytes.min(self.body_limit).get(),
            concurrency: self.concurrency.get(),
            sync_timeout: ms(self.sync_timeout),
            // A failing peer is skipped for 0, 1, 2, 4, ... push rounds.
            backoff: push_interval.min(MAX_BACKOFF),
        }
    }
}

#[cfg(test)]
mod tests {
    use c19_core::ConnectionConfig;

    use super::*;

    fn parse(json: &str) -> Result<DefaultConnectionConfig, String> {
        serde_json::from_str(json).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_are_those_of_0_1() {
        let config = parse("{}").unwrap();
        assert_eq!(config.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(config.port, 4097);
        assert_eq!(config.target_port, None);
        assert_eq!(config.push_interval.get(), 1000);
        assert_eq!(config.pull_interval.get(), 60_000);
        assert_eq!(config.r0.get(), 3);
        assert_eq!(config.timeout.get(), 1000);
        assert_eq!(config.body_limit.get(), 64 * 1024 * 1024);
        assert_eq!(config.max_push_bytes.get(), 4 * 1024 * 1024);
        assert_eq!(config.max_message_bytes.get(), 4 * 1024 * 1024);
        assert_eq!(config.concurrency.get(), 8);
        assert_eq!(config.sync_timeout.get(), 10_000);
        assert!(config.peer_provider.is_none());
        let settings = config.settings(4097);
        assert_eq!(settings.dial_port, 4097);
        assert_eq!(settings.push_interval, Duration::from_secs(1));
    }

    #[test]
    fn a_0_1_connection_section_loads_unchanged() {
        let config = parse(
            r#"{"port": 4097, "target_port": null, "push_interval": 1000, "pull_interval": 60000,
                "r0": 3, "timeout": 1000,
                "peer_provider": {"kind": "Static", "peers": ["127.0.0.1", "10.0.0.2:4097"]}}"#,
        )
        .unwrap();
        let peers = serde_json::to_value(config.peer_provider.as_ref().unwrap()).unwrap();
        assert_eq!(
            peers["peers"],
            serde_json::json!(["127.0.0.1", "10.0.0.2:4097"])
        );
        assert_eq!(config.settings(4097).dial_port, 4097);
    }

    #[test]
    fn numbers_may_be_written_as_strings() {
        let config = parse(
            r#"{"port": "5000", "target_port": "6000", "push_interval": "200", "r0": "2",
                "body_limit": "1024", "concurrency": "4", "max_message_bytes": "4096",
                "sync_timeout": "250"}"#,
        )
        .unwrap();
        assert_eq!(config.sync_timeout.get(), 250);
        assert_eq!(
            config.settings(5000).sync_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(config.max_message_bytes.get(), 4096);
        assert_eq!(
            config.settings(5000).max_message_bytes,
            1024,
            "no message larger than what peers accept"
        );
        assert_eq!(config.port, 5000);
        assert_eq!(config.target_port, Some(6000));
        assert_eq!(config.push_interval.get(), 200);
        assert_eq!(config.r0.get(), 2);
        assert_eq!(config.body_limit.get(), 1024);
        assert_eq!(config.concurrency.get(), 4);
        assert_eq!(config.settings(5000).dial_port, 6000);
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_field() {
        let error = parse(r#"{"port": 4097, "push_intervall": 10}"#).unwrap_err();
        assert!(error.contains("push_intervall"), "{error}");
    }

    #[test]
    fn zero_intervals_and_malformed_numbers_are_refused() {
        for bad in [
            r#"{"push_interval": 0}"#,
            r#"{"pull_interval": "0"}"#,
            r#"{"r0": 0}"#,
            r#"{"sync_timeout": 0}"#,
            r#"{"timeout": -1}"#,
            r#"{"port": 70000}"#,
            r#"{"port": "http"}"#,
            r#"{"address": "localhost"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn registers_as_kind_default() {
        let connection: Box<dyn ConnectionConfig> =
            serde_json::from_str(r#"{"kind": "Default", "port": 4100, "address": "127.0.0.1"}"#)
                .unwrap();
        let json = serde_json::to_value(&connection).unwrap();
        assert_eq!(json["kind"], "Default");
        assert_eq!(json["port"], 4100);
        assert_eq!(json["address"], "127.0.0.1");
    }
}
