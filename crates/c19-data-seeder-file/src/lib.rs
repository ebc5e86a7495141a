//! The `File` data seeder of c19: loads a state's initial data from a file.
//!
//! ```yaml
//! state:
//!   kind: Default
//!   data_seeder:
//!     kind: File
//!     filename: data.json
//! ```
//!
//! The file holds data in the format the state's `set` accepts (for the `Default`
//! state, a JSON map in the agent's `PUT` format). The seeder only reads it; the state
//! validates it, and a missing or malformed file stops start-up with an error naming the
//! file. A relative `filename` is relative to the agent's working directory, as in 0.1.

use std::path::PathBuf;

use c19_core::{
    DataSeeder, DataSeederConfig, LayerContext, SeedError,
    reexports::{bytes::Bytes, futures::future::BoxFuture},
};
use serde::{Deserialize, Serialize};

/// The configuration of the `File` seeder: which file to load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDataSeederConfig {
    /// The file to load.
    pub filename: PathBuf,
}

#[typetag::serde(name = "File")]
impl DataSeederConfig for FileDataSeederConfig {
    fn build<'a>(
        &'a self,
        _cx: &'a LayerContext,
    ) -> BoxFuture<'a, Result<Box<dyn DataSeeder>, SeedError>> {
        Box::pin(async move {
            Ok(Box::new(FileDataSeeder {
                filename: self.filename.clone(),
            }) as Box<dyn DataSeeder>)
        })
    }
}

/// Loads the initial data from a file.
#[derive(Debug, Clone)]
pub struct FileDataSeeder {
    /// The file to load.
    pub filename: PathBuf,
}

impl DataSeeder for FileDataSeeder {
    fn load(&self) -> BoxFuture<'_, Result<Bytes, SeedError>> {
        Box::pin(async move {
            let data = tokio::fs::read(&self.filename)
                .await
                .map_err(|source| SeedError::Read {
                    path: self.source_name(),
                    source,
                })?;
            tracing::debug!(file = %self.filename.display(), bytes = data.len(), "loaded seed data");
            Ok(Bytes::from(data))
        })
    }

    fn source_name(&self) -> String {
        self.filename.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        std::fs::write(&path, br#"{"cat":{"value":"garfield"}}"#).unwrap();
        let seeder = FileDataSeeder { filename: path };
        assert_eq!(
            &seeder.load().await.unwrap()[..],
            br#"{"cat":{"value":"garfield"}}"#
        );
    }

    #[tokio::test]
    async fn a_missing_file_is_named() {
        let seeder = FileDataSeeder {
            filename: "/nonexistent/seed.json".into(),
        };
        let error = seeder.load().await.unwrap_err().to_string();
        assert!(error.contains("/nonexistent/seed.json"), "{error}");
    }
}
