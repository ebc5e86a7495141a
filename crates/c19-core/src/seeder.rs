//! Data seeders: load initial data into a state when it starts.

use std::fmt::Debug;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::{BoxError, layer::LayerContext};

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

/// The configuration of a data seeder kind, selected in YAML by `kind:`.
///
/// It is plain data; [`DataSeederConfig::build`] makes the live [`DataSeeder`].
#[typetag::serde(tag = "kind")]
pub trait DataSeederConfig: Debug + Send + Sync {
    /// Builds the seeder (it loads nothing yet: the state calls [`DataSeeder::load`]).
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
    ) -> BoxFuture<'a, Result<Box<dyn DataSeeder>, SeedError>>;
}

/// The live data seeder: produces the initial data of a state.
pub trait DataSeeder: Debug + Send + Sync {
    /// Loads the data, in the format the state's `set` accepts.
    fn load(&self) -> BoxFuture<'_, Result<Bytes, SeedError>>;

    /// A name for the data's origin in error messages (a file name, a URL).
    fn source_name(&self) -> String;
}
