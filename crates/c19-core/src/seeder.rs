//! Data seeders: load initial data into a state when it starts.

use std::fmt::Debug;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::BoxError;

/// Why a data seeder could not load its data.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The data is not in the state's format.
    #[error("{source_name}: {message}")]
    Invalid {
        /// Where the data came from (a file name, a URL).
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A failure specific to the seeder implementation.
    #[error("{0}")]
    Other(#[source] BoxError),
}

/// The DataSeeder trait: produces the initial data of a state.
#[typetag::serde(tag = "kind")]
pub trait DataSeeder: Debug + Send + Sync {
    /// Loads the data, in the format the state's `set` accepts.
    fn load(&self) -> BoxFuture<'_, Result<Bytes, SeedError>>;

    /// A name for the data's origin in error messages (a file name, a URL).
    fn source_name(&self) -> String;
}
