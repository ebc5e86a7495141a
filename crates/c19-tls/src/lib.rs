//! TLS for c19 layers, with rustls (never OpenSSL).
//!
//! - [`Identity`]: a certificate chain, its key and a CA bundle read from PEM files —
//!   the `tls.crt`, `tls.key` and `ca.crt` that cert-manager writes into a Secret —
//!   checked at load (the key matches, the certificate chains to the CA, is valid now
//!   and carries the name) with errors that name the file and the problem. It reloads
//!   when the files change ([`Identity::watch`]); a reload that fails keeps the previous
//!   material. Its rustls configurations read the current material at every handshake.
//! - Between agents ([`Identity::for_peers`]) every certificate, the server's and the
//!   client's, must chain to the CA and carry one DNS name (`server_name`): agents are
//!   dialled by IP, so the IP is not what is checked, and one certificate shared by all
//!   agents works as well as one per agent.
//! - [`Acceptor`]: TLS (and, in [`Mode::Permissive`], plaintext told apart by the first
//!   byte) on an accepted connection, or a [`Refusal`] with a [`Reason`] to count.
//!   [`RefusalLog`] keeps the log to one line a minute per remote address.
//! - [`export_expiry`] sets `c19_tls_certificate_expiry_seconds`.

mod accept;
mod error;
mod identity;
mod material;

#[cfg(test)]
mod tests;

pub use accept::{Acceptor, MaybeTls, Mode, Reason, Refusal, RefusalLog, TLS_REQUIRED_HEADER};
pub use error::{Error, Result};
pub use identity::Identity;
pub use material::TlsFiles;
pub use rustls;

/// Sets `c19_tls_certificate_expiry_seconds{component}` to when `identity`'s
/// certificate expires (seconds since the Unix epoch).
pub fn export_expiry(component: &'static str, identity: &Identity) {
    metrics::describe_gauge!(
        "c19_tls_certificate_expiry_seconds",
        metrics::Unit::Seconds,
        "When the TLS certificate expires, in seconds since the Unix epoch."
    );
    if let Some(at) = identity
        .not_after()
        .and_then(|at| at.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
    {
        metrics::gauge!("c19_tls_certificate_expiry_seconds", "component" => component)
            .set(at.as_secs_f64());
    }
}
