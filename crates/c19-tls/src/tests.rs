//! Loading checks and real handshakes over loopback sockets with certificates made here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, sync::Arc, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsConnector;

use crate::{Acceptor, Error, Identity, MaybeTls, Mode, Reason, TlsFiles};

/// A CA that signs agent certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
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

    /// A certificate for `names`, valid now unless `expired`: (cert PEM, key PEM).
    fn issue(&self, names: &[&str], expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            params.not_before = rcgen::date_time_ymd(2001, 1, 1);
            params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes an agent's files into `dir`.
    fn write(&self, dir: &Path, names: &[&str], expired: bool) -> TlsFiles {
        let (cert, key) = self.issue(names, expired);
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        std::fs::write(dir.join("ca.crt"), &self.pem).unwrap();
        files(dir)
    }
}

/// A client that checks the server's name but not its own certificate: an intruder.
fn intruder(files: TlsFiles) -> Identity {
    Identity::load(
        files,
        crate::material::Expect {
            name: Some(ServerName::try_from("c19").unwrap()),
            own_chains_to_ca: false,
        },
    )
    .unwrap()
}

fn files(dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        ca: Some(dir.join("ca.crt")),
    }
}

#[test]
fn a_valid_identity_loads_and_knows_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let identity =
        Identity::for_peers(Ca::new("ca").write(dir.path(), &["c19"], false), "c19").unwrap();
    let expiry = identity.not_after().unwrap();
    assert!(expiry > std::time::SystemTime::now());
}

#[test]
fn load_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let good = ca.write(dir.path(), &["c19"], false);
    let error = |files: TlsFiles| Identity::for_peers(files, "c19").unwrap_err().to_string();

    let missing = TlsFiles {
        cert: dir.path().join("nope.crt"),
        ..good.clone()
    };
    let message = error(missing);
    assert!(
        message.contains("nope.crt") && message.contains("cannot read"),
        "{message}"
    );

    std::fs::write(dir.path().join("garbage"), "not pem").unwrap();
    let message = error(TlsFiles {
        key: dir.path().join("garbage"),
        ..good.clone()
    });
    assert!(
        message.contains("garbage") && message.contains("private key"),
        "{message}"
    );

    let (_, other_key) = ca.issue(&["c19"], false);
    std::fs::write(dir.path().join("other.key"), other_key).unwrap();
    let message = error(TlsFiles {
        key: dir.path().join("other.key"),
        ..good.clone()
    });
    assert!(message.contains("does not match"), "{message}");
    assert!(
        !message.contains("PRIVATE KEY"),
        "key material in {message}"
    );

    std::fs::write(dir.path().join("other-ca.crt"), Ca::new("other").pem).unwrap();
    let message = error(TlsFiles {
        ca: Some(dir.path().join("other-ca.crt")),
        ..good.clone()
    });
    assert!(message.contains("is not signed by the CA"), "{message}");
    assert!(
        message.contains("other-ca.crt") && message.contains("tls.crt"),
        "{message}"
    );

    let message = Identity::for_peers(good.clone(), "other-name")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("does not carry the name \"other-name\""),
        "{message}"
    );

    let expired_dir = tempfile::tempdir().unwrap();
    let message = error(ca.write(expired_dir.path(), &["c19"], true));
    assert!(message.contains("has expired"), "{message}");

    assert!(matches!(
        Identity::for_peers(good, "10.0.0.1"),
        Err(Error::BadName { .. })
    ));
}

/// A server on loopback accepting one connection at a time with `identity`.
async fn server(identity: &Identity, mode: Mode) -> (std::net::SocketAddr, Acceptor) {
    let acceptor = Acceptor::new(
        identity.server_config().unwrap(),
        mode,
        Duration::from_secs(5),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = acceptor.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = serving.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(stream).await {
                    let mut buf = [0u8; 4];
                    if stream.read_exact(&mut buf).await.is_ok() {
                        let answer = if stream.is_tls() { b"tls!" } else { b"raw!" };
                        let _ = stream.write_all(answer).await;
                        let _ = stream.flush().await;
                    }
                }
            });
        }
    });
    (addr, acceptor)
}

/// Connects with `client` (a peers identity) and exchanges a ping over TLS.
async fn ping(addr: std::net::SocketAddr, client: &Identity) -> std::io::Result<[u8; 4]> {
    let connector = TlsConnector::from(Arc::new(client.client_config().unwrap()));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    Ok(buf)
}

