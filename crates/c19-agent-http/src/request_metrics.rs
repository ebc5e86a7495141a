//! Request metrics: `c19_agent_requests_total{route,method,status}` and
//! `c19_agent_request_duration_seconds{route}`, through the `metrics` facade.
//!
//! Routes are `key` (`/<key>`), `root` (`GET /` listings and `PUT /` batches) and
//! `watch` (change streams; their duration is the time to start the stream).

use std::{sync::OnceLock, time::Duration};

use axum::http::{Method, StatusCode, Uri};
use metrics::{Counter, Histogram, counter, describe_counter, describe_histogram, histogram};

use crate::reads::Read;

/// The route a request took, as its `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/<key>`: reads and deletes of one key.
    Key,
    /// `/`: listings and batch writes.
    Root,
    /// Watches of a prefix or a key.
    Watch,
}

impl Route {
    /// The route of a path before its query is looked at.
    pub fn of_path(path: &str) -> Self {
        if path == "/" { Self::Root } else { Self::Key }
    }

    /// The route of a request that was not served (refused for its token): [`Route::Watch`]
    /// when its query sets `watch`, else by its path.
    pub fn of_uri(uri: &Uri) -> Self {
        let watching = uri.query().is_some_and(|query| {
            query.split('&').any(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                name == "watch" && !matches!(value, "false" | "0")
            })
        });
        if watching {
            Self::Watch
        } else {
            Self::of_path(uri.path())
        }
    }

    /// The route's place in [`ROUTES`].
    fn index(self) -> usize {
        match self {
            Self::Key => 0,
            Self::Root => 1,
            Self::Watch => 2,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Root => "root",
            Self::Watch => "watch",
        }
    }
}

impl From<Read> for Route {
    fn from(read: Read) -> Self {
        match read {
            Read::Key => Self::Key,
            Read::List => Self::Root,
            Read::Watch => Self::Watch,
        }
    }
}

/// Every label combination of the request counter: routes × methods × statuses.
const COUNTERS: usize = ROUTES.len() * (METHODS.len() + 1) * STATUS_LABELS;

/// The routes, in the order of their index.
const ROUTES: [Route; 3] = [Route::Key, Route::Root, Route::Watch];

/// The request handles, resolved once: looking a labelled counter up in the registry
/// hashes its labels and allocates, which at tens of thousands of requests a second is
/// a visible share of a `GET`. A counter is registered when first used, so `/metrics`
/// lists only the combinations that happened.
#[derive(Debug)]
pub(crate) struct RequestMetrics {
    durations: [Histogram; 3],
    counters: Box<[OnceLock<Counter>]>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        describe_counter!(
            "c19_agent_requests_total",
            "Requests to the agent API by route, method and status"
        );
        describe_histogram!(
            "c19_agent_request_duration_seconds",
            metrics::Unit::Seconds,
            "Time to answer a request to the agent API, by route"
        );
        let duration = |route: Route| histogram!("c19_agent_request_duration_seconds", "route" => route.label());
        Self {
            durations: ROUTES.map(duration),
            counters: (0..COUNTERS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl RequestMetrics {
    /// Records one answered request.
    pub fn record(&self, route: Route, method: &Method, status: StatusCode, took: Duration) {
        let (method, status) = (method_index(method), status_index(status));
        if let Some(slot) = self.counters.get(counter_index(route, method, status)) {
            slot.get_or_init(|| {
                counter!(
                    "c19_agent_requests_total",
                    "route" => route.label(),
                    "method" => method_label(method),
                    "status" => status_label(status),
                )
            })
            .increment(1);
        }
        self.durations[route.index()].record(took.as_secs_f64());
    }
}

/// The place of a label combination among the counters.
fn counter_index(route: Route, method: usize, status: usize) -> usize {
    (route.index() * (METHODS.len() + 1) + method) * STATUS_LABELS + status
}

/// The methods with a label of their own; others are counted as `other`, so clients
/// cannot make labels up.
const METHODS: [(Method, &str); 7] = [
    (Method::GET, "GET"),
    (Method::HEAD, "HEAD"),
    (Method::PUT, "PUT"),
    (Method::DELETE, "DELETE"),
    (Method::POST, "POST"),
    (Method::PATCH, "PATCH"),
    (Method::OPTIONS, "OPTIONS"),
];

/// The index of `method`'s label: its place in [`METHODS`], or the last for `other`.
fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|(known, _)| known == method)
        .unwrap_or(METHODS.len())
}

/// The status codes this agent answers with, as labels; others are counted by class.
const STATUSES: [(u16, &str); 12] = [
    (200, "200"),
    (204, "204"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (413, "413"),
    (500, "500"),
    (501, "501"),
    (503, "503"),
];

/// The labels of statuses outside [`STATUSES`], by class.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// How many status labels there are.
const STATUS_LABELS: usize = STATUSES.len() + CLASSES.len();

/// The index of `status`'s label: its place in [`STATUSES`], else after them by class.
fn status_index(status: StatusCode) -> usize {
    let code = status.as_u16();
    STATUSES
        .iter()
        .position(|(known, _)| *known == code)
        .unwrap_or_else(|| STATUSES.len() + usize::from(code / 100).clamp(1, 5) - 1)
}

/// The label of the status with index `index`.
fn status_label(index: usize) -> &'static str {
    match STATUSES.get(index) {
        Some((_, label)) => label,
        None => CLASSES
            .get(index - STATUSES.len())
            .copied()
            .unwrap_or("5xx"),
    }
}

/// The label of the method with index `index`.
fn method_label(index: usize) -> &'static str {
    METHODS.get(index).map_or("other", |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> &'static str {
        status_label(status_index(StatusCode::from_u16(code).unwrap()))
    }

    fn method(method: &Method) -> &'static str {
        method_label(method_index(method))
    }

    #[test]
    fn labels_stay_few() {
        assert_eq!(status(204), "204");
        assert_eq!(status(503), "503");
        assert_eq!(status(418), "4xx");
        assert_eq!(status(302), "3xx");
        assert_eq!(status(101), "1xx");
        assert_eq!(status(599), "5xx");
        assert_eq!(method(&Method::PUT), "PUT");
        assert_eq!(method(&Method::OPTIONS), "OPTIONS");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method(&odd), "other");
        assert_eq!(Route::of_path("/"), Route::Root);
        assert_eq!(Route::of_path("/cat"), Route::Key);
        let route = |uri: &str| Route::of_uri(&uri.parse().unwrap());
        assert_eq!(route("/?watch=true&prefix=a"), Route::Watch);
        assert_eq!(route("/cat?watch"), Route::Watch);
        assert_eq!(route("/cat?watch=0"), Route::Key);
        assert_eq!(route("/?prefix=a&watcher=1"), Route::Root);
        assert_eq!(status(401), "401");
        assert_eq!(status(403), "403");
    }

    #[test]
    fn every_combination_has_its_own_counter() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            for method in 0..=METHODS.len() {
                for status in 0..STATUS_LABELS {
                    let index = counter_index(route, method, status);
                    assert!(index < COUNTERS, "{index}");
                    assert!(seen.insert(index), "{index} twice");
                }
            }
        }
        assert_eq!(seen.len(), COUNTERS);
    }
}
