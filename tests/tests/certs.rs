//! `c19 certs`, run as a real process in a temporary directory: the files `ca` and
//! `issue` write, what the certificates say (read back with x509-parser), a real mutual
//! TLS handshake (tokio-rustls) between a server and a client using the issued files, and
//! the errors for existing files and a missing CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    io::{BufReader, Cursor},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Arc,
    time::{Duration, SystemTime},
};

use c19_tests::agent_bin;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::{extensions::GeneralName, pem::Pem};

const DAY: u64 = 24 * 60 * 60;

fn c19(args: &[&str]) -> Output {
    Command::new(agent_bin!())
        .args(args)
        .env_remove("C19_CONFIG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `c19 certs ARGS...` and asserts it succeeds; returns its stderr.
fn certs_ok(args: &[&str]) -> String {
    let out = c19(&[&["certs"], args].concat());
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "c19 certs {args:?} failed ({:?}): {stderr}",
        out.status
    );
    stderr
}

/// `c19 certs ca --out DIR/ca` then `c19 certs issue --ca DIR/ca --name c19 --out DIR/tls`.
fn ca_and_agent(dir: &Path, extra_issue: &[&str]) -> (PathBuf, PathBuf) {
    let ca = dir.join("ca");
    let tls = dir.join("tls");
    certs_ok(&["ca", "--out", ca.to_str().unwrap()]);
    let mut issue = vec![
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--name",
        "c19",
        "--out",
        tls.to_str().unwrap(),
    ];
    issue.extend_from_slice(extra_issue);
    certs_ok(&issue);
    (ca, tls)
}

/// The DER of the one certificate in a PEM file.
fn der(path: &Path) -> Vec<u8> {
    let pems: Vec<Pem> = Pem::iter_from_buffer(&fs::read(path).unwrap())
        .map(Result::unwrap)
        .collect();
    assert_eq!(pems.len(), 1, "{} holds one certificate", path.display());
    assert_eq!(pems[0].label, "CERTIFICATE", "{}", path.display());
    pems[0].contents.clone()
}

fn seconds(time: x509_parser::time::ASN1Time) -> u64 {
    u64::try_from(time.timestamp()).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_then_issue_write_the_files_cert_manager_would_with_private_keys_0600() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let tls = dir.path().join("tls");
    let ca_out = certs_ok(&["ca", "--out", ca.to_str().unwrap()]);
    let mut names = fs::read_dir(&ca)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(names, ["ca.crt", "ca.key"]);

    let issue_out = certs_ok(&[
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--name",
        "c19",
        "--out",
        tls.to_str().unwrap(),
    ]);
    let mut names = fs::read_dir(&tls)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(names, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(
        fs::read(tls.join("ca.crt")).unwrap(),
        fs::read(ca.join("ca.crt")).unwrap(),
        "tls/ca.crt is a copy of the CA certificate"
    );

    for key in [ca.join("ca.key"), tls.join("tls.key")] {
        // PKCS#8 PEM, which rustls reads.
        let pem = fs::read_to_string(&key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem:.30}");
        assert!(matches!(
            PrivateKeyDer::from_pem_file(&key).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        #[cfg(unix)]
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        // No key material on the terminal.
        let body = pem.lines().nth(1).unwrap();
        for out in [&ca_out, &issue_out] {
            assert!(!out.contains("PRIVATE KEY") && !out.contains(body), "{out}");
        }
    }
    #[cfg(unix)]
    for cert in [ca.join("ca.crt"), tls.join("tls.crt")] {
        assert_eq!(
            mode(&cert) & 0o022,
            0,
            "{} is writable by others",
            cert.display()
        );
    }
    assert!(
        issue_out.contains(&tls.join("tls.key").display().to_string()),
        "{issue_out}"
    );
}

#[test]
fn the_agent_certificate_names_its_sans_and_serves_both_ends_of_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let tls = dir.path().join("tls");
    certs_ok(&["ca", "--out", ca.to_str().unwrap()]);
    certs_ok(&[
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--name",
        "c19",
        "--name",
        "c19.c19.svc",
        "--out",
        tls.to_str().unwrap(),
    ]);

    let ca_der = der(&ca.join("ca.crt"));
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca_cert.is_ca(), "ca.crt has basicConstraints CA:TRUE");
    let usage = ca_cert.key_usage().unwrap().expect("the CA has key usages");
    assert!(usage.value.key_cert_sign());
    let ca_days = (seconds(ca_cert.validity().not_after) - now()) / DAY;
    assert!((3649..=3650).contains(&ca_days), "CA valid {ca_days} days");

    let agent_der = der(&tls.join("tls.crt"));
    let (_, agent) = x509_parser::parse_x509_certificate(&agent_der).unwrap();
    assert!(!agent.is_ca());
    assert_eq!(agent.issuer(), ca_cert.subject(), "issued by the CA");
    agent
        .verify_signature(Some(ca_cert.public_key()))
        .expect("tls.crt is signed by ca.key");
    let sans: Vec<String> = agent
        .subject_alternative_name()
        .unwrap()
        .expect("a subjectAltName")
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans, ["DNS:c19", "DNS:c19.c19.svc"]);
    let usage = agent.key_usage().unwrap().expect("key usages").value;
    assert!(
        usage.digital_signature() && usage.key_encipherment(),
        "{usage}"
    );
    assert!(!usage.key_cert_sign());
    let extended = agent
        .extended_key_usage()
        .unwrap()
        .expect("extended key usages")
        .value;
    assert!(extended.server_auth, "serverAuth: agents are TLS servers");
    assert!(extended.client_auth, "clientAuth: agents are TLS clients");
    let validity = agent.validity();
    assert!(validity.is_valid());
    let days = (seconds(validity.not_after) - now()) / DAY;
    assert!((364..=365).contains(&days), "agent valid {days} days");
}

#[test]
fn days_and_expired_set_the_validity() {
    let dir = tempfile::tempdir().unwrap();
    let (_, tls) = ca_and_agent(dir.path(), &["--days", "2"]);
    let short = der(&tls.join("tls.crt"));
    let (_, short) = x509_parser::parse_x509_certificate(&short).unwrap();
    let left = seconds(short.validity().not_after) - now();
    assert!(left > DAY && left <= 2 * DAY, "{left} s left");

    let (_, expired) = ca_and_agent(&dir.path().join("old"), &["--expired"]);
    let expired = der(&expired.join("tls.crt"));
    let (_, expired) = x509_parser::parse_x509_certificate(&expired).unwrap();
    let validity = expired.validity();
    assert!(
        seconds(validity.not_after) < now(),
        "not_after is in the past"
    );
    assert!(seconds(validity.not_before) < seconds(validity.not_after));
}

/// The certificate chain and key in a directory written by `c19 certs issue`.
fn chain_and_key(dir: &Path) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (
        chain,
        PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap(),
    )
}

