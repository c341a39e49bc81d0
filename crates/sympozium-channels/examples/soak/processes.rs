//! The processes the soak runs and breaks: one channel pod (`sympozium-channel`) per
//! instance in front of its platform's fake, and the controller replicas.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sympozium_testkit::fake_chat::{FakeDiscord, FakeSlack, FakeTelegram, Sent};

use super::Options;

pub enum Platform {
    Telegram(FakeTelegram),
    Slack(FakeSlack),
    Discord(FakeDiscord),
}

impl Platform {
    pub fn kind(&self) -> &'static str {
        match self {
            Platform::Telegram(_) => "telegram",
            Platform::Slack(_) => "slack",
            Platform::Discord(_) => "discord",
        }
    }
    pub fn sent(&self) -> Vec<Sent> {
        match self {
            Platform::Telegram(f) => f.sent(),
            Platform::Slack(f) => f.sent(),
            Platform::Discord(f) => f.sent(),
        }
    }
    pub fn user_says(&self, chat: usize, text: &str) {
        match self {
            Platform::Telegram(f) => {
                f.user_says(100 + chat as i64, 42, "Ann", text);
            }
            Platform::Slack(f) => {
                f.user_says(&format!("C{chat}"), "U42", text, None);
            }
            Platform::Discord(f) => {
                f.user_says(&format!("CH{chat}"), Some("G1"), "111", text);
            }
        }
    }
    pub fn env(&self, i: usize) -> Vec<(&'static str, String)> {
        match self {
            Platform::Telegram(f) => {
                vec![("TELEGRAM_BOT_TOKEN", format!("{i}:SOAK")), ("TELEGRAM_API_URL", f.url())]
            }
            Platform::Slack(f) => vec![
                ("SLACK_BOT_TOKEN", format!("xoxb-soak-{i}")),
                ("SLACK_APP_TOKEN", format!("xapp-soak-{i}")),
                ("SLACK_SIGNING_SECRET", "soak".into()),
                ("SLACK_API_URL", f.url()),
            ],
            Platform::Discord(f) => {
                vec![("DISCORD_BOT_TOKEN", format!("soak-{i}")), ("DISCORD_API_URL", f.url())]
            }
        }
    }
}

/// One instance: its namespace, platform and channel pod.
pub struct Instance {
    pub name: String,
    pub ns: String,
    pub platform: Platform,
    pub health: std::net::SocketAddr,
    pub env: Vec<(&'static str, String)>,
    pub pod: Mutex<Option<Child>>,
    /// Discord only: its pod is down, so nobody writes to it (see `send_all`).
    pub offline: AtomicBool,
}

pub fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

pub fn log_file(dir: &std::path::Path, name: &str) -> anyhow::Result<(Stdio, Stdio)> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log")))?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

impl Instance {
    pub fn spawn(&self, opts: &Options) -> anyhow::Result<()> {
        let (out, err) = log_file(&opts.log_dir, &format!("channel-{}", self.name))?;
        let child = Command::new(opts.bin_dir.join("sympozium-channel"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting sympozium-channel (build it: cargo build -p sympozium-channels --bins)")?;
        *self.pod.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    pub fn kill(&self) {
        if let Some(mut child) = self.pod.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn healthy(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let code = reqwest::get(format!("http://{}/healthz", self.health))
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if code == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}

/// The controller replicas (a Deployment of two with leader election).
pub struct Controllers {
    pub children: Mutex<Vec<Option<Child>>>,
    pub args: Vec<String>,
    pub nats_url: String,
    pub kubeconfig: PathBuf,
}

impl Controllers {
    pub fn spawn(&self, opts: &Options, replica: usize) -> anyhow::Result<()> {
        let (out, err) = log_file(&opts.log_dir, &format!("controller-{replica}"))?;
        let child = Command::new(opts.bin_dir.join("sympozium-controller"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NATS_URL", &self.nats_url)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info")
            .args(&self.args)
            .args(["--identity", &format!("soak-controller-{replica}")])
            .stdout(out)
            .stderr(err)
            .spawn()
            .context(
                "starting sympozium-controller (build it: cargo build -p sympozium-controller --bins)",
            )?;
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        if children.len() <= replica {
            children.resize_with(replica + 1, || None);
        }
        children[replica] = Some(child);
        Ok(())
    }

    pub fn kill(&self, replica: usize) {
        let taken =
            self.children.lock().unwrap_or_else(|p| p.into_inner()).get_mut(replica).and_then(Option::take);
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again every replica that exited on its own (as its Deployment would; a
    /// replica that loses its lease exits on purpose); how many were started.
    pub fn revive(&self, opts: &Options) -> usize {
        let exited: Vec<usize> = {
            let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            children
                .iter_mut()
                .enumerate()
                .filter_map(|(r, c)| {
                    let exited = c.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))));
                    exited.then_some(r)
                })
                .collect()
        };
        let mut started = 0;
        for r in exited {
            if self.spawn(opts, r).is_ok() {
                started += 1;
            }
        }
        started
    }

    pub fn kill_all(&self) {
        let n = self.children.lock().unwrap_or_else(|p| p.into_inner()).len();
        for r in 0..n {
            self.kill(r);
        }
    }
}
