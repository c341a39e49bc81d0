//! A real `nats-server -js` on a random loopback port with its own store directory, for
//! tests of everything that talks over the event bus. It can be stopped and restarted on
//! the same port and store, to test reconnection without losing persisted messages.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Error, Result};

/// A running nats-server, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    /// A configuration file (`-c`), when the server runs with one.
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server. Under `CI=true` a missing `nats-server` is an
    /// error (tests fail); elsewhere too — install it with `apt-get install nats-server`.
    pub async fn start() -> Result<Self> {
        Self::start_inner(None::<fn(u16, &std::path::Path) -> String>).await
    }

    /// Starts a server with the configuration file `render(port, store_dir)` returns (e.g.
    /// the one `sympozium install` renders, with its users and permissions); the port and
    /// store still come from the command line, so the file need not name them.
    pub async fn start_with_config(render: impl FnOnce(u16, &std::path::Path) -> String) -> Result<Self> {
        Self::start_inner(Some(render)).await
    }

    async fn start_inner(render: Option<impl FnOnce(u16, &std::path::Path) -> String>) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::Command { command: "bind".into(), reason: e.to_string() })?;
        let store = std::env::temp_dir().join(format!("sympozium-nats-{}-{port}", std::process::id()));
        let config = match render {
            Some(render) => {
                let path =
                    std::env::temp_dir().join(format!("sympozium-nats-{}-{port}.conf", std::process::id()));
                std::fs::write(&path, render(port, &store)).map_err(|e| Error::Command {
                    command: "write nats.conf".into(),
                    reason: e.to_string(),
                })?;
                Some(path)
            }
            None => None,
        };
        let mut server = Self { child: None, port, store, config };
        server.spawn().await?;
        Ok(server)
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new("nats-server");
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Command {
                command: "nats-server".into(),
                reason: format!("{e} (install it with `apt-get install nats-server`)"),
            })?;
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(Error::Command {
            command: "nats-server".into(),
            reason: format!("not listening on {}", self.port),
        })
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (like a crash); its store stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
    }
}
