//! `run_until`: start order, ordered graceful shutdown, failure propagation, readiness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use c19_core::{
    Agent, AgentConfig, Config, Connection, ConnectionConfig, Error, LayerContext, LayerError,
    SafeState, Shutdown, State, StateConfig, StateError, health,
    reexports::{bytes::Bytes, futures::future::BoxFuture},
    run_until,
    state::{Applied, Diff, StateValue},
};
use serde::{Deserialize, Serialize};

/// What the layers did, in order. Tests in this file run one at a time (`serial`).
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn event(what: &str) {
    EVENTS.lock().unwrap().push(what.to_owned());
}

fn events() -> Vec<String> {
    EVENTS.lock().unwrap().clone()
}

#[derive(Debug, Serialize, Deserialize)]
struct NullStateConfig;

#[typetag::serde(name = "Null")]
impl StateConfig for NullStateConfig {
    fn build<'a>(&'a self, _: &'a LayerContext) -> BoxFuture<'a, Result<SafeState, StateError>> {
        Box::pin(async {
            event("state init");
            Ok(Arc::new(NullState) as SafeState)
        })
    }
}

#[derive(Debug)]
struct NullState;

impl State for NullState {
    fn version(&self) -> String {
        String::new()
    }
    fn set(&self, _: &dyn StateValue) -> Result<Applied, StateError> {
        Ok(Applied::default())
    }
    fn get(&self, _: &dyn StateValue) -> Option<Bytes> {
        None
    }
    fn delete(&self, _: &dyn StateValue) -> Result<bool, StateError> {
        Ok(false)
    }
    fn diff(&self, _: u64, _: usize) -> Result<Diff, StateError> {
        Ok(Diff::default())
    }
    fn head(&self) -> u64 {
        0
    }
    fn get_root(&self) -> Bytes {
        Bytes::new()
    }
}

/// Serves until stopped (`fail: false`) or fails at once (`fail: true`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProbeConfig {
    name: String,
    fail: bool,
}

impl ProbeConfig {
    fn live(&self, cx: &LayerContext) -> Probe {
        assert_eq!(cx.component(), self.name, "each layer gets its own context");
        Probe {
            config: self.clone(),
            cx: cx.clone(),
        }
    }
}

/// A built probe.
struct Probe {
    config: ProbeConfig,
    cx: LayerContext,
}

impl Probe {
    async fn serve(self) -> Result<(), LayerError> {
        let name = &self.config.name;
        event(&format!("{name} start"));
        if self.config.fail {
            return Err(LayerError::other(format!("{name} broke")));
        }
        self.cx.readiness().ready();
        self.cx.shutdown().cancelled().await;
        // Something still to do after the signal, like finishing requests or a last push.
        tokio::task::yield_now().await;
        event(&format!("{name} stop"));
        Ok(())
    }
}

#[typetag::serde(name = "ProbeAgent")]
impl AgentConfig for ProbeConfig {
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
        _: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Agent>, LayerError>> {
        let probe = self.live(cx);
        Box::pin(async move { Ok(Box::new(probe) as Box<dyn Agent>) })
    }
}

#[typetag::serde(name = "ProbeConnection")]
impl ConnectionConfig for ProbeConfig {
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
        _: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Connection>, LayerError>> {
        let probe = self.live(cx);
        Box::pin(async move { Ok(Box::new(probe) as Box<dyn Connection>) })
    }
}

impl Agent for Probe {
    fn run(self: Box<Self>) -> BoxFuture<'static, Result<(), LayerError>> {
        Box::pin(self.serve())
    }
}

impl Connection for Probe {
    fn run(self: Box<Self>) -> BoxFuture<'static, Result<(), LayerError>> {
        Box::pin(self.serve())
    }
}

fn config(agent_fails: bool, connection_fails: bool) -> Config {
    let yaml = format!(
        "spec:\n  state: {{kind: Null}}\n  agent: {{kind: ProbeAgent, name: agent, fail: {agent_fails}}}\n  connection: {{kind: ProbeConnection, name: connection, fail: {connection_fails}}}\n"
    );
    Config::from_yaml("test.yml", &yaml).unwrap()
}

#[tokio::test]
async fn shutdown_stops_the_agent_before_the_connection() {
    let _serial = SERIAL.lock().await;
    EVENTS.lock().unwrap().clear();
    let shutdown = Shutdown::new();
    let run = tokio::spawn(run_until(config(false, false), shutdown.clone()));
    let ready = async {
        while !health::is_ready() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .unwrap();
    assert_eq!(
        health::snapshot().into_iter().collect::<Vec<_>>(),
        [
            ("agent".to_owned(), true),
            ("connection".to_owned(), true),
            ("state".to_owned(), true)
        ]
    );
    shutdown.cancel();
    run.await.unwrap().unwrap();
    let events = events();
    let position = |what: &str| events.iter().position(|e| e == what).unwrap();
    assert!(position("state init") < position("agent start"));
    assert!(
        position("agent stop") < position("connection stop"),
        "{events:?}"
    );
    assert!(!health::is_ready());
}

#[tokio::test]
async fn a_failing_layer_stops_the_other_and_returns_its_error() {
    let _serial = SERIAL.lock().await;
    EVENTS.lock().unwrap().clear();
    let error = run_until(config(true, false), Shutdown::new())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Agent(_)), "{error}");
    assert!(error.to_string().contains("agent broke"), "{error}");
    assert!(
        events().contains(&"connection stop".to_owned()),
        "{:?}",
        events()
    );

    let error = run_until(config(false, true), Shutdown::new())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connection(_)), "{error}");
}
