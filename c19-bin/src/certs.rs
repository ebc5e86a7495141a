//! `c19 certs`: a private certificate authority and agent certificates for mutual TLS
//! between agents, for laptops and clusters without cert-manager.
//!
//! ```sh
//! c19 certs ca --out ca/                          # ca/ca.crt, ca/ca.key
//! c19 certs issue --ca ca/ --name c19 --out tls/  # tls/tls.crt, tls/tls.key, tls/ca.crt
//! ```
//!
//! The files of `issue` are named as cert-manager names the keys of the Secrets it writes,
//! so `kubectl create secret generic c19-tls --from-file=tls/` makes the Secret the
//! Kubernetes manifests mount. Every agent uses the one certificate both as a TLS server
//! (peers dial it) and as a TLS client (it dials peers), hence the extended key usages
//! serverAuth and clientAuth.
//!
//! Keys are ECDSA P-256, written as PKCS#8 PEM with mode 0600. Existing files are kept
//! unless `--force` is given, and nothing is written unless every file can be.

use std::{
    fmt, fs,
    io::{self, Write},
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime},
};

use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The CA certificate's file name, in the CA directory and beside every agent certificate.
pub const CA_CERT: &str = "ca.crt";
/// The CA key's file name.
pub const CA_KEY: &str = "ca.key";
/// The agent certificate's file name.
pub const TLS_CERT: &str = "tls.crt";
/// The agent key's file name.
pub const TLS_KEY: &str = "tls.key";

/// The longest validity `--days` accepts: a hundred years.
const MAX_DAYS: i64 = 36_500;
/// How far before now certificates start, so that peers whose clocks lag accept them.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// `c19 certs`: make certificates for mutual TLS between agents.
#[derive(Debug, Subcommand)]
pub enum Certs {
    /// Make a certificate authority: DIR/ca.crt and DIR/ca.key.
    Ca(CaArgs),
    /// Make an agent certificate signed by a CA: OUT/tls.crt, OUT/tls.key and OUT/ca.crt.
    Issue(IssueArgs),
}

/// The arguments of `c19 certs ca`.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// The directory to write ca.crt and ca.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// How many days the CA certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 3650,
          value_parser = clap::value_parser!(i64).range(1..=MAX_DAYS))]
    pub days: i64,

    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// The arguments of `c19 certs issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The directory holding the CA's ca.crt and ca.key (made by `c19 certs ca`).
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,

    /// A DNS name (or IP address) the certificate is valid for: the `server_name` peers
    /// verify. Repeat for several; the first is also the subject's common name.
    #[arg(long = "name", value_name = "NAME", required = true)]
    pub names: Vec<String>,

    /// The directory to write tls.crt, tls.key and ca.crt into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// How many days the certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 365,
          value_parser = clap::value_parser!(i64).range(1..=MAX_DAYS))]
    pub days: i64,

    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,

    /// Make a certificate that has already expired (valid from two days ago until
    /// yesterday), for tests of peers that must refuse it.
    #[arg(long, hide = true, conflicts_with = "days")]
    pub expired: bool,
}

/// Why a `c19 certs` command failed. The message names the file and the problem, and
/// never holds key material.
#[derive(Debug)]
pub enum CertsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file could not be written, or its directory made.
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file to write exists and `--force` was not given.
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file holds something other than what it should.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A command-line value is unusable.
    Usage(String),
    /// Generating or signing failed.
    Generate(rcgen::Error),
}

impl CertsError {
    /// The process exit code: 2 for what the user can fix (files, arguments), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Generate(_) => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for CertsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), io_text(source))
            }
            Self::Write { path, source } => {
                write!(f, "cannot write {}: {}", path.display(), io_text(source))
            }
            Self::Exists { path } => write!(
                f,
                "{} already exists; pass --force to overwrite it",
                path.display()
            ),
            Self::Invalid { path, problem } => write!(f, "{}: {problem}", path.display()),
            Self::Usage(message) => f.write_str(message),
            Self::Generate(error) => write!(f, "cannot make the certificate: {error}"),
        }
    }
}

impl std::error::Error for CertsError {}

