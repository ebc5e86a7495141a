//! [`Identity`]: TLS material that is reloaded when its files change, and the rustls
//! configurations built on it.
//!
//! The configurations are built once: their certificate resolver and their verifiers
//! read the current material at each handshake, so a reload takes effect for new
//! connections without rebuilding any client or server, and open connections go on.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, Error as RustlsError, ServerConfig,
    SignatureScheme,
    client::{
        ResolvesClientCert,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::{
        ClientHello, ResolvesServerCert,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
    sign::CertifiedKey,
};

use crate::{
    error::{Error, Result},
    material::{Expect, Material, Read, TlsFiles, check_name},
};

/// A TLS identity (certificate, key, CA) read from files, reloadable.
#[derive(Debug, Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    files: TlsFiles,
    expect: Expect,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Material>,
}

impl Identity {
    /// Loads the identity of an agent among peers: `files.ca` is required, the
    /// certificate must chain to it and carry `name`, and so must every peer's.
    pub fn for_peers(files: TlsFiles, name: &str) -> Result<Self> {
        let name = ServerName::try_from(name.to_owned()).map_err(|_| Error::BadName {
            name: name.to_owned(),
        })?;
        if !matches!(name, ServerName::DnsName(_)) {
            return Err(Error::BadName {
                name: format!("{name:?}"),
            });
        }
        Self::load(
            files,
            Expect {
                name: Some(name),
                own_chains_to_ca: true,
            },
        )
    }

    /// Loads the identity of a server whose clients may present certificates signed
    /// by `files.ca` (when set); the own certificate is not checked against it.
    pub fn for_server(files: TlsFiles) -> Result<Self> {
        Self::load(files, Expect::default())
    }

    pub(crate) fn load(files: TlsFiles, expect: Expect) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read = Read::from(&files)?;
        let material = Material::load(&files, &read, &expect, &provider)?;
        Ok(Self {
            inner: Arc::new(Inner {
                files,
                expect,
                provider,
                current: ArcSwap::from_pointee(material),
            }),
        })
    }

    /// The files this identity is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.inner.files
    }

    /// When the current certificate expires.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.inner.current.load().not_after
    }

    /// Reads the files again; when their bytes changed and they pass the checks, new
    /// handshakes use them. Returns whether the material changed. On an error the
    /// current material stays.
    pub fn reload(&self) -> Result<bool> {
        let read = Read::from(&self.inner.files)?;
        if read.fingerprint() == self.inner.current.load().fingerprint {
            return Ok(false);
        }
        let material = Material::load(
            &self.inner.files,
            &read,
            &self.inner.expect,
            &self.inner.provider,
        )?;
        self.inner.current.store(Arc::new(material));
        Ok(true)
    }

    /// Reloads every `interval` until `stop` completes, logging what changed and why a
    /// reload failed (the previous material stays). `on_change` runs after each change.
    pub async fn watch(
        &self,
        interval: Duration,
        stop: impl Future<Output = ()>,
        on_change: impl Fn(&Identity),
    ) {
        let mut stop = std::pin::pin!(stop);
        let mut failing = false;
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
            let this = self.clone();
            let reloaded = tokio::task::spawn_blocking(move || this.reload()).await;
            match reloaded {
                Ok(Ok(true)) => {
                    failing = false;
                    tracing::info!(cert = %self.inner.files.cert.display(), "reloaded the TLS certificate");
                    on_change(self);
                }
                Ok(Ok(false)) => failing = false,
                Ok(Err(error)) => {
                    // Once per failing spell: a half-written Secret fixes itself.
                    if !failing {
                        tracing::warn!(
                            "cannot reload TLS material, keeping the previous one: {error}"
                        );
                    }
                    failing = true;
                }
                Err(error) => tracing::warn!("TLS reload task failed: {error}"),
            }
        }
    }

    /// A server configuration that requires a client certificate when the identity has
    /// a CA (checking the peers' name too for [`Identity::for_peers`]).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let builder = ServerConfig::builder_with_provider(self.inner.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Rustls)?;
        let resolver = Arc::new(Current(self.inner.clone()));
        let mut config = if self.inner.current.load().client_verifier.is_some() {
            builder
                .with_client_cert_verifier(Arc::new(Current(self.inner.clone())))
                .with_cert_resolver(resolver)
        } else {
            builder.with_no_client_auth().with_cert_resolver(resolver)
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client configuration that presents the certificate and checks the server's
    /// against the CA and the name (whatever address was dialled).
    pub fn client_config(&self) -> Result<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(self.inner.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Current(self.inner.clone())))
            .with_client_cert_resolver(Arc::new(Current(self.inner.clone())));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Reads the current material at each handshake.
#[derive(Debug)]
struct Current(Arc<Inner>);

impl Current {
    fn material(&self) -> arc_swap::Guard<Arc<Material>> {
        self.0.current.load()
    }

    fn no_ca() -> RustlsError {
        RustlsError::General("no CA configured".into())
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.material().key.clone())
    }
}

impl ResolvesClientCert for Current {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.material().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for Current {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional; the material behind them can change at any time.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, RustlsError> {
        let material = self.material();
        let verifier = material.client_verifier.as_ref().ok_or_else(Self::no_ca)?;
        let verified = verifier.verify_client_cert(end_entity, intermediates, now)?;
        if let Some(name) = &self.0.expect.name {
            check_name(end_entity, name).map_err(|_| {
                RustlsError::InvalidCertificate(rustls::CertificateError::NotValidForName)
            })?;
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ServerCertVerifier for Current {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, RustlsError> {
        let material = self.material();
        let verifier = material.server_verifier.as_ref().ok_or_else(Self::no_ca)?;
        // Peers are dialled by address; the name every agent carries is checked.
        let name = self.0.expect.name.as_ref().unwrap_or(dialled);
        verifier.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        ClientCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        ClientCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ClientCertVerifier::supported_verify_schemes(self)
    }
}
