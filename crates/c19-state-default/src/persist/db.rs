//! The database file: opening it (with the start-up errors a user can act on), loading
//! it, and committing the writer's operations.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
};

use c19_core::StateError;
use redb::{DatabaseError, ReadableDatabase, ReadableTable, StorageError, TableDefinition};

use super::{OnCorruption, Persistence};
use crate::record::Record;

/// Each key (its bytes) to its wire entry (`{"value":...,"ts":...,"ttl":...}`).
const ENTRIES: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("entries");

/// The exchange bookkeeping: `last_sync` and `horizon` (see `exchange::meta`).
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// The file's name in `persistence.path`.
pub const FILE_NAME: &str = "state.redb";

/// How many entries one loaded batch holds (bounds the memory a load takes beside the
/// store it fills).
const LOAD_BATCH: usize = 65_536;

/// An open database file.
pub(crate) struct Database {
    db: redb::Database,
    file: PathBuf,
}

/// What a load found besides the entries.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Loaded {
    /// Entries read.
    pub entries: usize,
    /// When (ms) this agent last completed an exchange; 0: never.
    pub last_sync: u64,
    /// Its tombstone horizon (ms).
    pub horizon: u64,
}

/// Why a file could not be opened.
enum OpenError {
    /// The file is not a database or is damaged.
    Damaged(String),
    /// Anything else (in use, unreadable, read-only, full).
    Other(String),
}

fn storage(message: String) -> StateError {
    StateError::Storage(message)
}

impl Database {
    /// Opens (or creates) the database of `settings`. A damaged file is a start-up
    /// error, or with `on_corruption: resync` is moved aside for a new, empty one.
    pub fn open(settings: &Persistence) -> Result<Self, StateError> {
        let dir = &settings.path;
        fs::create_dir_all(dir).map_err(|error| {
            storage(format!(
                "persistence: cannot create the directory {}: {error}",
                dir.display()
            ))
        })?;
        let file = dir.join(FILE_NAME);
        match Self::open_file(&file) {
            Ok(db) => Ok(db),
            Err(OpenError::Damaged(problem)) if settings.on_corruption == OnCorruption::Resync => {
                let aside = dir.join(format!("{FILE_NAME}.damaged-{}", c19_core::clock::now_ms()));
                fs::rename(&file, &aside).map_err(|error| {
                    storage(format!(
                        "persistence: {} is damaged ({problem}) and cannot be moved aside: {error}",
                        file.display()
                    ))
                })?;
                tracing::warn!(
                    file = %file.display(),
                    moved_to = %aside.display(),
                    %problem,
                    "persistence: the database is damaged; moved it aside and starting empty (on_corruption: resync), the peers fill this agent"
                );
                Self::open_file(&file).map_err(|error| match error {
                    OpenError::Damaged(message) | OpenError::Other(message) => storage(message),
                })
            }
            Err(OpenError::Damaged(problem)) => Err(storage(format!(
                "persistence: {} is damaged or not a c19 database ({problem}); move it aside to start empty, or set persistence.on_corruption: resync",
                file.display()
            ))),
            Err(OpenError::Other(message)) => Err(storage(message)),
        }
    }

    /// Opens `file` again after a failure (the writer's retry).
    pub fn reopen(file: &Path) -> Result<Self, StateError> {
        Self::open_file(file).map_err(|error| match error {
            OpenError::Damaged(message) | OpenError::Other(message) => storage(message),
        })
    }

