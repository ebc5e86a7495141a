//! Bearer tokens on the agent API: the `auth` configuration, the tokens file, the check
//! at the top of every request, and the reload of the file when it changes.
//!
//! The tokens file holds one token a line; surrounding whitespace is trimmed, blank
//! lines and lines starting with `#` are ignored. `TOKEN` or `TOKEN write` may read and
//! write, `TOKEN read` may only read (`GET`, `HEAD`, listings and watches). A token is
//! an RFC 6750 `b64token`: letters, digits, `-._~+/`, then optional trailing `=`.
//!
//! Tokens are kept only as SHA-256 digests and a presented token is compared with every
//! one of them in constant time, so the time a check takes tells neither whether a token
//! matched, nor which, nor how long the tokens are. No token text ever reaches a log, an
//! error message or `Debug` output: errors name the file and the line number only.

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU64,
    path::{Path, PathBuf},
    sync::{Arc, Weak},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, Method, header};
use c19_core::Shutdown;
use metrics::{Counter, counter, describe_counter};
use serde::{Deserialize, Serialize};
use serde_with::{DisplayFromStr, PickFirst, serde_as};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::Error;
pub use crate::refusal::Refusal;

/// The `auth` section of the agent: bearer tokens required on every request.
///
/// ```yaml
/// auth:
///   tokens_file: /etc/c19/tokens  # one token a line; "TOKEN read" makes it read-only
///   reload_interval: 5000         # ms between checks of the file for changes
/// ```
#[serde_as]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The tokens file: one token a line, `TOKEN read` for a read-only one (see the
    /// [module docs](self)). Only the path is configuration; the tokens stay in the file.
    pub tokens_file: PathBuf,
    /// Milliseconds between checks of the tokens file's modification time and contents;
    /// a change is loaded without a restart (default 5000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_reload_interval")]
    pub reload_interval: NonZeroU64,
}

fn default_reload_interval() -> NonZeroU64 {
    NonZeroU64::new(5_000).unwrap_or(NonZeroU64::MIN)
}

impl AuthConfig {
    /// The configuration for `tokens_file`, checked every 5 s.
    pub fn new(tokens_file: impl Into<PathBuf>) -> Self {
        Self {
            tokens_file: tokens_file.into(),
            reload_interval: default_reload_interval(),
        }
    }

    /// Loads the tokens file, as the agent does at start-up.
    pub fn load(&self) -> Result<Tokens, TokensError> {
        Tokens::load(&self.tokens_file)
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `GET` and `HEAD`: keys, listings and watches.
    Read,
    /// Everything, `PUT` and `DELETE` included.
    Write,
}

/// One configured token.
#[derive(Clone, Copy)]
struct Entry {
    /// The SHA-256 of the token.
    digest: [u8; 32],
    /// Whether the token may write.
    write: Choice,
}

/// A set of tokens, as loaded from a tokens file. Its `Debug` output shows counts only.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("tokens", &self.len())
            .field("read_only", &self.read_only())
            .finish()
    }
}

/// Why a tokens file cannot be used. The messages name the file and the line, never a
/// token.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read the tokens file {}: {source}", file.display())]
    Read {
        /// The tokens file.
        file: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("the tokens file {}, line {line}: {problem}", file.display())]
    Line {
        /// The tokens file.
        file: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// The file holds no token: every request would be refused.
    #[error(
        "the tokens file {} holds no token, which would refuse every request \
         (remove `auth` to leave the API open)",
        file.display()
    )]
    Empty {
        /// The tokens file.
        file: PathBuf,
    },
}

/// What is wrong with a line of a tokens file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// The line is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
    /// The token has a character a bearer token cannot have.
    #[error(
        "the token has a character a bearer token cannot have \
         (allowed: letters, digits, -._~+/ and trailing =)"
    )]
    BadCharacter,
    /// Something other than `read` or `write` follows the token.
    #[error("expected `TOKEN`, `TOKEN read` or `TOKEN write`")]
    BadAccess,
    /// The same token is on an earlier line.
    #[error("the same token is on line {0} already")]
    Repeated(usize),
}

impl Tokens {
    /// Reads and parses `file`.
    pub fn load(file: &Path) -> Result<Self, TokensError> {
        let bytes = std::fs::read(file).map_err(|source| TokensError::Read {
            file: file.to_owned(),
            source,
        })?;
        Self::parse(&bytes, file)
    }

