//! Reads: `GET /<key>`, the listing `GET /?prefix=P&limit=N`, and the watches
//! `GET /?watch=true&prefix=P` and `GET /<key>?watch=true`.
//!
//! `GET /<key>` behaves as in 0.1 whatever else its query holds; only `watch` and
//! `last_event_id` mean something there. On `/` every parameter is checked, so a typo
//! (`?prefx=`) gets a 400 naming it instead of the whole state.

use axum::{
    extract::Query,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header::HeaderName},
    response::Response,
};
use c19_core::{SafeState, Shutdown};
use serde::Deserialize;

use crate::{
    error::{Error, Result},
    event_id,
    routes::{json, key_of},
    watch::{Filter, watch},
};

/// The response header of a listing that holds the point of the state's history it
/// reflects: watching with `last_event_id` set to it misses no later change.
pub const LISTING_POINT_HEADER: &str = "c19-last-event-id";

/// Which kind of read a request is, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// `GET /<key>`.
    Key,
    /// `GET /` with a listing.
    List,
    /// A watch.
    Watch,
}

/// The query of `GET /`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootQuery {
    prefix: Option<String>,
    limit: Option<String>,
    watch: Option<String>,
    last_event_id: Option<String>,
}

/// The part of a `GET /<key>` query that matters; anything else is ignored, as in 0.1.
#[derive(Debug, Default, Deserialize)]
struct KeyQuery {
    watch: Option<String>,
    last_event_id: Option<String>,
}

/// Serves a `GET` (or `HEAD`); returns the kind of read along with the answer.
pub(crate) async fn read(
    state: &SafeState,
    shutdown: &Shutdown,
    uri: &Uri,
    headers: &HeaderMap,
) -> (Read, Result<Response>) {
    let key = match key_of(uri) {
        Ok(key) => key,
        Err(error) => return (Read::Key, Err(error)),
    };
    if key.is_empty() {
        let query = match parse::<RootQuery>(uri) {
            Ok(query) => query,
            Err(error) => return (Read::List, Err(error)),
        };
        let prefix = query.prefix.unwrap_or_default().into_bytes();
        let watching = match is_on(query.watch.as_deref()) {
            Ok(watching) => watching,
            Err(error) => return (Read::Watch, Err(error)),
        };
        if watching {
            let result = if query.limit.is_some() {
                Err(Error::BadQuery(
                    "limit applies to listings, not to watches".to_owned(),
                ))
            } else {
                resume_point(headers, query.last_event_id.as_deref()).and_then(|resume| {
                    watch(
                        state.clone(),
                        Filter::Prefix(prefix),
                        resume,
                        shutdown.clone(),
                    )
                })
            };
            return (Read::Watch, result);
        }
        let result = match limit(query.limit.as_deref()) {
            Ok(_) if query.last_event_id.is_some() => Err(Error::BadQuery(
                "last_event_id applies to watches (add watch=true)".to_owned(),
            )),
            Ok(limit) => Box::pin(list(state, prefix, limit)).await,
            Err(error) => Err(error),
        };
        return (Read::List, result);
    }
    let query = parse::<KeyQuery>(uri).unwrap_or_default();
    match is_on(query.watch.as_deref()) {
        Ok(true) => {
            let result = resume_point(headers, query.last_event_id.as_deref()).and_then(|resume| {
                watch(
                    state.clone(),
                    Filter::Key(key.as_bytes().to_vec()),
                    resume,
                    shutdown.clone(),
                )
            });
            (Read::Watch, result)
        }
        Ok(false) => (Read::Key, get(state, &key)),
        Err(error) => (Read::Watch, Err(error)),
    }
}

/// `GET /<key>`: the stored entry, or 404.
fn get(state: &SafeState, key: &str) -> Result<Response> {
    let entry = state
        .get(&key)
        .ok_or_else(|| Error::NotFound(key.to_owned()))?;
    Ok(json(StatusCode::OK, entry))
}