/// An I/O error without the ` (os error N)` suffix: `No such file or directory`.
fn io_text(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Runs a `c19 certs` command, reporting on stderr; returns the exit code.
pub fn main(command: &Certs) -> ExitCode {
    let result = match command {
        Certs::Ca(args) => ca(args),
        Certs::Issue(args) => issue(args),
    };
    match result {
        Ok(written) => {
            for path in written {
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// `c19 certs ca`: writes a self-signed CA; returns the files written.
pub fn ca(args: &CaArgs) -> Result<Vec<PathBuf>, CertsError> {
    let cert_path = args.out.join(CA_CERT);
    let key_path = args.out.join(CA_KEY);
    refuse_overwrite(&[&cert_path, &key_path], args.force)?;

    let key = KeyPair::generate().map_err(CertsError::Generate)?;
    let mut params = CertificateParams::default();
    // Each CA gets its own name (after its key), so a peer of another CA is reported as
    // signed by an unknown issuer rather than with a bad signature from a namesake.
    let id: String = params
        .key_identifier(&key)
        .iter()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "c19");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("c19 CA {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, args.days, false);
    let cert = params.self_signed(&key).map_err(CertsError::Generate)?;

    make_dir(&args.out)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true, args.force)?;
    write_file(&cert_path, cert.pem().as_bytes(), false, args.force)?;
    Ok(vec![cert_path, key_path])
}

/// `c19 certs issue`: writes an agent certificate signed by the CA; returns the files written.
pub fn issue(args: &IssueArgs) -> Result<Vec<PathBuf>, CertsError> {
    for name in &args.names {
        check_name(name)?;
    }
    let cert_path = args.out.join(TLS_CERT);
    let key_path = args.out.join(TLS_KEY);
    let ca_copy_path = args.out.join(CA_CERT);
    refuse_overwrite(&[&cert_path, &key_path, &ca_copy_path], args.force)?;

    let ca_cert_path = args.ca.join(CA_CERT);
    let ca_key_path = args.ca.join(CA_KEY);
    let ca_cert = read(&ca_cert_path)?;
    let ca_key_pem = read(&ca_key_path)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|_| CertsError::Invalid {
        path: ca_key_path.clone(),
        problem: "not a PEM private key".into(),
    })?;
    check_ca(&ca_cert_path, &ca_cert, &ca_key, &ca_key_path)?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(|error| CertsError::Invalid {
            path: ca_cert_path.clone(),
            problem: format!("not a usable CA certificate: {error}"),
        })?;

    let mut params = CertificateParams::new(args.names.clone())
        .map_err(|error| CertsError::Usage(format!("invalid --name {:?}: {error}", args.names)))?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "c19");
    params
        .distinguished_name
        .push(DnType::CommonName, args.names[0].as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, args.days, args.expired);
    let key = KeyPair::generate().map_err(CertsError::Generate)?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(CertsError::Generate)?;

    make_dir(&args.out)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true, args.force)?;
    write_file(&cert_path, cert.pem().as_bytes(), false, args.force)?;
    write_file(&ca_copy_path, ca_cert.as_bytes(), false, args.force)?;
    Ok(vec![cert_path, key_path, ca_copy_path])
}

/// Makes `params` valid for `days` days from now (from a few minutes earlier, for lagging
/// clocks), or, when `expired`, from two days ago until yesterday.
fn set_validity(params: &mut CertificateParams, days: i64, expired: bool) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    if expired {
        params.not_before = epoch + now.saturating_sub(2 * DAY);
        params.not_after = epoch + now.saturating_sub(DAY);
    } else {
        // Clamped as clap checks `--days`, far from the year 9999 the date type ends at.
        let days = u32::try_from(days.clamp(1, MAX_DAYS)).unwrap_or(1);
        params.not_before = epoch + now.saturating_sub(BACKDATE);
        params.not_after = epoch + now + DAY * days;
    }
}

/// Whether `name` can be a DNS name (optionally a `*.` wildcard) or an IP address.
fn check_name(name: &str) -> Result<(), CertsError> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let bare = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() <= 253 && bare.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(CertsError::Usage(format!(
            "invalid --name {name:?}: not a DNS name or IP address"
        )))
    }
}

/// Checks that `pem` (read from `path`) is a CA certificate whose public key is `key`'s.
fn check_ca(path: &Path, pem: &str, key: &KeyPair, key_path: &Path) -> Result<(), CertsError> {
    use rcgen::PublicKeyData;
    use x509_parser::pem::parse_x509_pem;

    let invalid = |problem: String| CertsError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let (_, pem) =
        parse_x509_pem(pem.as_bytes()).map_err(|_| invalid("not a PEM certificate".into()))?;
    let cert = pem
        .parse_x509()
        .map_err(|error| invalid(format!("not an X.509 certificate: {error}")))?;
    if !cert.is_ca() {
        return Err(invalid(
            "not a CA certificate (no basicConstraints CA:TRUE)".into(),
        ));
    }
    if !cert.validity().is_valid() {
        return Err(invalid(format!(
            "the CA certificate is not valid now (valid from {} until {})",
            cert.validity().not_before,
            cert.validity().not_after
        )));
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(CertsError::Invalid {
            path: key_path.to_owned(),
            problem: format!(
                "this key does not belong to the certificate {}",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Fails on the first of `paths` that exists, unless `force`.
fn refuse_overwrite(paths: &[&Path], force: bool) -> Result<(), CertsError> {
    if force {
        return Ok(());
    }
    match paths.iter().find(|path| path.exists()) {
        Some(path) => Err(CertsError::Exists {
            path: (*path).to_owned(),
        }),
        None => Ok(()),
    }
}

fn read(path: &Path) -> Result<String, CertsError> {
    fs::read_to_string(path).map_err(|source| CertsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn make_dir(dir: &Path) -> Result<(), CertsError> {
    fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes a new file (mode 0600 when `secret`), replacing an existing one only if
/// `force`: the old file is removed first, so a key never lands in a file whose mode
/// lets others read it.
fn write_file(path: &Path, contents: &[u8], secret: bool, force: bool) -> Result<(), CertsError> {
    let error = |source| CertsError::Write {
        path: path.to_owned(),
        source,
    };
    if force {
        match fs::remove_file(path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => return Err(error(source)),
            _ => {}
        }
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => CertsError::Exists {
            path: path.to_owned(),
        },
        _ => error(source),
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(error)
}
