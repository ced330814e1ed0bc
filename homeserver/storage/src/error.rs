//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in storage.
///
/// `Clone` because one failed group commit has to be reported to every
/// writer whose batch was part of that group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The database directory is locked, almost always by a second server
    /// instance pointed at the same data directory.
    #[error("database at {} is already in use by another process", path.display())]
    Locked { path: PathBuf },

    /// Filesystem-level failure (creating the directory, disk errors).
    #[error("storage I/O error: {0}")]
    Io(String),

    /// Any other failure reported by the backend engine.
    #[error("storage engine error: {0}")]
    Engine(String),

    /// Stored bytes could not be decoded into the expected type.
    #[error("corrupt data in storage: {0}")]
    Corrupt(String),

    /// A value could not be serialized for storage.
    #[error("cannot encode value for storage: {0}")]
    Encode(String),

    /// The database was written by a newer build; opening it could corrupt it.
    #[error(
        "database schema version {found} is newer than the {supported} this build supports; \
         refusing to open it (downgrades are not supported)"
    )]
    SchemaTooNew { found: u64, supported: u64 },

    /// A migration failed; the schema version stays at the last one that
    /// succeeded so the next start retries from there.
    #[error("migration to schema version {to_version} ({name}) failed: {source}")]
    Migration {
        to_version: u64,
        name: &'static str,
        source: Box<Error>,
    },

    /// A table name that the engine was not opened with.
    #[error("unknown table `{0}`")]
    UnknownTable(String),

    /// The catalog handed to `Database::open_*` is inconsistent.
    #[error("invalid storage catalog: {0}")]
    InvalidCatalog(String),

    /// The engine is shutting down or its commit thread is gone.
    #[error("database is closed")]
    Closed,
}

pub type Result<T> = std::result::Result<T, Error>;
