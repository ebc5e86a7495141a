//! The c19 agent binary, as a library so that other binaries (and the test suite) can
//! run the same command line.
//!
//! Each layer crate is linked only when its cargo feature is on. A crate that is a
//! dependency but never named is not linked, and its typetag registrations would vanish,
//! hence the `use ... as _` lines below.

#[cfg(feature = "agent-http")]
use c19_agent_http as _;
#[cfg(feature = "connection-default")]
use c19_connection_default as _;
#[cfg(feature = "data-seeder-file")]
use c19_data_seeder_file as _;
#[cfg(feature = "peer-provider-dns")]
use c19_peer_provider_dns as _;
#[cfg(feature = "peer-provider-k8s")]
use c19_peer_provider_k8s as _;
#[cfg(feature = "peer-provider-static")]
use c19_peer_provider_static as _;
#[cfg(feature = "state-default")]
use c19_state_default as _;

mod board;
pub mod certs;
mod cli;
mod http;
pub mod kv;
pub mod status;
mod telemetry;

/// The process's allocator. Under glibc malloc an agent kept hundreds of MB after peers
/// pushed it a bulk load (many threads merging large batches at once, each in its own
/// arena, freed pages seldom given back). mimalloc returned them only to threads that
/// kept allocating, so an agent idle after a burst held twice its data for good; jemalloc
/// with its background thread (started in [`main`]) returns freed pages on a timer.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub use cli::{Cli, Command, LogFormat, main};
