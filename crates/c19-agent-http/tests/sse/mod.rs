//! The Server-Sent Events reader of `c19-testkit`, under the names these tests use.
#![allow(unused_imports)]

pub use c19_testkit::sse::{SseEvent, SseStream as Events};
