//! c19's multi-process tests and benchmarks.
//!
//! The harness they use (agents as real processes on free loopback ports, polling,
//! links that cut and heal, test certificates) lives in the publishable `c19-testkit`
//! crate, re-exported here under its old paths. Integration tests in this package get
//! the agent binary with [`agent_bin!`]; other packages pass any `c19` binary path to
//! the testkit directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bench;

pub use c19_testkit::{fixtures, harness, pki, proxy, sse};
pub use harness::{Cluster, ClusterBuilder, Node, free_port, http, wait_until};

/// The path of the `c19-agent` binary that cargo built for this package's tests.
#[macro_export]
macro_rules! agent_bin {
    () => {
        ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_c19-agent"))
    };
}
