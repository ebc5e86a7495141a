//! What can be wrong with TLS material. Every message names the file and the problem,
//! and none carries key material.

use std::{io, path::PathBuf};

/// A problem with a certificate, a key or a CA bundle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// Which file it is (`certificate`, `private key`, `CA bundle`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file holds no PEM item of the expected kind.
    #[error("{} is not {expected}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
    },
    /// The private key is not the certificate's.
    #[error("the private key {} does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The private key cannot be used.
    #[error("cannot use the private key {}: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A CA certificate cannot be used as a trust anchor.
    #[error("cannot use the CA bundle {}: {reason}", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate does not chain to the CA, is expired, or lacks the name.
    #[error("the certificate {} {problem}", cert.display())]
    Untrusted {
        /// The certificate file.
        cert: PathBuf,
        /// What is wrong, e.g. `is not signed by the CA in /etc/c19/tls/ca.crt`.
        problem: String,
    },
    /// `server_name` is not a DNS name.
    #[error("`server_name` {name:?} is not a valid DNS name")]
    BadName {
        /// The configured name.
        name: String,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[source] rustls::Error),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
