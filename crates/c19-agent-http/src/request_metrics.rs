//! Request metrics: `c19_agent_requests_total{route,method,status}` and
//! `c19_agent_request_duration_seconds{route}`, through the `metrics` facade.
//!
//! Routes are `key` (`/<key>`), `root` (`GET /` listings and `PUT /` batches) and
//! `watch` (change streams; their duration is the time to start the stream).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{Histogram, counter, describe_counter, describe_histogram, histogram};

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

/// The duration histograms, registered once.
#[derive(Debug)]
pub(crate) struct RequestMetrics {
    durations: [Histogram; 3],
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
            durations: [Route::Key, Route::Root, Route::Watch].map(duration),
        }
    }
}

impl RequestMetrics {
    /// Records one answered request.
    pub fn record(&self, route: Route, method: &Method, status: StatusCode, took: Duration) {
        counter!(
            "c19_agent_requests_total",
            "route" => route.label(),
            "method" => method_label(method),
            "status" => status_label(status),
        )
        .increment(1);
        let index = match route {
            Route::Key => 0,
            Route::Root => 1,
            Route::Watch => 2,
        };
        self.durations[index].record(took.as_secs_f64());
    }
}

/// The method as a label; unusual methods share one, so clients cannot make labels up.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status codes this agent answers with, as labels.
const STATUSES: [(u16, &str); 10] = [
    (200, "200"),
    (204, "204"),
    (400, "400"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (413, "413"),
    (500, "500"),
    (501, "501"),
    (503, "503"),
];

/// The status code as a label; others by class (`4xx`), to keep labels few.
fn status_label(status: StatusCode) -> &'static str {
    let code = status.as_u16();
    match STATUSES.iter().find(|(known, _)| *known == code) {
        Some((_, label)) => label,
        None => match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_few() {
        assert_eq!(status_label(StatusCode::NO_CONTENT), "204");
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT), "4xx");
        assert_eq!(method_label(&Method::PUT), "PUT");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(Route::of_path("/"), Route::Root);
        assert_eq!(Route::of_path("/cat"), Route::Key);
    }
}
