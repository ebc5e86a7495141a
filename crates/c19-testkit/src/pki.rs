//! Certificates made at test time (rcgen), written where agents read them, and TLS
//! clients that play peers or intruders.

use std::{path::Path, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
};

/// A certificate authority.
pub struct Ca {
    /// The CA certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

impl Ca {
    /// A new CA called `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for the DNS `names` (server and client use), expired when
    /// `expired`: (certificate PEM, key PEM).
    pub fn issue(&self, names: &[&str], expired: bool) -> (String, String) {
        self.issue_until(names, if expired { 2002 } else { 4000 })
    }

    /// A certificate for the DNS `names`, valid from 2001 until the start of `year`.
    pub fn issue_until(&self, names: &[&str], year: i32) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes `tls.crt`, `tls.key` and `ca.crt` for `names` into `dir` (made if
    /// needed), each file replaced in one rename, as a Kubernetes Secret update does.
    pub fn write(&self, dir: &Path, names: &[&str], expired: bool) {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = self.issue(names, expired);
        for (name, text) in [("tls.key", &key), ("tls.crt", &cert), ("ca.crt", &self.pem)] {
            let temporary = dir.join(format!(".{name}.new"));
            std::fs::write(&temporary, text).unwrap();
            std::fs::rename(&temporary, dir.join(name)).unwrap();
        }
    }
}

/// The `tls:` lines of a connection section using the files in `dir`.
pub fn peer_tls_yaml(dir: &Path, mode: &str) -> String {
    format!(
        "tls:\n  cert: {dir}/tls.crt\n  key: {dir}/tls.key\n  ca: {dir}/ca.crt\n  server_name: c19\n  mode: {mode}\n  reload_interval: 200\n",
        dir = dir.display()
    )
}

/// Accepts any server certificate: an intruder does not care whom it talks to.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTPS client that presents `identity` (certificate PEM, key PEM), if any, and
/// trusts any server.
pub fn intruder(identity: Option<(&str, &str)>) -> reqwest::Client {
    let builder = config_builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    client(builder, identity)
}

/// An HTTPS client that trusts `ca` (PEM) and presents `identity`, if any.
pub fn https_client(ca: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    client(config_builder().with_root_certificates(roots), identity)
}

/// A rustls client configuration with ring, waiting for its verifier.
fn config_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
}

/// A reqwest client over `builder`, presenting `identity` (certificate PEM, key PEM).
fn client(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    identity: Option<(&str, &str)>,
) -> reqwest::Client {
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(std::time::Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap()
}