fn roots(ca_crt: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let pem = fs::read(ca_crt).unwrap();
    for cert in CertificateDer::pem_reader_iter(BufReader::new(Cursor::new(pem))) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server that requires a client certificate chained to `server_dir/ca.crt` and
/// presents `server_dir/tls.crt`, and a client that trusts `client_trusts`, verifies
/// `server_name` and presents `client_dir`'s certificate (none when `None`). Both ends
/// exchange a line; `Err` holds what either end reported.
async fn handshake(
    server_dir: &Path,
    client_dir: Option<&Path>,
    client_trusts: &Path,
    server_name: &str,
) -> Result<(), String> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(&server_dir.join("ca.crt")), provider())
            .build()
            .unwrap();
    let (chain, key) = chain_and_key(server_dir);
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut line = [0; 5];
        tls.read_exact(&mut line).await.map_err(|e| e.to_string())?;
        tls.write_all(b"pong\n").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(line)
    });

    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(client_trusts));
    let client = match client_dir {
        Some(dir) => {
            let (chain, key) = chain_and_key(dir);
            client.with_client_auth_cert(chain, key).unwrap()
        }
        None => client.with_no_client_auth(),
    };
    let connector = TlsConnector::from(Arc::new(client));
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let client = async {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping\n").await.map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(reply)
    };
    let client = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .map_err(|_| "client timed out".to_owned())
        .and_then(|result| result);
    let server = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .map_err(|_| "server timed out".to_owned())
        .and_then(|joined| joined.map_err(|e| e.to_string()))
        .and_then(|result| result);
    match (server, client) {
        (Ok(line), Ok(reply)) => {
            assert_eq!(&line, b"ping\n");
            assert_eq!(reply, b"pong\n");
            Ok(())
        }
        (server, client) => Err(format!("server: {server:?}; client: {client:?}")),
    }
}

