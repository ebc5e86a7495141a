//! Bearer tokens on the agent API (`auth.tokens_file`), over real sockets with real
//! tokens files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod sse;

use std::{
    num::NonZeroU64,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use c19_agent_http::{AuthConfig, HttpAgentConfig};
use c19_core::{
    Applied, Change, Changes, Diff, SafeState, Shutdown, State, StateError, StateValue,
};
use c19_state_default::DefaultState;
use common::*;
use proptest::prelude::*;
use reqwest::{Method, header};
use serde_json::{Value, json};
use sse::Events;
use tempfile::TempDir;

const WRITER: &str = "writer-Zm9vYmFyYmF6cXV4";
const READER: &str = "reader.token~0123456789==";
const CHALLENGE: &str = r#"Bearer realm="c19""#;
const INVALID: &str = r#"Bearer realm="c19", error="invalid_token""#;

/// A tokens file in a directory of its own, rewritten atomically (write, then rename).
struct TokensFile {
    dir: TempDir,
    path: PathBuf,
}

impl TokensFile {
    fn new(contents: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, contents).unwrap();
        Self { dir, path }
    }

    fn rewrite(&self, contents: &str) {
        let next = self.dir.path().join("tokens.next");
        std::fs::write(&next, contents).unwrap();
        std::fs::rename(&next, &self.path).unwrap();
    }
}

fn standard_tokens() -> TokensFile {
    TokensFile::new(&format!(
        "# tokens of the test\n{WRITER}\n\n  {READER}   read  \n"
    ))
}

fn guarded(file: &Path, reload_millis: u64) -> HttpAgentConfig {
    HttpAgentConfig {
        auth: Some(AuthConfig {
            tokens_file: file.to_owned(),
            reload_interval: NonZeroU64::new(reload_millis).unwrap(),
        }),
        ..HttpAgentConfig::default()
    }
}

/// A raw answer: status, headers and body.
struct Answer {
    status: u16,
    headers: header::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.body))
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// Asserts a JSON error with `status` and the challenge `challenge`.
    fn assert_refused(&self, status: u16, challenge: Option<&str>, what: &str) {
        assert_eq!(self.status, status, "{what}: {:?}", self.body);
        assert_eq!(
            self.header(header::WWW_AUTHENTICATE),
            challenge,
            "{what}: WWW-Authenticate"
        );
        assert_eq!(
            self.header(header::CONTENT_TYPE),
            Some("application/json"),
            "{what}"
        );
        if !self.body.is_empty() {
            assert!(self.json()["error"].is_string(), "{what}: {:?}", self.body);
        }
    }
}

