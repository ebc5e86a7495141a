//! The `Default` agent layer of c19: serves the shared key/value state to the
//! application next to it over HTTP.
//!
//! ```yaml
//! agent:
//!   kind: Default
//!   address: 0.0.0.0      # bind IP
//!   port: 3097
//!   body_limit: 16777216  # bytes; larger PUT bodies get 413
//!   max_connections: 4096 # more wait to be accepted
//!   idle_timeout: 60000   # ms a connection or a body may stay silent
//!   auth:                 # optional: bearer tokens on every request
//!     tokens_file: /etc/c19/tokens  # one token a line; "TOKEN read" makes it read-only
//!     reload_interval: 5000         # ms between checks of the file for changes
//!   tls:                  # optional: HTTPS on the agent port
//!     cert: /etc/c19/tls/tls.crt
//!     key: /etc/c19/tls/tls.key
//!     ca: /etc/c19/tls/ca.crt       # optional: clients must present a certificate
//! ```
//!
//! # HTTPS
//!
//! With `tls` ([`AgentTls`]), the port speaks only TLS; with `tls.ca`, clients must present
//! a certificate that chains to it. Handshakes run off the accept loop; refusals are
//! counted in `c19_agent_refused_total{reason}`. The files are reloaded when they change.
//!
//! # Bearer tokens
//!
//! With `auth`, every request needs `Authorization: Bearer <token>` with a token of
//! the tokens file ([`auth`] has its format). A missing token gets `401` with
//! `WWW-Authenticate: Bearer realm="c19"`, an unknown one `401` with
//! `error="invalid_token"` added, and a read-only token on `PUT` or `DELETE` `403`; reads
//! (`GET`, `HEAD`, listings, watches) need any token, and a watch checks it when it
//! opens. The check comes before the body is read. The file is checked for changes every
//! `reload_interval` ms and a change applies without a restart; a change that makes it
//! unusable (unreadable, malformed, empty) keeps the previous tokens and logs a warning.
//! At start-up an unusable file stops the agent ([`HttpAgentConfig::check_files`] reports the
//! same problem without starting). Refusals are counted in
//! `c19_agent_auth_refused_total{reason}` (`missing_token`, `unknown_token`,
//! `read_only`).
//!
//! Without `auth` the agent is open: fine for a sidecar on 127.0.0.1. The telemetry
//! port stays unauthenticated and exposes no values.
//!
//! # API
//!
//! - `GET /<key>` → `200` with the entry as JSON, `{"value":...,"ts":...,"ttl":...}`;
//!   `404` when the key is absent, deleted or expired. The key is the whole path,
//!   percent-decoded: `GET /users/42`, `GET /a%2Fb` (key `a/b`).
//! - `PUT /` with a JSON map, `{"cat": {"value": "garfield", "ttl": 20000}}` → `204`
//!   once applied: a `GET` right after it returns the new value. A malformed batch gets
//!   `400` and none of it is applied.
//! - `DELETE /<key>` → `204`; the delete wins over older values on every peer.
//! - `GET /?prefix=P&limit=N` → `200` with the live entries under `P` (all without
//!   `prefix`) in key order, at most `N` (a positive integer), as a map in the `PUT`
//!   format. The `c19-last-event-id` header says which point of the state's history
//!   the listing shows.
//! - `GET /?watch=true&prefix=P` and `GET /<key>?watch=true` → a Server-Sent Events
//!   stream, one event per change (local or from peers): `id` is `<run>-<point>` (the
//!   change's point, qualified by a token of this run of the agent), data the entry with
//!   its key, `{"key":"cat","value":"garfield","ts":...,"ttl":null}`
//!   (deletions carry `"deleted":true`). A value whose TTL ran out is an event too when
//!   this agent's state sweeps it (every `purge_interval`), shaped like a deletion with
//!   `"expired":true` and the expired write's `ts` and `ttl`:
//!   `{"key":"cat","value":null,"ts":...,"ttl":100,"expired":true}`. The value is left
//!   out, as a deletion's is: the key holds nothing now. Each agent expires values on its
//!   own clock, so the event is local (never gossiped as a delete) and live only: a
//!   replay does not repeat it. `Last-Event-ID: <id>` (or `last_event_id=<id>`)
//!   first replays what changed after it; an id of an earlier run replays everything. A watcher that falls more than the state's
//!   `watch_buffer` behind gets a final `event: error` and can resume from its id.
//!
//! Requests are counted in `c19_agent_requests_total{route,method,status}` and timed in
//! `c19_agent_request_duration_seconds{route}` (routes `key`, `root`, `watch`).
//!
//! Every error is JSON, `{"error": "<what is wrong>"}`.

mod agent;
pub mod auth;
pub mod error;
mod event_id;
pub mod listener;
mod reads;
mod refusal;
mod request_metrics;
mod routes;
mod service;
mod tls;
mod watch;
mod writes;

pub use agent::{HttpAgent, HttpAgentConfig, serve};
pub use auth::AuthConfig;
pub use error::{Error, Result};
pub use reads::LISTING_POINT_HEADER;
pub use routes::{router, router_until};
pub use tls::AgentTls;
