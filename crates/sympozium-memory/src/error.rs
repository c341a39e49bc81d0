//! Errors of the memory store and server.

use std::path::PathBuf;

/// Everything that can go wrong inside the memory server library.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The request was malformed or a field was invalid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No memory with this id exists.
    #[error("memory {0} not found")]
    NotFound(i64),
    /// A configured size limit would be exceeded; the message names the limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// The database file at the configured path cannot be used (foreign, corrupt, newer schema).
    /// Nothing was written to it.
    #[error("refusing to use {path}: {reason}")]
    UnusableDatabase {
        /// The configured database path.
        path: PathBuf,
        /// Why the file was rejected.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// A blocking database task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

/// Shorthand result type of this crate.
pub type Result<T, E = MemoryError> = std::result::Result<T, E>;