/// The live entries under `prefix`, in key order, at most `limit` of them.
async fn list(state: &SafeState, prefix: Vec<u8>, limit: Option<usize>) -> Result<Response> {
    // Read before listing: a watch from this point may repeat a change, never miss one.
    let point = state.head();
    let state = state.clone();
    // A listing walks the whole state: keep it off the async workers.
    let listed = tokio::task::spawn_blocking(move || state.list(&prefix, limit))
        .await
        .map_err(|error| Error::Internal(error.to_string()))??;
    let mut response = json(StatusCode::OK, listed);
    response.headers_mut().insert(
        HeaderName::from_static(LISTING_POINT_HEADER),
        HeaderValue::from_str(&event_id::format(point))
            .map_err(|error| Error::Internal(error.to_string()))?,
    );
    Ok(response)
}

/// The query parameters of `uri` as `T`.
fn parse<T: serde::de::DeserializeOwned + Default>(uri: &Uri) -> Result<T> {
    if uri.query().is_none() {
        return Ok(T::default());
    }
    Query::<T>::try_from_uri(uri)
        .map(|Query(query)| query)
        .map_err(|rejection| Error::BadQuery(rejection.body_text()))
}

/// Whether a flag parameter is set: absent or `false`/`0` is off; `true`, `1` or a
/// bare `?watch` is on.
fn is_on(value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("false" | "0") => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some(other) => Err(Error::BadQuery(format!(
            "watch must be true or false, got {other:?}"
        ))),
    }
}

/// The `limit` parameter: a positive integer.
fn limit(value: Option<&str>) -> Result<Option<usize>> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.parse::<usize>() {
        Ok(limit) if limit > 0 => Ok(Some(limit)),
        _ => Err(Error::BadQuery(format!(
            "limit must be a positive integer, got {value:?}"
        ))),
    }
}

/// Where a watch resumes: the `Last-Event-ID` header (sent by reconnecting
/// `EventSource`s, so newer than the URL's), else the `last_event_id` parameter.
fn resume_point(headers: &HeaderMap, parameter: Option<&str>) -> Result<Option<u64>> {
    let header = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("?").trim());
    let Some(value) = header.or(parameter) else {
        return Ok(None);
    };
    if value.is_empty() {
        // EventSource sends an empty Last-Event-ID before it has seen an id.
        return Ok(None);
    }
    event_id::parse(value).map(Some).ok_or_else(|| {
        Error::BadQuery(format!(
            "Last-Event-ID (or last_event_id) must be an event id this agent sent \
             (`<run>-<point>`, or a bare point), got {value:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_positive_integers() {
        assert_eq!(limit(None).unwrap(), None);
        assert_eq!(limit(Some("10")).unwrap(), Some(10));
        for bad in ["0", "-1", "ten", "", "1.5"] {
            let message = limit(Some(bad)).unwrap_err().to_string();
            assert!(
                message.contains("limit must be a positive integer"),
                "{message}"
            );
        }
    }

    #[test]
    fn flags_accept_the_usual_spellings() {
        assert!(!is_on(None).unwrap());
        assert!(!is_on(Some("false")).unwrap());
        assert!(is_on(Some("")).unwrap());
        assert!(is_on(Some("true")).unwrap());
        assert!(is_on(Some("yes")).is_err());
    }

    #[test]
    fn the_header_wins_over_the_parameter() {
        let mut headers = HeaderMap::new();
        assert_eq!(resume_point(&headers, Some("5")).unwrap(), Some(5));
        headers.insert("last-event-id", HeaderValue::from_static("9"));
        assert_eq!(resume_point(&headers, Some("5")).unwrap(), Some(9));
        headers.insert("last-event-id", HeaderValue::from_static(""));
        assert_eq!(resume_point(&headers, None).unwrap(), None);
        headers.insert("last-event-id", HeaderValue::from_static("x"));
        assert!(resume_point(&headers, None).is_err());
    }

    #[test]
    fn unknown_root_parameters_are_named() {
        let uri: Uri = "/?prefx=a".parse().unwrap();
        let message = parse::<RootQuery>(&uri).unwrap_err().to_string();
        assert!(message.contains("prefx"), "{message}");
        let uri: Uri = "/cat?cache=1&watch=true".parse().unwrap();
        assert_eq!(
            parse::<KeyQuery>(&uri).unwrap().watch.as_deref(),
            Some("true")
        );
    }
}