    /// Parses the contents of a tokens file; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<Self, TokensError> {
        let problem = |line: usize, problem: LineProblem| TokensError::Line {
            file: file.to_owned(),
            line,
            problem,
        };
        let mut entries = Vec::new();
        let mut lines_of: HashMap<[u8; 32], usize> = HashMap::new();
        for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
            let number = index + 1;
            let line = std::str::from_utf8(line)
                .map_err(|_| problem(number, LineProblem::NotText))?
                .trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let token = words.next().unwrap_or_default();
            let write = match (words.next(), words.next()) {
                (None | Some("write"), None) => true,
                (Some("read"), None) => false,
                _ => return Err(problem(number, LineProblem::BadAccess)),
            };
            if !is_b64token(token) {
                return Err(problem(number, LineProblem::BadCharacter));
            }
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some(first) = lines_of.insert(digest, number) {
                return Err(problem(number, LineProblem::Repeated(first)));
            }
            entries.push(Entry {
                digest,
                write: Choice::from(u8::from(write)),
            });
        }
        if entries.is_empty() {
            return Err(TokensError::Empty {
                file: file.to_owned(),
            });
        }
        Ok(Self { entries })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no token (never true of a loaded set).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many of the tokens are read-only.
    pub fn read_only(&self) -> usize {
        self.entries
            .iter()
            .filter(|entry| !bool::from(entry.write))
            .count()
    }

    /// What `token` may do, `None` when it is not one of these tokens.
    ///
    /// The token's digest is compared with every configured one in constant time, with
    /// no early exit: the time taken depends on the number of tokens only.
    pub fn access(&self, token: &[u8]) -> Option<Access> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut known = Choice::from(0);
        let mut write = Choice::from(0);
        for entry in &self.entries {
            let same = entry.digest.ct_eq(&digest);
            known |= same;
            write |= same & entry.write;
        }
        match (bool::from(known), bool::from(write)) {
            (false, _) => None,
            (true, false) => Some(Access::Read),
            (true, true) => Some(Access::Write),
        }
    }
}

/// Whether `token` is an RFC 6750 `b64token`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte))
}

/// What the `Authorization` headers of a request hold.
#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    /// No bearer credentials (no header, or another scheme).
    Nothing,
    /// `Bearer <token>`, the token still unchecked.
    Token(&'a [u8]),
    /// Several `Authorization` headers, or `Bearer` without a token.
    Malformed,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() {
        return Presented::Malformed;
    }
    let value = value.as_bytes().trim_ascii();
    let (scheme, token) = match value.iter().position(|byte| *byte == b' ') {
        Some(space) => (&value[..space], value[space..].trim_ascii()),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        Presented::Nothing
    } else if token.is_empty() {
        Presented::Malformed
    } else {
        Presented::Token(token)
    }
}

/// The tokens of a running agent, reloaded in the background when the file changes.
pub(crate) struct Guard {
    tokens: Arc<ArcSwap<Tokens>>,
    /// `c19_agent_auth_refused_total`, by [`Refusal::index`].
    refused: [Counter; 3],
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("tokens", &*self.tokens.load())
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Loads the tokens file of `config` and, inside a Tokio runtime, starts checking it
    /// for changes every `reload_interval` until `shutdown` or until the guard is dropped.
    pub fn start(config: &AuthConfig, shutdown: &Shutdown) -> Result<Self, TokensError> {
        let file = config.tokens_file.clone();
        let bytes = std::fs::read(&file).map_err(|source| TokensError::Read {
            file: file.clone(),
            source,
        })?;
        let loaded = Tokens::parse(&bytes, &file)?;
        tracing::info!(
            file = %file.display(),
            tokens = loaded.len(),
            read_only = loaded.read_only(),
            "agent API requires bearer tokens"
        );
        let seen = Stamp::of(std::fs::metadata(&file).ok(), &bytes);
        let tokens = Arc::new(ArcSwap::from_pointee(loaded));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(reload(
                    file,
                    Duration::from_millis(config.reload_interval.get()),
                    Arc::downgrade(&tokens),
                    seen,
                    shutdown.clone(),
                ));
            }
            Err(_) => tracing::warn!(
                file = %file.display(),
                "no Tokio runtime: the tokens file will not be reloaded when it changes"
            ),
        }
        describe_counter!(
            "c19_agent_auth_refused_total",
            "Requests to the agent API refused for their bearer token, by reason"
        );
        let refused = [
            Refusal::MissingToken,
            Refusal::UnknownToken,
            Refusal::ReadOnly,
        ]
        .map(|reason| counter!("c19_agent_auth_refused_total", "reason" => reason.label()));
        Ok(Self { tokens, refused })
    }

    /// Lets a request through, or says why not (and counts the refusal).
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Error> {
        let refusal = match self.decide(method, headers) {
            Ok(()) => return Ok(()),
            Err(refusal) => refusal,
        };
        if let Some(counter) = self.refused.get(refusal.index()) {
            counter.increment(1);
        }
        Err(Error::Unauthorized(refusal))
    }

    fn decide(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let token = match presented(headers) {
            Presented::Nothing => return Err(Refusal::MissingToken),
            Presented::Malformed => return Err(Refusal::UnknownToken),
            Presented::Token(token) => token,
        };
        match self.tokens.load().access(token) {
            None => Err(Refusal::UnknownToken),
            Some(Access::Write) => Ok(()),
            Some(Access::Read) if writes(method) => Err(Refusal::ReadOnly),
            Some(Access::Read) => Ok(()),
        }
    }
}