/// Sends `method path` with `authorization` (if any) and `body`; reads the whole answer
/// within 10 s (so an event stream would fail the test).
async fn send(
    server: &Server,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> Answer {
    let mut request = server
        .client
        .request(method, server.url(path))
        .body(body.to_owned());
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(10), response.bytes())
        .await
        .expect("the answer's body did not end: a stream?")
        .unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every route of the API: method, path, body.
fn every_route() -> Vec<(Method, &'static str, &'static str)> {
    vec![
        (Method::GET, "/cat", ""),
        (Method::GET, "/", ""),
        (Method::GET, "/?prefix=c&limit=5", ""),
        (Method::HEAD, "/cat", ""),
        (Method::PUT, "/", r#"{"cat": {"value": "tom"}}"#),
        (Method::DELETE, "/cat", ""),
        (Method::GET, "/cat?watch=true", ""),
        (Method::GET, "/?watch=true&prefix=c", ""),
    ]
}

/// Starts a guarded agent holding `cat = garfield`.
async fn start_guarded(tokens: &TokensFile, reload_millis: u64) -> Server {
    let server = start(guarded(&tokens.path, reload_millis)).await;
    server
        .state
        .set(&r#"{"cat": {"value": "garfield"}}"#)
        .unwrap();
    server
}

#[tokio::test]
async fn every_route_without_a_token_is_401_with_a_challenge() {
    let tokens = standard_tokens();
    let server = start_guarded(&tokens, 5_000).await;
    let before = server.snapshot();
    for (method, path, body) in every_route() {
        let what = format!("{method} {path}");
        let answer = send(&server, method.clone(), path, None, body).await;
        answer.assert_refused(401, Some(CHALLENGE), &what);
        if method != Method::HEAD {
            let message = answer.json()["error"].as_str().unwrap().to_owned();
            assert!(message.contains("bearer token"), "{what}: {message}");
        }
        // Another scheme carries no bearer token either.
        let answer = send(&server, method, path, Some("Basic dXNlcjpwYXNz"), body).await;
        answer.assert_refused(401, Some(CHALLENGE), &what);
    }
    assert_eq!(
        server.snapshot(),
        before,
        "a refused request changed the state"
    );
}

#[tokio::test]
async fn every_route_with_an_unknown_token_is_401_invalid_token() {
    let tokens = standard_tokens();
    let server = start_guarded(&tokens, 5_000).await;
    let before = server.snapshot();
    let near_miss = bearer(&WRITER[..WRITER.len() - 1]);
    let longer = bearer(&format!("{WRITER}x"));
    for (method, path, body) in every_route() {
        for authorization in [
            "Bearer nope",
            near_miss.as_str(),
            longer.as_str(),
            "Bearer",
            "Bearer  ",
            "Bearer not a token",
        ] {
            let what = format!("{method} {path} with {authorization:?}");
            let answer = send(&server, method.clone(), path, Some(authorization), body).await;
            answer.assert_refused(401, Some(INVALID), &what);
        }
    }
    assert_eq!(
        server.snapshot(),
        before,
        "a refused request changed the state"
    );
}

#[tokio::test]
async fn a_read_only_token_reads_but_may_not_write() {
    let tokens = standard_tokens();
    let server = start_guarded(&tokens, 5_000).await;
    let reader = bearer(READER);
    let auth = Some(reader.as_str());

    let answer = send(&server, Method::GET, "/cat", auth, "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["value"], "garfield");
    assert_eq!(
        send(&server, Method::GET, "/nobody", auth, "").await.status,
        404
    );
    assert_eq!(
        send(&server, Method::HEAD, "/cat", auth, "").await.status,
        200
    );
    let listing = send(&server, Method::GET, "/?prefix=c", auth, "").await;
    assert_eq!(listing.status, 200);
    assert_eq!(listing.json()["cat"]["value"], "garfield");
    // The scheme is case-insensitive.
    let lower = format!("bearer {READER}");
    assert_eq!(
        send(&server, Method::GET, "/cat", Some(&lower), "")
            .await
            .status,
        200
    );

    let before = server.snapshot();
    let put = send(
        &server,
        Method::PUT,
        "/",
        auth,
        r#"{"cat": {"value": "tom"}}"#,
    )
    .await;
    put.assert_refused(
        403,
        Some(r#"Bearer realm="c19", error="insufficient_scope""#),
        "PUT",
    );
    assert!(put.json()["error"].as_str().unwrap().contains("read-only"));
    let delete = send(&server, Method::DELETE, "/cat", auth, "").await;
    assert_eq!(delete.status, 403);
    assert!(delete.json()["error"].is_string());
    assert_eq!(server.snapshot(), before, "a read-only token wrote");
    assert_eq!(
        get_json(&server, "/cat", &reader).await["value"],
        "garfield"
    );
}

#[tokio::test]
async fn a_read_only_token_watches_a_key_and_a_prefix() {
    let tokens = standard_tokens();
    let server = start_guarded(&tokens, 5_000).await;
    let reader = bearer(READER);
    let mut on_key = Events::from_request(
        server
            .client
            .get(server.url("/cat?watch=true"))
            .header(header::AUTHORIZATION, &reader),
    )
    .await;
    let mut on_prefix = Events::from_request(
        server
            .client
            .get(server.url("/?watch=true&prefix=c"))
            .header(header::AUTHORIZATION, &reader),
    )
    .await;
    let writer = bearer(WRITER);
    let put = send(
        &server,
        Method::PUT,
        "/",
        Some(&writer),
        r#"{"cat": {"value": "tom"}}"#,
    )
    .await;
    assert_eq!(put.status, 204);
    for events in [&mut on_key, &mut on_prefix] {
        let event = events.next_event().await.unwrap();
        assert_eq!(event.json()["key"], "cat");
        assert_eq!(event.json()["value"], "tom");
    }
}

#[tokio::test]
async fn a_watch_with_a_bad_token_gets_401_and_no_stream() {
    let tokens = standard_tokens();
    let server = start_guarded(&tokens, 5_000).await;
    for path in ["/cat?watch=true", "/?watch=true&prefix=", "/?watch"] {
        for authorization in [None, Some("Bearer wrong-token")] {
            let response = server
                .client
                .get(server.url(path))
                .header("accept", "text/event-stream")
                .headers(
                    authorization
                        .map(|value| {
                            [(header::AUTHORIZATION, value.parse().unwrap())]
                                .into_iter()
                                .collect()
                        })
                        .unwrap_or_default(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json",
                "{path}"
            );
            // The body ends: it is an error, not a stream.
            let body = tokio::time::timeout(Duration::from_secs(5), response.bytes())
                .await
                .expect("a refused watch must not stream")
                .unwrap();
            let error: Value = serde_json::from_slice(&body).unwrap();
            assert!(error["error"].is_string(), "{error}");
        }
    }
}

#[tokio::test]
async fn a_read_write_token_works_everywhere() {
    let tokens = standard_tokens();
    let server = start_guarded(&tokens, 5_000).await;
    let writer = bearer(WRITER);
    let auth = Some(writer.as_str());
    let put = send(
        &server,
        Method::PUT,
        "/",
        auth,
        r#"{"dog": {"value": "odie"}}"#,
    )
    .await;
    assert_eq!(put.status, 204);
    assert_eq!(get_json(&server, "/dog", &writer).await["value"], "odie");
    assert_eq!(
        send(&server, Method::DELETE, "/dog", auth, "").await.status,
        204
    );
    assert_eq!(
        send(&server, Method::GET, "/dog", auth, "").await.status,
        404
    );
    // The other errors are as without auth.
    let bad = send(&server, Method::PUT, "/", auth, "not json").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header(header::WWW_AUTHENTICATE), None);
    let (method, path) = (Method::POST, "/");
    assert_eq!(send(&server, method, path, auth, "").await.status, 405);
}

/// Polls until `token` gets `status` on `GET /cat`, for at most 10 s.
async fn wait_for(server: &Server, token: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let authorization = bearer(token);
    loop {
        let answer = send(server, Method::GET, "/cat", Some(&authorization), "").await;
        if answer.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {} instead of {status} after 10 s",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rewritten_tokens_file_is_picked_up_and_a_bad_one_is_not() {
    let tokens = standard_tokens();
    let server = start_guarded(&tokens, 50).await;
    wait_for(&server, WRITER, 200).await;

    // Rotation: the old writer goes, a new one comes.
    let rotated = "rotated-token-aaaaaaaaaaaaaaaa";
    tokens.rewrite(&format!("{rotated}\n{READER} read\n"));
    wait_for(&server, WRITER, 401).await;
    wait_for(&server, rotated, 200).await;
    wait_for(&server, READER, 200).await;

    // Malformed, empty or missing files keep the tokens in force.
    let later = "later-token-bbbbbbbbbbbbbbbbbb";
    for broken in [
        format!("{later}\n{later}-2 admin\n"),
        format!("{later}\n\"quoted\"\n"),
        "# nobody\n".to_owned(),
    ] {
        tokens.rewrite(&broken);
        // Ten reload intervals.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let answer = send(&server, Method::GET, "/cat", Some(&bearer(rotated)), "").await;
        assert_eq!(answer.status, 200, "{broken:?} replaced the tokens");
        let answer = send(&server, Method::GET, "/cat", Some(&bearer(later)), "").await;
        assert_eq!(answer.status, 401, "{broken:?} was loaded");
    }
    std::fs::remove_file(&tokens.path).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for(&server, rotated, 200).await;

    // A good file again is loaded, also written in place rather than renamed.
    std::fs::write(&tokens.path, format!("{later} write\n")).unwrap();
    wait_for(&server, later, 200).await;
    wait_for(&server, rotated, 401).await;
    let put = send(
        &server,
        Method::PUT,
        "/",
        Some(&bearer(later)),
        r#"{"cat": {"value": "tom"}}"#,
    )
    .await;
    assert_eq!(put.status, 204);
}

#[tokio::test]
async fn an_unusable_tokens_file_stops_the_start_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "secret-token-do-not-print";
    let cases = [
        ("missing", None, "cannot read the tokens file"),
        (
            "malformed",
            Some(format!("ok-token\n\n{secret} admin\n")),
            "line 3",
        ),
        ("bad-characters", Some(format!("{secret}\"\n")), "line 1"),
        ("empty", Some("# nobody yet\n".to_owned()), "holds no token"),
    ];
    for (name, contents, needle) in cases {
        let path = dir.path().join(name);
        if let Some(contents) = &contents {
            std::fs::write(&path, contents).unwrap();
        }
        let config = guarded(&path, 5_000);
        let error = config.check_files().unwrap_err().to_string();
        assert!(error.contains(needle), "{name}: {error}");
        assert!(
            error.contains(&path.display().to_string()),
            "{name}: {error}"
        );
        assert!(!error.contains(secret), "{name}: {error}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state: SafeState = Arc::new(DefaultState::default());
        let served = tokio::time::timeout(
            Duration::from_secs(10),
            c19_agent_http::serve(listener, state, &config, Shutdown::new()),
        )
        .await
        .expect("serve must fail at once");
        let error = served.unwrap_err().to_string();
        assert!(error.contains(needle), "{name}: {error}");
        assert!(!error.contains(secret), "{name}: {error}");
    }
    let good = dir.path().join("good");
    std::fs::write(&good, "a-token\n").unwrap();
    guarded(&good, 5_000).check_files().unwrap();
    HttpAgentConfig::default().check_files().unwrap();
}

#[tokio::test]
async fn the_configuration_holds_the_path_only() {
    let tokens = standard_tokens();
    let config: HttpAgentConfig = serde_json::from_value(json!({
        "port": 3097,
        "auth": {"tokens_file": tokens.path, "reload_interval": "250"},
    }))
    .unwrap();
    let auth = config.auth.clone().unwrap();
    assert_eq!(auth.tokens_file, tokens.path);
    assert_eq!(auth.reload_interval.get(), 250);
    let serialized = serde_json::to_string(&config).unwrap();
    assert!(!serialized.contains(WRITER) && !serialized.contains(READER));
    let debug = format!("{config:?} {:?}", auth.load().unwrap());
    assert!(
        !debug.contains(WRITER) && !debug.contains(READER),
        "{debug}"
    );
    assert!(debug.contains("tokens: 2, read_only: 1"), "{debug}");

    let defaulted: HttpAgentConfig =
        serde_json::from_value(json!({"auth": {"tokens_file": "/etc/c19/tokens"}})).unwrap();
    assert_eq!(defaulted.auth.unwrap().reload_interval.get(), 5_000);
    let unknown = serde_json::from_value::<HttpAgentConfig>(
        json!({"auth": {"tokens_file": "/etc/c19/tokens", "token": "x"}}),
    );
    assert!(unknown.is_err());
    // Without auth nothing new appears in the configuration.
    let open = serde_json::to_value(HttpAgentConfig::default()).unwrap();
    assert!(open.get("auth").is_none(), "{open}");
}

/// A Default state that counts the writes it accepted (`set`, each batch of `set_all`,
/// `delete`).
#[derive(Debug, Default)]
struct Counting {
    inner: DefaultState,
    writes: AtomicUsize,
}

impl Counting {
    fn count(&self, accepted: usize) {
        self.writes.fetch_add(accepted, Ordering::SeqCst);
    }
}

impl State for Counting {
    fn version(&self) -> String {
        self.inner.version()
    }
    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        let result = self.inner.set(value);
        self.count(usize::from(result.is_ok()));
        result
    }
    fn set_all(&self, values: &[&dyn StateValue]) -> Vec<Result<Applied, StateError>> {
        let results = self.inner.set_all(values);
        self.count(results.iter().filter(|result| result.is_ok()).count());
        results
    }
    fn get(&self, key: &dyn StateValue) -> Option<Bytes> {
        self.inner.get(key)
    }
    fn delete(&self, key: &dyn StateValue) -> Result<bool, StateError> {
        let result = self.inner.delete(key);
        self.count(usize::from(result.is_ok()));
        result
    }
    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError> {
        self.inner.diff(since, max_bytes)
    }
    fn head(&self) -> u64 {
        self.inner.head()
    }
    fn get_root(&self) -> Bytes {
        self.inner.get_root()
    }
    fn list(&self, prefix: &dyn StateValue, limit: Option<usize>) -> Result<Bytes, StateError> {
        self.inner.list(prefix, limit)
    }
    fn subscribe(&self) -> Result<Changes, StateError> {
        self.inner.subscribe()
    }
    fn changes_since(&self, since: u64, max: usize) -> Result<Vec<Change>, StateError> {
        self.inner.changes_since(since, max)
    }
}

/// The `Authorization` a generated request carries.
#[derive(Debug, Clone)]
enum Credentials {
    Missing,
    OtherScheme,
    Garbage(String),
    Reader,
    Writer,
}

impl Credentials {
    fn header(&self) -> Option<String> {
        match self {
            Self::Missing => None,
            Self::OtherScheme => Some("Basic dXNlcjpwYXNz".to_owned()),
            Self::Garbage(value) => Some(value.clone()),
            Self::Reader => Some(bearer(READER)),
            Self::Writer => Some(bearer(WRITER)),
        }
    }
}

fn credentials() -> impl Strategy<Value = Credentials> {
    prop_oneof![
        Just(Credentials::Missing),
        Just(Credentials::OtherScheme),
        "[a-zA-Z0-9]{0,24}".prop_map(|token| Credentials::Garbage(format!("Bearer {token}"))),
        "[ -~]{0,32}".prop_map(Credentials::Garbage),
        Just(Credentials::Reader),
        Just(Credentials::Writer),
    ]
}

fn request() -> impl Strategy<Value = (Method, &'static str, String, Credentials)> {
    let method = prop::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::PUT,
        Method::DELETE,
        Method::POST,
        Method::PATCH,
    ]);
    let path = prop::sample::select(vec!["/", "/cat", "/dog", "/a%2Fb", "/?prefix=c", "/%ff"]);
    let body = prop_oneof![
        (0u32..100).prop_map(|n| format!(r#"{{"cat": {{"value": {n}}}}}"#)),
        (0u32..100).prop_map(|n| format!(r#"{{"dog": {{"value": {n}, "ttl": 60000}}}}"#)),
        Just("{}".to_owned()),
        Just("not json".to_owned()),
        Just(String::new()),
        "[ -~]{0,40}",
    ];
    (method, path, body, credentials())
}

/// No request refused for its token reaches the state's writes; every accepted write
/// does, and only those.
#[test]
fn requests_refused_for_their_token_never_write() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tokens = standard_tokens();
    let counting = Arc::new(Counting::default());
    let server = runtime.block_on(start_with(counting.clone(), guarded(&tokens.path, 5_000)));
    let config = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let accepted = AtomicUsize::new(0);
    runner
        .run(&prop::collection::vec(request(), 1..16), |requests| {
            runtime.block_on(async {
                for (method, path, body, credentials) in requests {
                    let before = counting.writes.load(Ordering::SeqCst);
                    let authorization = credentials.header();
                    let answer = send(
                        &server,
                        method.clone(),
                        path,
                        authorization.as_deref(),
                        &body,
                    )
                    .await;
                    let after = counting.writes.load(Ordering::SeqCst);
                    let what = format!("{method} {path} {credentials:?} {body:?}");
                    let writes = !matches!(method, Method::GET | Method::HEAD);
                    let expected_refusal = match credentials {
                        Credentials::Writer => None,
                        Credentials::Reader if writes => Some(403),
                        Credentials::Reader => None,
                        _ => Some(401),
                    };
                    match expected_refusal {
                        Some(status) => {
                            prop_assert_eq!(answer.status, status, "{}", what);
                            prop_assert_eq!(after, before, "refused but written: {}", what);
                        }
                        None => {
                            prop_assert!(
                                answer.status != 401 && answer.status != 403,
                                "{} refused: {}",
                                answer.status,
                                what
                            );
                            if answer.status == 204 {
                                prop_assert_eq!(after, before + 1, "{}", what);
                                accepted.fetch_add(1, Ordering::SeqCst);
                            } else {
                                prop_assert_eq!(after, before, "{} wrote: {}", answer.status, what);
                            }
                        }
                    }
                }
                Ok(())
            })
        })
        .unwrap();
    assert_eq!(
        counting.writes.load(Ordering::SeqCst),
        accepted.load(Ordering::SeqCst)
    );
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "no write was accepted: the test tests nothing"
    );
}

#[tokio::test]
async fn without_auth_the_api_is_open_as_before() {
    let server = start_default().await;
    let put = send(&server, Method::PUT, "/", None, r#"{"cat": {"value": 1}}"#).await;
    assert_eq!(put.status, 204);
    // An Authorization header is ignored, whatever it holds.
    let answer = send(&server, Method::GET, "/cat", Some("Bearer whatever"), "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header(header::WWW_AUTHENTICATE), None);
}

/// `GET path` with `authorization`; asserts 200 and returns the JSON.
async fn get_json(server: &Server, path: &str, authorization: &str) -> Value {
    let answer = send(server, Method::GET, path, Some(authorization), "").await;
    assert_eq!(answer.status, 200, "{path}");
    answer.json()
}
