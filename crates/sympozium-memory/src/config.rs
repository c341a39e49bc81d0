//! Typed configuration of the memory server. Parsed from flags and environment in `main.rs`.

use std::net::IpAddr;
use std::path::PathBuf;

/// Size limits a user can set; `0` disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of stored memories.
    pub max_entries: u64,
    /// Maximum bytes of one memory (content plus tags).
    pub max_entry_bytes: u64,
    /// Maximum bytes of all memories together (content plus tags).
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 0,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

/// Default per-memory limit: 64 KiB.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 64 * 1024;
/// Default total limit: 256 MiB (the per-instance PVC is 1 GiB; the FTS index and WAL need room).
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// Server configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "sympozium-memory-server",
    version,
    about = "Sympozium memory server: SQLite + FTS5 behind a small HTTP API"
)]
pub struct Config {
    /// TCP port to listen on (0 picks a free port; the address is printed on stdout).
    #[arg(long, env = "MEMORY_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "MEMORY_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// SQLite database file (created if absent; a foreign or corrupt file is refused, never overwritten).
    #[arg(long, env = "MEMORY_DB_PATH", default_value = "/data/memory.db")]
    pub db_path: PathBuf,
    /// Markdown list of seed memories (`- seed` per item), each imported exactly once, tagged `seed`.
    #[arg(long, env = "MEMORY_SEEDS_PATH")]
    pub seeds_path: Option<PathBuf>,
    /// Maximum number of memories (0 = unlimited).
    #[arg(long, env = "MEMORY_MAX_ENTRIES", default_value_t = 0)]
    pub max_entries: u64,
    /// Maximum bytes of one memory, content plus tags (0 = unlimited).
    #[arg(long, env = "MEMORY_MAX_ENTRY_BYTES", default_value_t = DEFAULT_MAX_ENTRY_BYTES)]
    pub max_entry_bytes: u64,
    /// Maximum bytes of all memories together (0 = unlimited).
    #[arg(long, env = "MEMORY_MAX_TOTAL_BYTES", default_value_t = DEFAULT_MAX_TOTAL_BYTES)]
    pub max_total_bytes: u64,
    /// Run `PRAGMA quick_check` at start-up and refuse a corrupt database.
    #[arg(long, env = "MEMORY_STARTUP_CHECK", default_value_t = true, action = clap::ArgAction::Set)]
    pub startup_check: bool,
    /// Number of pooled read connections.
    #[arg(long, env = "MEMORY_READERS", default_value_t = 4)]
    pub readers: usize,
    /// Bearer token every request except `GET /health` must carry
    /// (`Authorization: Bearer <token>`). The instance controller sets it from the
    /// instance's `<instance>-memory-token` Secret; unset, the server answers anyone (for
    /// local use only) and says so in its log.
    #[arg(long, env = "MEMORY_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
}

impl Config {
    /// The configured limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_entries: self.max_entries,
            max_entry_bytes: self.max_entry_bytes,
            max_total_bytes: self.max_total_bytes,
        }
    }

    /// The required bearer token, treating an empty value as unset.
    pub fn token(&self) -> Option<&str> {
        self.auth_token.as_deref().map(str::trim).filter(|t| !t.is_empty())
    }

    /// The seeds file, treating an empty value as unset.
    pub fn seeds_file(&self) -> Option<&std::path::Path> {
        self.seeds_path.as_deref().filter(|p| !p.as_os_str().is_empty())
    }
}
