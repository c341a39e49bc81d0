//! Sympozium memory server: persistent, searchable memory for an agent instance.
//!
//! SQLite (WAL, `synchronous=FULL`) with an FTS5 external-content index, behind the original memory server's HTTP
//! API (`/health`, `/search`, `/store`, `/list`) plus `/memories/{id}` (get, update,
//! delete), exact tag filters and pagination. [`MemoryClient`] speaks that API.
//!
//! Feature `server` (default) builds the server; without it (`default-features = false`) the
//! crate is only [`client`] and [`types`], with no SQLite, axum or telemetry.
//!
//! Modules: [`schema`] (opening safely, migrations), [`query`] (FTS5 query building),
//! [`store`] (database operations), [`search`] (ranking stages), [`http`] (routes), [`client`], [`seeds`], [`config`].

pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod query;
#[cfg(feature = "server")]
pub mod schema;
#[cfg(feature = "server")]
pub mod search;
#[cfg(feature = "server")]
pub mod seeds;
#[cfg(feature = "server")]
pub mod store;
pub mod types;

#[cfg(feature = "server")]
use std::future::Future;
#[cfg(feature = "server")]
use std::net::SocketAddr;

pub use client::{ClientError, MemoryClient};
#[cfg(feature = "server")]
pub use config::{Config, Limits};
#[cfg(feature = "server")]
pub use error::{MemoryError, Result};
#[cfg(feature = "server")]
pub use store::{Stats, Store};
pub use types::{Deleted, Entry, Envelope, ListQuery, SearchRequest, StoreRequest, Stored, UpdateRequest};

#[cfg(feature = "server")]
/// A memory server whose database is open, seeds imported and socket bound, ready to serve.
pub struct Server {
    store: Store,
    token: Option<String>,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

#[cfg(feature = "server")]
impl Server {
    /// Opens the database, imports seeds (a missing or unreadable seeds file is logged and
    /// skipped), and binds the listening socket.
    pub async fn bind(config: &Config) -> Result<Self> {
        let store = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                Store::open(&config.db_path, config.limits(), config.startup_check, config.readers)
            })
            .await
            .map_err(|e| MemoryError::Task(e.to_string()))??
        };
        if let Some(path) = config.seeds_file() {
            // Seeds are a convenience: a missing or unreadable file must not keep the agent's
            // memory (and every run that depends on it) down, so it is reported and skipped.
            match seeds::read_seeds(path) {
                Ok(seeds) => {
                    let total = seeds.len();
                    let imported = store.import_seeds(seeds).await?;
                    tracing::info!(total, imported, path = %path.display(), "seeds imported");
                }
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "seeds file skipped; starting without seeds");
                }
            }
        }
        let wanted = SocketAddr::new(config.bind, config.port);
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .map_err(|source| MemoryError::Bind { addr: wanted, source })?;
        let addr = listener.local_addr().map_err(|source| MemoryError::Bind { addr: wanted, source })?;
        let token = config.token().map(str::to_string);
        if token.is_none() {
            tracing::warn!(
                "MEMORY_AUTH_TOKEN is not set: every client that reaches this server can read and write it"
            );
        }
        Ok(Self { store, token, listener, addr })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then checkpoints the WAL.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let app = http::router_with_token(self.store.clone(), self.token.clone());
        tracing::info!(addr = %self.addr, "memory server listening");
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| MemoryError::Bind { addr: self.addr, source })?;
        self.store.checkpoint().await?;
        tracing::info!("memory server stopped");
        Ok(())
    }
}
