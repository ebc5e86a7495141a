//! Mutual TLS between agents (`tls:` in the connection's configuration).
//!
//! With `tls` set, the peer server requires a client certificate that chains to `ca`
//! and carries `server_name`, and the client presents `cert` and checks the server's
//! against the same two. Peers are dialled by IP, so the name checked is `server_name`,
//! not the address: one certificate shared by every agent works, and so do per-agent
//! certificates. `mode: permissive` is the migration step: the server takes TLS and
//! plaintext on one port, and the client dials TLS first and falls back to plaintext per
//! peer for [`PLAIN_FOR`]. The files are reloaded when they change.

use std::{
    collections::HashMap,
    net::SocketAddr,
    num::NonZeroU64,
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

pub(crate) use c19_tls::TLS_REQUIRED_HEADER;
use c19_tls::{Identity, Mode, TlsFiles};
use serde::{Deserialize, Serialize};
use serde_with::{DisplayFromStr, PickFirst, serde_as};

/// How long a permissive client dials a peer that answered plaintext only in plaintext
/// before it tries TLS again.
pub(crate) const PLAIN_FOR: Duration = Duration::from_secs(600);

/// Peers remembered as plaintext at most.
const REMEMBERED: usize = 4096;

/// `tls:` of the Default connection.
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTls {
    /// This agent's certificate chain, PEM (cert-manager's `tls.crt`).
    pub cert: PathBuf,
    /// Its private key, PEM: PKCS#8, PKCS#1 or SEC1 (`tls.key`).
    pub key: PathBuf,
    /// The CA bundle every peer's certificate must chain to, PEM (`ca.crt`).
    pub ca: PathBuf,
    /// The DNS name (SAN) every peer's certificate must carry (default `c19`).
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// `strict` (TLS only, the default) or `permissive` (TLS and plaintext, to migrate).
    #[serde(default)]
    pub mode: TlsMode,
    /// Milliseconds between checks of the files for a change (default 10000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_reload_interval")]
    pub reload_interval: NonZeroU64,
}

/// What the peer port accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Only mutual TLS.
    #[default]
    Strict,
    /// TLS and plaintext on one port; clients dial TLS first, then plaintext.
    Permissive,
}

fn default_server_name() -> String {
    "c19".to_owned()
}

fn default_reload_interval() -> NonZeroU64 {
    NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN)
}

impl PeerTls {
    /// Loads and checks the files.
    pub fn identity(&self) -> c19_tls::Result<Identity> {
        Identity::for_peers(
            TlsFiles {
                cert: self.cert.clone(),
                key: self.key.clone(),
                ca: Some(self.ca.clone()),
            },
            &self.server_name,
        )
    }

    /// The acceptor's mode.
    pub(crate) fn mode(&self) -> Mode {
        match self.mode {
            TlsMode::Strict => Mode::Strict,
            TlsMode::Permissive => Mode::Permissive,
        }
    }
}

/// How the client dials each peer.
#[derive(Debug)]
pub(crate) struct Dialing {
    /// `None`: plaintext only.
    mode: Option<Mode>,
    /// Peers a permissive client dials in plaintext, until when.
    plain: Mutex<HashMap<SocketAddr, Instant>>,
}

impl Dialing {
    pub fn new(mode: Option<Mode>) -> Self {
        Self {
            mode,
            plain: Mutex::default(),
        }
    }

    /// Whether a failed request may be tried again in the other dialect.
    pub fn permissive(&self) -> bool {
        self.mode == Some(Mode::Permissive)
    }

    /// The scheme to dial `addr` with now.
    pub fn scheme(&self, addr: SocketAddr) -> &'static str {
        match self.mode {
            None => "http",
            Some(Mode::Strict) => "https",
            Some(Mode::Permissive) => {
                let now = Instant::now();
                let plain = self
                    .plain
                    .lock()
                    .ok()
                    .and_then(|plain| plain.get(&addr).copied())
                    .is_some_and(|until| until > now);
                if plain { "http" } else { "https" }
            }
        }
    }

    /// Remembers that `addr` answered in `scheme`.
    pub fn answered(&self, addr: SocketAddr, scheme: &str) {
        if !self.permissive() {
            return;
        }
        let Ok(mut plain) = self.plain.lock() else {
            return;
        };
        if scheme == "http" {
            let now = Instant::now();
            if plain.len() >= REMEMBERED {
                plain.retain(|_, until| *until > now);
            }
            if plain.len() < REMEMBERED {
                plain.insert(addr, now + PLAIN_FOR);
            }
        } else {
            plain.remove(&addr);
        }
    }
}

/// Whether `error` is a TLS failure (the peer speaks plaintext, most likely).
pub(crate) fn is_tls_failure(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if error.downcast_ref::<c19_tls::rustls::Error>().is_some() {
            return true;
        }
        cause = error.source();
    }
    false
}