#[tokio::test]
async fn the_issued_files_make_a_mutual_tls_handshake_and_refuse_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = ca_and_agent(dir.path(), &[]);
    // A second agent of the same CA, the way two pods share one Secret or a CA.
    let peer = dir.path().join("peer");
    certs_ok(&[
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--name",
        "c19",
        "--out",
        peer.to_str().unwrap(),
    ]);
    handshake(&tls, Some(&peer), &peer.join("ca.crt"), "c19")
        .await
        .expect("agents of one CA accept each other");
    handshake(&tls, Some(&tls), &tls.join("ca.crt"), "c19")
        .await
        .expect("one certificate serves as both server and client");

    let wrong_name = handshake(&tls, Some(&peer), &peer.join("ca.crt"), "other")
        .await
        .expect_err("the client checks the server name");
    assert!(wrong_name.contains("not valid for name"), "{wrong_name}");

    let anonymous = handshake(&tls, None, &peer.join("ca.crt"), "c19")
        .await
        .expect_err("the server requires a client certificate");
    assert!(
        anonymous.contains("NoCertificatesPresented") || anonymous.contains("CertificateRequired"),
        "{anonymous}"
    );

    // An agent of another CA: neither end trusts the other.
    let (_, stranger) = ca_and_agent(&dir.path().join("other"), &[]);
    let refused = handshake(&tls, Some(&stranger), &tls.join("ca.crt"), "c19")
        .await
        .expect_err("the server refuses a client of another CA");
    assert!(
        refused.to_lowercase().contains("unknownissuer"),
        "{refused}"
    );
    let refused = handshake(&stranger, Some(&tls), &tls.join("ca.crt"), "c19")
        .await
        .expect_err("the client refuses a server of another CA");
    assert!(
        refused.to_lowercase().contains("unknownissuer"),
        "{refused}"
    );

    // An expired certificate of the right CA.
    let expired = dir.path().join("expired");
    certs_ok(&[
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--name",
        "c19",
        "--out",
        expired.to_str().unwrap(),
        "--expired",
    ]);
    let refused = handshake(&tls, Some(&expired), &tls.join("ca.crt"), "c19")
        .await
        .expect_err("the server refuses an expired client certificate");
    assert!(refused.contains("certificate expired"), "{refused}");
}

#[test]
fn existing_files_are_kept_unless_force() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = ca_and_agent(dir.path(), &[]);
    let ca_key = fs::read(ca.join("ca.key")).unwrap();
    let tls_key = fs::read(tls.join("tls.key")).unwrap();

    let out = c19(&["certs", "ca", "--out", ca.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let path = ca.join("ca.crt").display().to_string();
    assert!(
        stderr.contains(&path) && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(fs::read(ca.join("ca.key")).unwrap(), ca_key, "ca.key kept");

    let issue = |force: bool| {
        let mut args = vec![
            "certs",
            "issue",
            "--ca",
            ca.to_str().unwrap(),
            "--name",
            "c19",
            "--out",
            tls.to_str().unwrap(),
        ];
        if force {
            args.push("--force");
        }
        c19(&args)
    };
    let out = issue(false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        fs::read(tls.join("tls.key")).unwrap(),
        tls_key,
        "tls.key kept"
    );

    let out = issue(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(fs::read(tls.join("tls.key")).unwrap(), tls_key, "a new key");
    #[cfg(unix)]
    assert_eq!(mode(&tls.join("tls.key")), 0o600);

    certs_ok(&["ca", "--out", ca.to_str().unwrap(), "--force"]);
    assert_ne!(fs::read(ca.join("ca.key")).unwrap(), ca_key, "a new CA key");
}

#[test]
fn a_missing_ca_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca");
    let out_dir = dir.path().join("tls");
    let out = c19(&[
        "certs",
        "issue",
        "--ca",
        missing.to_str().unwrap(),
        "--name",
        "c19",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let expected = format!(
        "error: cannot read {}: No such file or directory",
        missing.join("ca.crt").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out_dir.exists(), "nothing written");
}

#[test]
fn a_ca_key_that_is_not_the_cas_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = ca_and_agent(dir.path(), &[]);
    fs::copy(tls.join("tls.key"), ca.join("ca.key")).unwrap();
    let out = c19(&[
        "certs",
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--name",
        "c19",
        "--out",
        dir.path().join("next").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&ca.join("ca.key").display().to_string())
            && stderr.contains("does not belong"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2_and_the_agent_flags_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    for args in [
        &["certs", "issue", "--ca", ca, "--out", ca][..], // no --name
        &["certs", "ca", "--out", ca, "--days", "0"],
        &["certs", "ca", "--out", ca, "--days", "x"],
        &["--check", "certs", "ca", "--out", ca],
        &[
            "certs",
            "issue",
            "--ca",
            ca,
            "--name",
            "not a name",
            "--out",
            ca,
        ],
    ] {
        let out = c19(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"), "{args:?}");
    }
    assert!(!Path::new(ca).exists(), "no usage error wrote anything");

    let kinds = c19(&["--kinds"]);
    assert!(kinds.status.success());
    assert!(text(&kinds.stdout).contains("connection: Default"));
    let help = c19(&["--help"]);
    assert!(
        text(&help.stdout).contains("certs"),
        "{}",
        text(&help.stdout)
    );
}