/// Whether `method` needs a read-write token.
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// What a version of the tokens file is known by: its modification time and a digest
/// of its contents (a rewrite within the clock's granularity changes the latter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    digest: [u8; 32],
}

impl Stamp {
    fn of(metadata: Option<std::fs::Metadata>, bytes: &[u8]) -> Self {
        Self {
            modified: metadata.and_then(|metadata| metadata.modified().ok()),
            digest: Sha256::digest(bytes).into(),
        }
    }
}

/// Every `every`, reads `file` and, when it changed, swaps its tokens in; a file that
/// cannot be used keeps the previous tokens and is warned about once per problem.
async fn reload(
    file: PathBuf,
    every: Duration,
    tokens: Weak<ArcSwap<Tokens>>,
    mut seen: Stamp,
    shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut problem: Option<String> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(tokens) = tokens.upgrade() else {
            return;
        };
        let outcome = match read_stamped(&file).await {
            Err(error) => Err(error),
            Ok((stamp, _)) if stamp == seen => Ok(None),
            Ok((stamp, bytes)) => {
                seen = stamp;
                Tokens::parse(&bytes, &file).map(Some)
            }
        };
        match outcome {
            Ok(None) => problem = None,
            Ok(Some(loaded)) => {
                tracing::info!(
                    file = %file.display(),
                    tokens = loaded.len(),
                    read_only = loaded.read_only(),
                    "reloaded the tokens file"
                );
                tokens.store(Arc::new(loaded));
                problem = None;
            }
            Err(error) => {
                let message = error.to_string();
                if problem.as_deref() != Some(message.as_str()) {
                    tracing::warn!(
                        file = %file.display(),
                        %error,
                        "cannot reload the tokens file; keeping the previous tokens"
                    );
                    problem = Some(message);
                }
            }
        }
    }
}

