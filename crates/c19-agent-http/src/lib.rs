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
//! ```
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
//!
//! Every error is JSON, `{"error": "<what is wrong>"}`.

mod agent;
pub mod error;
pub mod listener;
mod routes;

pub use agent::{HttpAgent, serve};
pub use error::{Error, Result};
pub use routes::router;
