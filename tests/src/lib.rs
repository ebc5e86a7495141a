//! Harness for c19's multi-process tests: start agents as real processes on free
//! loopback ports, wait for them by polling, stop, pause and restart them.
//!
//! Integration tests in this package get the agent binary with [`agent_bin!`]; other
//! packages can pass any `c19` binary path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bench;
pub mod harness;
pub mod pki;
pub mod proxy;

pub use harness::{Cluster, ClusterBuilder, Node, free_port, http, wait_until};

/// The path of the `c19-agent` binary that cargo built for this package's tests.
#[macro_export]
macro_rules! agent_bin {
    () => {
        ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_c19-agent"))
    };
}
