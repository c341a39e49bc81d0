//! Sympozium's validating admission webhook: AgentRuns are checked against the
//! SympoziumPolicy of their instance when they are created (and when their spec changes),
//! so a run a policy forbids is refused at `kubectl apply` time with a message naming the
//! rule; AgentRuns, SkillPacks, instances and PersonaPacks that would give a run RBAC the
//! requesting user does not hold are refused too ([`escalation`]). The decision is a pure function ([`decide`]); [`server`] serves it over TLS
//! ([`tls`]).

pub mod access;
pub mod decide;
pub mod escalation;
pub mod instance;
pub mod quantity;
pub mod secret_reads;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors that stop the webhook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable cluster configuration.
    #[error("kubernetes configuration: {0}")]
    Config(#[from] sympozium_kube::process::KubeConfigError),
    /// The Kubernetes client could not be built from the configuration.
    #[error("kubernetes configuration: {0}")]
    Client(#[source] kube::Error),
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The server could not listen.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The webhook's settings (from flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to serve HTTPS on.
    pub bind: SocketAddr,
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Generate a CA and serving certificate for these hosts when the files are missing
    /// (the CA is written next to the certificate as `ca.crt`).
    pub generate_for: Vec<String>,
    /// Kubeconfig; in-cluster configuration when unset.
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the built-in SkillPacks.
    pub system_namespace: String,
}

async fn client(config: &Config) -> Result<kube::Client, Error> {
    let kube_config = sympozium_kube::process::kube_config(config.kubeconfig.as_deref()).await?;
    kube::Client::try_from(kube_config).map_err(Error::Client)
}

fn read(path: &PathBuf) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::File { path: path.clone(), source })
}

fn write(path: &PathBuf, data: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::File { path: dir.to_path_buf(), source })?;
    }
    std::fs::write(path, data).map_err(|source| Error::File { path: path.clone(), source })
}

/// Loads (or first generates) the serving certificate.
pub fn load_tls(config: &Config) -> Result<std::sync::Arc<rustls::ServerConfig>, Error> {
    let present = config.cert_file.exists() && config.key_file.exists();
    if !config.generate_for.is_empty() && !present {
        let generated = tls::generate(&config.generate_for)?;
        write(&config.cert_file, &generated.cert_pem)?;
        write(&config.key_file, &generated.key_pem)?;
        let ca = config.cert_file.with_file_name("ca.crt");
        write(&ca, &generated.ca_pem)?;
        tracing::info!(ca = %ca.display(), hosts = ?config.generate_for, "generated a serving certificate");
    }
    Ok(tls::server_config(&read(&config.cert_file)?, &read(&config.key_file)?)?)
}

/// Runs the webhook until SIGINT/SIGTERM.
pub async fn run(config: Config) -> Result<(), Error> {
    let tls = load_tls(&config)?;
    let client = client(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| Error::Listen { addr: config.bind, source })?;
    tracing::info!(addr = %config.bind, path = server::VALIDATE_PATH, "serving admission reviews");
    server::serve_tls(
        listener,
        tls,
        server::router(client, config.system_namespace.clone()),
        sympozium_telemetry::shutdown::shutdown_signal(None),
    )
    .await;
    Ok(())
}