async fn read_stamped(file: &Path) -> Result<(Stamp, Vec<u8>), TokensError> {
    let metadata = tokio::fs::metadata(file).await.ok();
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|source| TokensError::Read {
            file: file.to_owned(),
            source,
        })?;
    Ok((Stamp::of(metadata, &bytes), bytes))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn parse(text: &str) -> Result<Tokens, TokensError> {
        Tokens::parse(text.as_bytes(), Path::new("/etc/c19/tokens"))
    }

    fn line_problem(text: &str) -> (usize, LineProblem) {
        match parse(text) {
            Err(TokensError::Line { line, problem, .. }) => (line, problem),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_give_tokens_and_their_access() {
        let tokens = parse(
            "# the writers\n  writer-token-1  \n\nwriter2 write\r\nreader.token~x== read\n\t# done\n",
        )
        .unwrap();
        assert_eq!((tokens.len(), tokens.read_only()), (3, 1));
        assert_eq!(tokens.access(b"writer-token-1"), Some(Access::Write));
        assert_eq!(tokens.access(b"writer2"), Some(Access::Write));
        assert_eq!(tokens.access(b"reader.token~x=="), Some(Access::Read));
        assert_eq!(tokens.access(b"reader.token~x="), None);
        assert_eq!(tokens.access(b"writer2 write"), None);
        assert_eq!(tokens.access(b""), None);
    }

    #[test]
    fn malformed_lines_are_named_by_number_and_never_show_the_token() {
        let secret = "s3cr3t-value";
        for (text, expected) in [
            (format!("ok\n{secret} admin\n"), (2, LineProblem::BadAccess)),
            (
                format!("{secret} read write\n"),
                (1, LineProblem::BadAccess),
            ),
            (format!("\n\n{secret}\"x\n"), (3, LineProblem::BadCharacter)),
            (format!("{secret}=a\n"), (1, LineProblem::BadCharacter)),
            ("==\n".to_owned(), (1, LineProblem::BadCharacter)),
            (
                format!("{secret}\n#\n{secret} read\n"),
                (3, LineProblem::Repeated(1)),
            ),
        ] {
            let error = parse(&text).unwrap_err();
            let message = error.to_string();
            assert!(!message.contains(secret), "{message}");
            assert!(message.contains("/etc/c19/tokens"), "{message}");
            assert!(
                message.contains(&format!("line {}", expected.0)),
                "{message}"
            );
            assert_eq!(line_problem(&text), expected, "{text:?}");
        }
        let mut bytes = b"good\n".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        assert!(matches!(
            Tokens::parse(&bytes, Path::new("t")),
            Err(TokensError::Line {
                line: 2,
                problem: LineProblem::NotText,
                ..
            })
        ));
    }

    #[test]
    fn a_file_without_tokens_is_refused() {
        for text in ["", "\n\n", "# only a comment\n   \n"] {
            let error = parse(text).unwrap_err();
            assert!(matches!(error, TokensError::Empty { .. }), "{error}");
            assert!(error.to_string().contains("holds no token"));
        }
    }

    #[test]
    fn debug_output_shows_counts_only() {
        let tokens = parse("very-secret-token\nanother-secret read\n").unwrap();
        let debug = format!("{tokens:?}");
        assert_eq!(debug, "Tokens { tokens: 2, read_only: 1 }");
    }

    #[test]
    fn the_authorization_header_is_read_as_rfc_6750_says() {
        let with = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            }
            headers
        };
        let headers = with(&[]);
        assert_eq!(presented(&headers), Presented::Nothing);
        let headers = with(&["Basic dXNlcjpwYXNz"]);
        assert_eq!(presented(&headers), Presented::Nothing);
        let headers = with(&["Bearer abc"]);
        assert_eq!(presented(&headers), Presented::Token(b"abc"));
        let headers = with(&["bearer   abc  "]);
        assert_eq!(presented(&headers), Presented::Token(b"abc"));
        let headers = with(&["Bearer"]);
        assert_eq!(presented(&headers), Presented::Malformed);
        let headers = with(&["Bearer "]);
        assert_eq!(presented(&headers), Presented::Malformed);
        let headers = with(&["Bearer a", "Bearer b"]);
        assert_eq!(presented(&headers), Presented::Malformed);
    }

    #[test]
    fn only_gets_and_heads_are_reads() {
        assert!(!writes(&Method::GET));
        assert!(!writes(&Method::HEAD));
        assert!(writes(&Method::PUT));
        assert!(writes(&Method::DELETE));
        assert!(writes(&Method::POST));
    }

    /// A recorder that keeps every counter by its name and labels.
    #[derive(Default)]
    struct Counters(std::sync::Mutex<HashMap<String, Arc<std::sync::atomic::AtomicU64>>>);

    impl Counters {
        fn get(&self, key: &str) -> u64 {
            let counters = self.0.lock().unwrap();
            counters
                .get(key)
                .map_or(0, |value| value.load(std::sync::atomic::Ordering::SeqCst))
        }
    }

    impl metrics::Recorder for Counters {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let mut counters = self.0.lock().unwrap();
            Counter::from_arc(counters.entry(name).or_default().clone())
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[test]
    fn refusals_are_counted_by_reason_and_status() {
        use axum::{body::Body, extract::Request};

        use crate::{HttpAgentConfig, routes};

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "writer-token\nreader-token read\n").unwrap();
        let config = HttpAgentConfig {
            auth: Some(AuthConfig::new(&file)),
            ..HttpAgentConfig::default()
        };
        let state: c19_core::SafeState = Arc::new(c19_state_default::DefaultState::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let counters = Counters::default();
        let statuses = metrics::with_local_recorder(&counters, || {
            runtime.block_on(async {
                let app = routes::app(state.clone(), &config, Shutdown::new()).unwrap();
                let mut statuses = Vec::new();
                for (method, authorization) in [
                    (Method::GET, None),
                    (Method::GET, Some("Bearer nope")),
                    (Method::DELETE, Some("Bearer nope")),
                    (Method::PUT, Some("Bearer reader-token")),
                    (Method::GET, Some("Bearer reader-token")),
                    (Method::PUT, Some("Bearer writer-token")),
                ] {
                    let mut request = Request::builder().method(method).uri("/");
                    if let Some(value) = authorization {
                        request = request.header(header::AUTHORIZATION, value);
                    }
                    let body = Body::from(r#"{"cat": {"value": 1}}"#);
                    let response = routes::answer(app.clone(), request.body(body).unwrap()).await;
                    statuses.push(response.status().as_u16());
                }
                statuses
            })
        });
        assert_eq!(statuses, [401, 401, 401, 403, 200, 204]);
        let refused = |reason: &str| {
            counters.get(&format!("c19_agent_auth_refused_total{{reason={reason}}}"))
        };
        assert_eq!(refused("missing_token"), 1);
        assert_eq!(refused("unknown_token"), 2);
        assert_eq!(refused("read_only"), 1);
        let requests = |method: &str, status: &str| {
            counters.get(&format!(
                "c19_agent_requests_total{{route=root,method={method},status={status}}}"
            ))
        };
        assert_eq!(requests("GET", "401"), 2);
        assert_eq!(requests("DELETE", "401"), 1);
        assert_eq!(requests("PUT", "403"), 1);
        assert_eq!(requests("PUT", "204"), 1);
        // Only the read-write token's PUT reached the state.
        assert!(state.get(&"cat").is_some());
    }
}
