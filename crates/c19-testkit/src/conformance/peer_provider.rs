//! The conformance suite of peer providers: [`run`] checks a built
//! [`PeerProvider`] against what the connection layer relies on.
//!
//! # What it checks
//!
//! 1. **Building**: the constructor builds a provider from a fresh [`LayerContext`];
//!    building a second one beside the first works (no port or global taken for good).
//! 2. **No blocking**: `get()`, `discovered()` and `itself()` return within
//!    [`Options::prompt`] each, called on the async worker of the test's runtime
//!    (a provider that blocks on a runtime there panics; one that waits for its
//!    backend is too slow). Run the suite from `#[tokio::test]`, whose runtime is
//!    current-thread, so a blocking call stalls everything and shows.
//! 3. **Discovery**: `discovered()` becomes true within [`Options::discovery`], and
//!    then stays true.
//! 4. **Answers**: `get()` holds no peer twice, and never `itself()` when the provider
//!    says where it is; two providers built from the same constructor eventually offer
//!    the same peers.
//! 5. **Shutdown**: once the context's shutdown is cancelled, the provider's
//!    background tasks let go of it (the suite's handle becomes the only strong
//!    reference within [`Options::discovery`]) and `get()` still answers without
//!    panicking.
//!
//! # What it cannot check
//!
//! Whether the peers offered are the right ones (that depends on the backend: give the
//! constructor a backend you control, and check the peers in your own tests), how a
//! provider behaves while its backend fails or changes, tasks that stop but hold an
//! inner part of the provider rather than the provider itself, and panics inside the
//! provider's own spawned tasks (the runtime swallows them; they show only as a provider
//! that stops updating).

use std::{
    collections::HashSet,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use c19_core::{LayerContext, Peer, PeerProvider, PeerProviderConfig, Shutdown};

use super::Report;
use crate::wait_until;

const SUITE: &str = "peer provider";

/// The suite's deadlines.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Options {
    /// How long one call of `get()`, `discovered()` or `itself()` may take (default
    /// 100 ms).
    pub prompt: Duration,
    /// How long discovery and shutdown may take (default 10 s).
    pub discovery: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            prompt: Duration::from_millis(100),
            discovery: Duration::from_secs(10),
        }
    }
}

impl Options {
    /// The same, with `discovery` as the deadline of discovery and shutdown.
    pub fn discovery(mut self, discovery: Duration) -> Self {
        self.discovery = discovery;
        self
    }

    /// The same, with `prompt` as the time one call may take.
    pub fn prompt(mut self, prompt: Duration) -> Self {
        self.prompt = prompt;
        self
    }
}

/// Runs the suite with [`Options::default`] on providers built by `make` from the
/// context it is given (the suite cancels the context's shutdown itself); panics on the
/// first rule broken.
///
/// ```no_run
/// # async fn example() {
/// # let config: Box<dyn c19_core::PeerProviderConfig> = unimplemented!();
/// let report = c19_testkit::conformance::peer_provider::run(|cx| {
///     let config = &config;
///     async move { config.build(&cx).await.unwrap() }
/// })
/// .await;
/// # }
/// ```
pub async fn run<F, Fut>(make: F) -> Report
where
    F: FnMut(LayerContext) -> Fut,
    Fut: Future<Output = Arc<dyn PeerProvider>>,
{
    run_with(Options::default(), make).await
}

/// Runs the suite on providers built by `config`.
pub async fn run_config(config: &dyn PeerProviderConfig) -> Report {
    run(|cx| async move {
        config
            .build(&cx)
            .await
            .unwrap_or_else(|error| panic!("building the peer provider {config:?} failed: {error}"))
    })
    .await
}

/// [`run`] with the deadlines of `options`.
pub async fn run_with<F, Fut>(options: Options, mut make: F) -> Report
where
    F: FnMut(LayerContext) -> Fut,
    Fut: Future<Output = Arc<dyn PeerProvider>>,
{
    let mut report = Report::default();
    if tokio::runtime::Handle::current().runtime_flavor()
        != tokio::runtime::RuntimeFlavor::CurrentThread
    {
        report.note(
            SUITE,
            "the suite ran on a multi-thread runtime: a provider that blocks a worker now \
             and then may go unnoticed (run it from a plain #[tokio::test])"
                .to_owned(),
        );
    }
    let first_cx = context();
    let first = make(first_cx.clone()).await;
    let second_cx = context();
    let second = make(second_cx.clone()).await;
    report.passed(SUITE, "building twice");

    for provider in [&first, &second] {
        prompt(options, provider);
    }
    report.passed(SUITE, "no blocking");

    for provider in [&first, &second] {
        let discovered = wait_until(options.discovery, || async {
            prompt(options, provider);
            provider.discovered()
        })
        .await;
        assert!(
            discovered,
            "discovered() must become true within {:?} (give the constructor a backend \
             that answers, or raise Options::discovery)",
            options.discovery
        );
    }
    report.passed(SUITE, "discovery");

    for provider in [&first, &second] {
        let peers = prompt(options, provider);
        let unique: HashSet<&Peer> = peers.iter().collect();
        assert_eq!(
            unique.len(),
            peers.len(),
            "get() must not offer a peer twice: {peers:?}"
        );
        if let Some(itself) = provider.itself() {
            assert!(
                !peers.contains(&itself),
                "get() must not offer the agent itself ({itself}): {peers:?}"
            );
        }
        assert!(
            provider.discovered(),
            "discovered() must stay true once it was"
        );
    }
    let same = wait_until(options.discovery, || async {
        sorted(first.get()) == sorted(second.get())
    })
    .await;
    assert!(
        same,
        "two providers built alike must offer the same peers: {:?} and {:?}",
        sorted(first.get()),
        sorted(second.get())
    );
    report.passed(SUITE, "answers");

    drop(second);
    second_cx.shutdown().cancel();
    first_cx.shutdown().cancel();
    let released = wait_until(options.discovery, || async {
        Arc::strong_count(&first) == 1
    })
    .await;
    assert!(
        released,
        "after shutdown the provider's background tasks must stop and let go of it within \
         {:?} ({} strong references remain)",
        options.discovery,
        Arc::strong_count(&first)
    );
    let _ = first.get();
    let _ = first.discovered();
    report.passed(SUITE, "shutdown");
    report
}

fn context() -> LayerContext {
    LayerContext::new("connection.peer_provider", Shutdown::new())
}

fn sorted(mut peers: Vec<Peer>) -> Vec<Peer> {
    peers.sort();
    peers
}

/// Calls the provider's methods, checking each returns within `options.prompt`.
fn prompt(options: Options, provider: &Arc<dyn PeerProvider>) -> Vec<Peer> {
    let timed = |name: &str, call: &mut dyn FnMut()| {
        let start = Instant::now();
        call();
        let took = start.elapsed();
        assert!(
            took <= options.prompt,
            "{name} must return without blocking: it took {took:?} (more than {:?})",
            options.prompt
        );
    };
    let mut peers = Vec::new();
    timed("get()", &mut || peers = provider.get());
    timed("discovered()", &mut || {
        let _ = provider.discovered();
    });
    timed("itself()", &mut || {
        let _ = provider.itself();
    });
    peers
}
