//! A scripted Kubernetes API server (kube's `tower_test::mock` pattern) and pods built
//! from k8s-openapi types, for the provider's scenario tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::{collections::BTreeMap, time::Duration};

use c19_core::{Peer, PeerProvider, Shutdown};
use std::sync::Arc;

use c19_peer_provider_k8s::{Identity, K8sPeerProvider, K8sPeerProviderConfig};
use http::{Request, Response, StatusCode};
use k8s_openapi::{
    api::core::v1::{Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::client::Body;
use serde_json::{Value, json};

/// The mock end of the client: every request the provider makes arrives here.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How long a test waits for the provider to do the next thing.
const PATIENCE: Duration = Duration::from_secs(120);

/// Starts `provider` (given as configuration JSON) against a scripted API server,
/// as the pod `self` in namespace `default`.
pub async fn start(config: Value) -> (Arc<K8sPeerProvider>, ApiServer, Shutdown) {
    start_as(config, Identity::named("self", Some("default"))).await
}

/// Like [`start`], with the given identity.
pub async fn start_as(
    config: Value,
    identity: Identity,
) -> (Arc<K8sPeerProvider>, ApiServer, Shutdown) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config: K8sPeerProviderConfig = serde_json::from_value(config).unwrap();
    let shutdown = Shutdown::new();
    let provider = config
        .builder()
        .with_client(client)
        .with_identity(identity)
        .start(&shutdown);
    (provider, ApiServer { handle }, shutdown)
}

/// Waits until the provider offers exactly `expected` (as `IP[:port]` strings, sorted).
pub async fn wait_for_peers(provider: &K8sPeerProvider, expected: &[&str]) {
    let mut peers = provider.subscribe();
    let shown = |peers: &[Peer]| peers.iter().map(ToString::to_string).collect::<Vec<_>>();
    let reached =
        tokio::time::timeout(PATIENCE, peers.wait_for(|peers| shown(peers) == expected)).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "expected peers {expected:?}, have {:?}",
        shown(&provider.get())
    );
}

/// The peers offered now, as `IP[:port]` strings.
pub fn peers(provider: &K8sPeerProvider) -> Vec<String> {
    provider.get().iter().map(ToString::to_string).collect()
}

/// One request waiting for its response.
pub struct Call {
    /// The request.
    pub request: Request<Body>,
    respond: tower_test::mock::SendResponse<Response<Body>>,
}

impl Call {
    /// The request path.
    pub fn path(&self) -> &str {
        self.request.uri().path()
    }

    /// The query parameters.
    pub fn query(&self) -> BTreeMap<String, String> {
        let query = self.request.uri().query().unwrap_or_default();
        form_decode(query)
    }

    /// Whether this is a watch (rather than a list).
    pub fn is_watch(&self) -> bool {
        self.query().get("watch").map(String::as_str) == Some("true")
    }

    /// Answers 200 with a JSON body.
    pub fn json(self, body: &Value) {
        self.respond(StatusCode::OK, serde_json::to_vec(body).unwrap());
    }

    /// Answers a list with `pods` at `resource_version`.
    pub fn pods(self, resource_version: &str, pods: &[Pod]) {
        assert!(
            !self.is_watch(),
            "expected a list, got {}",
            self.request.uri()
        );
        self.json(&json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": { "resourceVersion": resource_version },
            "items": pods,
        }));
    }

    /// Answers a watch with these events (one JSON object per line), then ends it.
    pub fn events(self, events: &[Value]) {
        assert!(
            self.is_watch(),
            "expected a watch, got {}",
            self.request.uri()
        );
        let mut body = Vec::new();
        for event in events {
            serde_json::to_writer(&mut body, event).unwrap();
            body.push(b'\n');
        }
        self.respond(StatusCode::OK, body);
    }

    /// Answers with an HTTP error status and a `Status` body, as the API server does.
    pub fn status(self, code: u16, reason: &str) {
        let status = StatusCode::from_u16(code).unwrap();
        self.respond(
            status,
            serde_json::to_vec(&status_object(code, reason)).unwrap(),
        );
    }

    /// Fails the request as a connection error (API server down).
    pub fn refuse(self) {
        let error =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        self.respond.send_error(error);
    }

    fn respond(self, status: StatusCode, body: Vec<u8>) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        self.respond.send_response(response);
    }
}

/// The scripted API server.
pub struct ApiServer {
    handle: Handle,
}

impl ApiServer {
    /// The server end of a `tower_test::mock::pair`, for a client built elsewhere.
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// The next request the provider makes.
    pub async fn next(&mut self) -> Call {
        let (request, respond) = tokio::time::timeout(PATIENCE, self.handle.next_request())
            .await
            .expect("the provider made no further request")
            .expect("the client was dropped");
        Call { request, respond }
    }

