//! Loading and checking one set of PEM files: the certificate chain, its key, the CA.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use rustls::{
    CertificateError, RootCertStore,
    client::WebPkiServerVerifier,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::CertifiedKey,
};

use crate::error::{Error, Result};

/// The files of one TLS identity, as cert-manager writes them into a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, this agent's certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA bundle the other side's certificate must chain to, PEM.
    pub ca: Option<PathBuf>,
}

/// What a loaded identity is checked against.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expect {
    /// The DNS name the own certificate (and the other side's) must carry.
    pub name: Option<ServerName<'static>>,
    /// Whether the own certificate must chain to `ca` (peers present it to each other).
    pub own_chains_to_ca: bool,
}

/// One loaded, checked set of files.
#[derive(Debug)]
pub(crate) struct Material {
    pub key: Arc<CertifiedKey>,
    pub server_verifier: Option<Arc<WebPkiServerVerifier>>,
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// When the own certificate stops being valid.
    pub not_after: Option<SystemTime>,
    /// A hash of the files' bytes, to notice a change.
    pub fingerprint: u64,
}

/// The bytes of the files, read once so that checks and fingerprint agree.
pub(crate) struct Read {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Option<Vec<u8>>,
}

impl Read {
    pub fn from(files: &TlsFiles) -> Result<Self> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| Error::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        Ok(Self {
            cert: read("certificate", &files.cert)?,
            key: read("private key", &files.key)?,
            ca: files
                .ca
                .as_deref()
                .map(|ca| read("CA bundle", ca))
                .transpose()?,
        })
    }

    pub fn fingerprint(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for part in [&self.cert, &self.key] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        if let Some(ca) = &self.ca {
            hasher.update(ca);
        }
        hasher.digest()
    }
}

fn certificates(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .filter_map(|item| item.ok())
        .collect();
    if certs.is_empty() {
        return Err(Error::NotPem {
            path: path.to_owned(),
            expected: "a PEM certificate (-----BEGIN CERTIFICATE-----)",
        });
    }
    Ok(certs)
}

impl Material {
    /// Parses and checks `read` (the bytes of `files`).
    pub fn load(
        files: &TlsFiles,
        read: &Read,
        expect: &Expect,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self> {
        let chain = certificates(&read.cert, &files.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&read.key).map_err(|_| Error::NotPem {
            path: files.key.clone(),
            expected: "a PEM private key (PKCS#8, PKCS#1 or SEC1)",
        })?;
        let not_after = not_after(&chain[0]);
        let key =
            CertifiedKey::from_der(chain.clone(), key, provider).map_err(|error| match error {
                rustls::Error::InconsistentKeys(_) => Error::KeyMismatch {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                },
                other => Error::BadKey {
                    path: files.key.clone(),
                    reason: other.to_string(),
                },
            })?;
        let (mut server_verifier, mut client_verifier) = (None, None);
        if let (Some(ca_path), Some(ca)) = (&files.ca, &read.ca) {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, ca_path)? {
                roots.add(cert).map_err(|error| Error::BadCa {
                    path: ca_path.clone(),
                    reason: error.to_string(),
                })?;
            }
            let roots = Arc::new(roots);
            let bad_ca = |error: rustls::server::VerifierBuilderError| Error::BadCa {
                path: ca_path.clone(),
                reason: error.to_string(),
            };
            let servers =
                WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()
                    .map_err(bad_ca)?;
            let clients = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(bad_ca)?;
            if expect.own_chains_to_ca {
                check_own(&chain, files, ca_path, expect, &servers, &clients)?;
            }
            server_verifier = Some(servers);
            client_verifier = Some(clients);
        } else if let Some(name) = &expect.name {
            // Without a CA only the name can be checked.
            check_name(&chain[0], name).map_err(|problem| Error::Untrusted {
                cert: files.cert.clone(),
                problem,
            })?;
        }
        Ok(Self {
            key: Arc::new(key),
            server_verifier,
            client_verifier,
            not_after,
            fingerprint: read.fingerprint(),
        })
    }
}

/// Checks that the own certificate would pass the other side's checks: it chains to the
/// CA, is valid now, carries the name, and may be used as a server and as a client.
fn check_own(
    chain: &[CertificateDer<'static>],
    files: &TlsFiles,
    ca: &Path,
    expect: &Expect,
    servers: &WebPkiServerVerifier,
    clients: &Arc<dyn ClientCertVerifier>,
) -> Result<()> {
    use rustls::client::danger::ServerCertVerifier;
    let untrusted = |problem: String| Error::Untrusted {
        cert: files.cert.clone(),
        problem,
    };
    let now = UnixTime::now();
    let describe = |error: rustls::Error| describe_refusal(&error, ca, expect.name.as_ref());
    clients
        .verify_client_cert(&chain[0], &chain[1..], now)
        .map_err(|error| untrusted(describe(error)))?;
    if let Some(name) = &expect.name {
        servers
            .verify_server_cert(&chain[0], &chain[1..], name, &[], now)
            .map_err(|error| untrusted(describe(error)))?;
    }
    Ok(())
}

/// What a verification error means, in words.
fn describe_refusal(error: &rustls::Error, ca: &Path, name: Option<&ServerName<'_>>) -> String {
    match error {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                format!("is not signed by the CA in {}", ca.display())
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "is not valid yet".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                match name {
                    Some(ServerName::DnsName(name)) => {
                        format!(
                            "does not carry the name {:?} (`server_name`)",
                            name.as_ref()
                        )
                    }
                    _ => "does not carry the expected name".to_owned(),
                }
            }
            other => format!("is not acceptable: {other:?}"),
        },
        other => format!("is not acceptable: {other}"),
    }
}

/// Whether `cert` carries `name`.
pub(crate) fn check_name(
    cert: &CertificateDer<'_>,
    name: &ServerName<'_>,
) -> std::result::Result<(), String> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|error| error.to_string())?;
    parsed
        .verify_is_valid_for_subject_name(name)
        .map_err(|_| match name {
            ServerName::DnsName(name) => {
                format!(
                    "does not carry the name {:?} (`server_name`)",
                    name.as_ref()
                )
            }
            _ => "does not carry the expected name".to_owned(),
        })
}

/// When `cert` stops being valid, if it can be parsed.
fn not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let seconds = parsed.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(seconds))
}