    /// The file's path.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn open_file(file: &Path) -> Result<Self, OpenError> {
        let shown = file.display();
        let db = redb::Database::builder()
            // A file changed outside redb must be reported, not trusted.
            .set_check_integrity_on_open(true)
            .create(file)
            .map_err(|error| match error {
                DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                    OpenError::Other(format!(
                        "persistence: {shown} is in use by another process (another agent with the same persistence.path?)"
                    ))
                }
                DatabaseError::Storage(StorageError::Corrupted(problem)) => {
                    OpenError::Damaged(problem)
                }
                DatabaseError::Storage(StorageError::Io(error))
                    if error.kind() == io::ErrorKind::InvalidData =>
                {
                    OpenError::Damaged(error.to_string())
                }
                DatabaseError::UpgradeRequired(version) => OpenError::Damaged(format!(
                    "written in file format {version}, which this version cannot read"
                )),
                other => OpenError::Other(format!("persistence: cannot open {shown}: {other}")),
            })?;
        let database = Self {
            db,
            file: file.to_owned(),
        };
        // Creates the tables, and finds a read-only or full disk now rather than at
        // the first write.
        database
            .commit(&HashMap::new(), None)
            .map_err(|error| match error {
                StateError::Storage(message) => OpenError::Other(message),
                other => OpenError::Other(other.to_string()),
            })?;
        Ok(database)
    }

    /// Reads every entry, in batches of the format `set` accepts (`{"key": entry, ...}`),
    /// handing each to `each`.
    pub fn load(
        &self,
        mut each: impl FnMut(&[u8]) -> Result<(), StateError>,
    ) -> Result<Loaded, StateError> {
        let failed = |error: &dyn std::fmt::Display| {
            storage(format!(
                "persistence: cannot read {}: {error}",
                self.file.display()
            ))
        };
        let read = self.db.begin_read().map_err(|error| failed(&error))?;
        let meta = read.open_table(META).map_err(|error| failed(&error))?;
        let number = |name: &str| -> Result<u64, StateError> {
            Ok(meta
                .get(name)
                .map_err(|error| failed(&error))?
                .map(|value| value.value())
                .unwrap_or_default())
        };
        let mut loaded = Loaded {
            last_sync: number("last_sync")?,
            horizon: number("horizon")?,
            ..Loaded::default()
        };
        let entries = read.open_table(ENTRIES).map_err(|error| failed(&error))?;
        let mut batch = Vec::with_capacity(1 << 20);
        let mut in_batch = 0;
        for row in entries.iter().map_err(|error| failed(&error))? {
            let (key, entry) = row.map_err(|error| failed(&error))?;
            let Ok(key) = std::str::from_utf8(key.value()) else {
                continue;
            };
            batch.push(if in_batch == 0 { b'{' } else { b',' });
            // Writing a string to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut batch, key);
            batch.push(b':');
            batch.extend_from_slice(entry.value());
            in_batch += 1;
            loaded.entries += 1;
            if in_batch == LOAD_BATCH {
                batch.push(b'}');
                each(&batch)?;
                batch.clear();
                in_batch = 0;
            }
        }
        if in_batch > 0 {
            batch.push(b'}');
            each(&batch)?;
        }
        Ok(loaded)
    }

    /// Removes `keys` (dead entries found by a load).
    pub fn remove(&self, keys: Vec<Box<[u8]>>) -> Result<(), StateError> {
        let ops = keys.into_iter().map(|key| (key, None)).collect();
        self.commit(&ops, None)
    }

    /// Applies `ops` (a record to store, or `None` to remove the key) and `meta`
    /// (`last_sync`, `horizon`) in one durable transaction.
    pub fn commit(
        &self,
        ops: &HashMap<Box<[u8]>, Option<Record>>,
        meta: Option<(u64, u64)>,
    ) -> Result<(), StateError> {
        self.try_commit(ops, meta).map_err(|error| {
            storage(format!(
                "persistence: cannot write {}: {error}",
                self.file.display()
            ))
        })
    }

    fn try_commit(
        &self,
        ops: &HashMap<Box<[u8]>, Option<Record>>,
        meta: Option<(u64, u64)>,
    ) -> Result<(), redb::Error> {
        // In key order: neighbouring inserts touch the same pages.
        let mut sorted: Vec<_> = ops.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let transaction = self.db.begin_write()?;
        {
            let mut entries = transaction.open_table(ENTRIES)?;
            for (key, op) in sorted {
                match op {
                    Some(record) => {
                        entries.insert(&**key, record.entry())?;
                    }
                    None => {
                        entries.remove(&**key)?;
                    }
                }
            }
            let mut table = transaction.open_table(META)?;
            if let Some((last_sync, horizon)) = meta {
                table.insert("last_sync", last_sync)?;
                table.insert("horizon", horizon)?;
            }
        }
        transaction.commit()?;
        Ok(())
    }
}