    /// The next request the provider makes, waiting as long as it takes; `None` once
    /// every client is gone.
    pub async fn next_or_end(&mut self) -> Option<Call> {
        let (request, respond) = self.handle.next_request().await?;
        Some(Call { request, respond })
    }

    /// Whether no request arrives for `duration`.
    pub async fn quiet(&mut self, duration: Duration) -> bool {
        // `None`: every client is gone (discovery stopped and dropped its own), which
        // is as quiet as it gets.
        !matches!(
            tokio::time::timeout(duration, self.handle.next_request()).await,
            Ok(Some(_))
        )
    }

    /// Expects a list, answers it with `pods`, and returns what was asked.
    pub async fn list(&mut self, resource_version: &str, pods: &[Pod]) -> Asked {
        let call = self.next().await;
        let asked = Asked {
            path: call.path().to_owned(),
            query: call.query(),
        };
        call.pods(resource_version, pods);
        asked
    }

    /// Expects a watch from `resource_version` and answers it with `events`.
    pub async fn watch(&mut self, resource_version: &str, events: &[Value]) {
        let call = self.next().await;
        assert!(
            call.is_watch(),
            "expected a watch, got {}",
            call.request.uri()
        );
        assert_eq!(
            call.query().get("resourceVersion").map(String::as_str),
            Some(resource_version),
            "watch from the wrong resourceVersion: {}",
            call.request.uri()
        );
        call.events(events);
    }
}

/// The path and query of a request already answered.
#[derive(Debug)]
pub struct Asked {
    /// The request path.
    pub path: String,
    /// The query parameters, decoded.
    pub query: BTreeMap<String, String>,
}

/// `application/x-www-form-urlencoded` decoding, enough for selectors in queries.
fn form_decode(query: &str) -> BTreeMap<String, String> {
    let decode = |text: &str| -> String {
        let text = text.replace('+', " ");
        percent_encoding::percent_decode_str(&text)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// A `Status` object as the API server sends for errors.
pub fn status_object(code: u16, reason: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": format!("{reason} ({code})"),
        "reason": reason,
        "code": code,
    })
}

/// A watch event of `kind` (`ADDED`, `MODIFIED`, `DELETED`) for `pod`.
pub fn event(kind: &str, pod: &Pod) -> Value {
    json!({ "type": kind, "object": pod })
}

/// The watch event the API server sends when the resourceVersion is too old.
pub fn gone() -> Value {
    json!({ "type": "ERROR", "object": status_object(410, "Expired") })
}

/// A Running, Ready pod `name` in `default` with IP `ip`, at resourceVersion `rv`.
pub fn pod(name: &str, ip: &str, rv: u32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some(rv.to_string()),
            labels: Some(BTreeMap::from([("app".to_owned(), "c19".to_owned())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c19".to_owned(),
                image: Some("c19:latest".to_owned()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            pod_ip: Some(ip.to_owned()),
            conditions: Some(vec![
                condition("Ready", true),
                condition("ContainersReady", true),
            ]),
            ..PodStatus::default()
        }),
    }
}

fn condition(type_: &str, status: bool) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        ..PodCondition::default()
    }
}

/// `pod` with its Ready condition set to `ready`.
pub fn ready(mut pod: Pod, ready: bool) -> Pod {
    let status = pod.status.get_or_insert_with(Default::default);
    status.conditions = Some(vec![
        condition("Ready", ready),
        condition("ContainersReady", ready),
    ]);
    pod
}

/// `pod` in phase `phase`.
pub fn phase(mut pod: Pod, phase: &str) -> Pod {
    pod.status.get_or_insert_with(Default::default).phase = Some(phase.to_owned());
    pod
}

/// `pod` without a pod IP.
pub fn no_ip(mut pod: Pod) -> Pod {
    pod.status.get_or_insert_with(Default::default).pod_ip = None;
    pod
}

/// `pod` being deleted (it has a deletion timestamp).
pub fn deleting(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1_700_000_000).unwrap()));
    pod
}

/// `pod` in namespace `namespace`.
pub fn in_namespace(mut pod: Pod, namespace: &str) -> Pod {
    pod.metadata.namespace = Some(namespace.to_owned());
    pod
}

/// `pod` whose container declares port `number` named `name`.
pub fn with_port(mut pod: Pod, name: &str, number: i32) -> Pod {
    if let Some(container) = pod
        .spec
        .as_mut()
        .and_then(|spec| spec.containers.first_mut())
    {
        container
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                name: Some(name.to_owned()),
                container_port: number,
                ..ContainerPort::default()
            });
    }
    pod
}

/// `pod` at resourceVersion `rv`.
pub fn at(mut pod: Pod, rv: u32) -> Pod {
    pod.metadata.resource_version = Some(rv.to_string());
    pod
}
