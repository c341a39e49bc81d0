//! `serve`: the API server and dashboard in this process, with the caller's kubeconfig
//! identity, on a loopback port. The token comes from Secret `sympozium-ui-token` in the
//! system namespace (created with a random token when missing), so the dashboard of
//! `sympozium serve` and of an in-cluster API server accept the same token.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use sympozium_apiserver::auth::TOKEN_SECRET;
use sympozium_apiserver::{AppState, Caches};

/// `serve` flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// Listen address.
    pub address: String,
    /// Listen port.
    pub port: u16,
    /// Open the browser.
    pub open: bool,
    /// Namespace of the token Secret.
    pub system_namespace: String,
    /// Event bus URL.
    pub nats_url: Option<String>,
    /// Operator role password.
    pub nats_password: Option<String>,
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a token")?;
    Ok(hex::encode(bytes))
}

/// The token in the Secret, creating the Secret when there is none.
pub(crate) async fn token(client: &Client, ns: &str) -> anyhow::Result<String> {
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    let read = |s: Secret| {
        s.data
            .and_then(|d| d.get("token").map(|v| String::from_utf8_lossy(&v.0).trim().to_string()))
            .filter(|t| !t.is_empty())
    };
    if let Some(s) =
        api.get_opt(TOKEN_SECRET).await.with_context(|| format!("reading Secret {ns}/{TOKEN_SECRET}"))?
    {
        return read(s).with_context(|| format!("Secret {ns}/{TOKEN_SECRET} has no `token` key"));
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(TOKEN_SECRET.into()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".into(), "sympozium".into())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("token".to_string(), ByteString(random_token()?.into_bytes()))])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(s) => read(s).context("the created token Secret has no token"),
        // Someone else made it meanwhile: use theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            read(api.get(TOKEN_SECRET).await?).context("the token Secret has no token")
        }
        Err(kube::Error::Api(e)) if e.code == 404 => anyhow::bail!(
            "namespace \"{ns}\" does not exist: install Sympozium first (`sympozium install`) or pass --service-namespace"
        ),
        Err(e) => Err(e).with_context(|| format!("creating Secret {ns}/{TOKEN_SECRET}")),
    }
}

/// Serves until Ctrl-C; returns the exit code.
pub async fn serve(client: &Client, options: &Options) -> anyhow::Result<i32> {
    let token = token(client, &options.system_namespace).await?;
    let bus = match &options.nats_url {
        None => None,
        Some(url) => {
            let bus_options = sympozium_bus::BusOptions {
                credentials: options.nats_password.clone().filter(|p| !p.is_empty()).map(|password| {
                    sympozium_bus::auth::Credentials { role: sympozium_bus::auth::Role::Operator, password }
                }),
                ..Default::default()
            };
            match tokio::time::timeout(
                Duration::from_secs(10),
                sympozium_bus::Bus::connect_with(url, bus_options),
            )
            .await
            {
                Ok(Ok(bus)) => Some(bus),
                Ok(Err(e)) => {
                    eprintln!("event bus {url}: {e}; live output is off");
                    None
                }
                Err(_) => {
                    eprintln!("event bus {url} did not answer in 10s; live output is off");
                    None
                }
            }
        }
    };
    let caches = Caches::start(client);
    if !caches.wait_ready(Duration::from_secs(30)).await {
        eprintln!(
            "warning: the watch caches are not synced after 30s (are the CRDs installed? `sympozium install`)"
        );
    }
    let state = AppState {
        client: client.clone(),
        caches,
        token: Some(Arc::from(token.as_str())),
        bus,
        system_namespace: options.system_namespace.clone(),
    };
    let listener = tokio::net::TcpListener::bind((options.address.as_str(), options.port))
        .await
        .with_context(|| format!("listening on {}:{}", options.address, options.port))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}/");
    crate::output::emitln!("Sympozium dashboard: {url}");
    crate::output::emitln!("Token: {token}");
    eprintln!("(Ctrl-C stops it)");
    if options.open {
        // A missing browser is no reason to stop serving.
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    axum::serve(listener, sympozium_apiserver::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(0)
}
