//! The agent's listener: a cap on open connections, an idle timeout on each, and
//! optionally TLS. It lives in [`c19_serve`], which the peer port of the Default
//! connection shares; see [`c19_serve::listener`] for how the idle timeout works.

pub use c19_serve::listener::{Connection, LimitedListener, StreamControl};