/// What the acceptor says about one connection from `client`.
async fn refusal_of(identity: &Identity, client: &Identity) -> Reason {
    let acceptor = Acceptor::new(
        identity.server_config().unwrap(),
        Mode::Strict,
        Duration::from_secs(5),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = client.clone();
    let dialling = tokio::spawn(async move { ping(addr, &client).await });
    let (stream, _) = listener.accept().await.unwrap();
    let Err(refusal) = acceptor.accept(stream).await else {
        panic!("accepted")
    };
    assert!(dialling.await.unwrap().is_err());
    refusal.reason
}

#[tokio::test]
async fn peers_with_the_ca_and_the_name_talk_over_tls() {
    let ca = Ca::new("ca");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Per-agent certificates from one CA, both with the shared name.
    let server_id =
        Identity::for_peers(ca.write(a.path(), &["c19", "agent-a"], false), "c19").unwrap();
    let client_id = Identity::for_peers(ca.write(b.path(), &["c19"], false), "c19").unwrap();
    let (addr, _) = server(&server_id, Mode::Strict).await;
    assert_eq!(&ping(addr, &client_id).await.unwrap(), b"tls!");
}

#[tokio::test]
async fn intruders_are_refused_with_their_reason() {
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let server_id = Identity::for_peers(ca.write(dir.path(), &["c19"], false), "c19").unwrap();

    // Another CA's certificate (the client trusts our CA, so only the server refuses).
    let other = tempfile::tempdir().unwrap();
    let mut other_files = Ca::new("other").write(other.path(), &["c19"], false);
    other_files.ca = Some(dir.path().join("ca.crt"));
    let client = intruder(other_files);
    assert_eq!(refusal_of(&server_id, &client).await, Reason::UnknownCa);

    // The right CA, the wrong name.
    let wrong = tempfile::tempdir().unwrap();
    let client = intruder(ca.write(wrong.path(), &["intruder"], false));
    assert_eq!(refusal_of(&server_id, &client).await, Reason::WrongName);

    // The right CA and name, expired.
    let expired = tempfile::tempdir().unwrap();
    let client = intruder(ca.write(expired.path(), &["c19"], true));
    assert_eq!(refusal_of(&server_id, &client).await, Reason::Expired);
}

#[tokio::test]
async fn a_client_without_certificate_is_refused() {
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let server_id = Identity::for_peers(ca.write(dir.path(), &["c19"], false), "c19").unwrap();
    let acceptor = Acceptor::new(
        server_id.server_config().unwrap(),
        Mode::Strict,
        Duration::from_secs(5),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(dir.path().join("ca.crt")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let dialling = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("c19").unwrap(), tcp)
            .await?;
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map(|_| buf)
    });
    let (stream, _) = listener.accept().await.unwrap();
    let Err(refusal) = acceptor.accept(stream).await else {
        panic!("accepted")
    };
    assert_eq!(refusal.reason, Reason::NoCertificate);
    assert!(dialling.await.unwrap().is_err());
}

use rustls::pki_types::pem::PemObject;

#[tokio::test]
async fn plaintext_is_refused_by_strict_and_served_by_permissive() {
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::for_peers(ca.write(dir.path(), &["c19"], false), "c19").unwrap();
    for (mode, expected) in [(Mode::Strict, None), (Mode::Permissive, Some(*b"raw!"))] {
        let (addr, _) = server(&identity, mode).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
        match expected {
            None => {
                let text = String::from_utf8_lossy(&answer);
                assert!(text.starts_with("HTTP/1.1 400"), "{text}");
                assert!(text.contains("only TLS"), "{text}");
            }
            Some(raw) => assert_eq!(&answer[..4], &raw),
        }
        // TLS still works in both modes.
        assert_eq!(&ping(addr, &identity).await.unwrap(), b"tls!");
    }
}

#[tokio::test]
async fn a_reload_takes_new_files_and_keeps_the_old_on_error() {
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::for_peers(ca.write(dir.path(), &["c19"], false), "c19").unwrap();
    assert!(!identity.reload().unwrap(), "nothing changed");
    let first = std::fs::read(dir.path().join("tls.crt")).unwrap();

    ca.write(dir.path(), &["c19"], false);
    assert!(identity.reload().unwrap());
    let (addr, _) = server(&identity, Mode::Strict).await;
    assert_eq!(&ping(addr, &identity).await.unwrap(), b"tls!");

    // A half-rotated pair (new certificate, old key) is refused; the previous pair stays.
    std::fs::write(dir.path().join("tls.crt"), first).unwrap();
    let error = identity.reload().unwrap_err().to_string();
    assert!(error.contains("does not match"), "{error}");
    assert_eq!(&ping(addr, &identity).await.unwrap(), b"tls!");
    let _ = MaybeTls::<TcpStream>::is_tls;
}
