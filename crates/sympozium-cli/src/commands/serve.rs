//! `serve`: the dashboard and REST API on a loopback port. By default the port is forwarded
//! through the Kubernetes API to the API server `sympozium install` deployed (see
//! [`super::serve_forward`]); `--in-process` runs the API server in this process instead,
//! with the caller's kubeconfig identity, for a cluster without one. Either way the token is
//! Secret `sympozium-ui-token`'s in the system namespace (the in-process server creates it
//! with a random token when missing), so both accept the same token.

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
    /// Run the API server here instead of forwarding to the deployed one.
    pub in_process: bool,
    /// Namespace of the token Secret.
    pub system_namespace: String,
    /// Event bus URL.
    pub nats_url: Option<String>,
    /// The operator user's `.creds` (path or text).
    pub nats_creds: Option<String>,
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

/// The token in the Secret the deployed API server reads (never created here: that server
/// read it when it started).
async fn deployed_token(client: &Client, ns: &str) -> anyhow::Result<String> {
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    let secret = api
        .get_opt(TOKEN_SECRET)
        .await
        .with_context(|| format!("reading Secret {ns}/{TOKEN_SECRET}"))?
        .with_context(|| {
            format!("Secret {ns}/{TOKEN_SECRET} is missing: reinstall (`sympozium install`) to make it")
        })?;
    secret
        .data
        .and_then(|d| d.get("token").map(|v| String::from_utf8_lossy(&v.0).trim().to_string()))
        .filter(|t| !t.is_empty())
        .with_context(|| format!("Secret {ns}/{TOKEN_SECRET} has no `token` key"))
}

/// Serves until Ctrl-C; returns the exit code.
pub async fn serve(client: &Client, options: &Options) -> anyhow::Result<i32> {
    let ns = &options.system_namespace;
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    if namespaces.get_opt(ns).await.with_context(|| format!("reading namespace {ns}"))?.is_none() {
        anyhow::bail!(
            "namespace \"{ns}\" does not exist: install Sympozium first (`sympozium install`) or pass --service-namespace"
        );
    }
    if options.in_process {
        return in_process(client, options).await;
    }
    if !super::serve_forward::deployed(client, ns).await? {
        anyhow::bail!(
            "the API server is not deployed in namespace \"{ns}\" (no Service {}): `sympozium install` deploys it; \
             `sympozium serve --in-process` runs one in this process instead",
            super::install_apiserver::NAME
        );
    }
    let token = deployed_token(client, ns).await?;
    let listener = listen(options).await?;
    let url = announce(&listener, &token, options)?;
    let forwarder = std::sync::Arc::new(super::serve_forward::Forwarder::new(client, ns));
    eprintln!(
        "forwarding {url} to service {}/{} through the Kubernetes API",
        ns,
        super::install_apiserver::NAME
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    tokio::spawn(forwarder.clone().handle(conn));
                }
                Err(e) => eprintln!("accepting a connection: {e}"),
            },
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

async fn listen(options: &Options) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((options.address.as_str(), options.port))
        .await
        .with_context(|| format!("listening on {}:{}", options.address, options.port))
}

/// Prints the URL and token, opens the browser when asked; returns the URL.
fn announce(listener: &tokio::net::TcpListener, token: &str, options: &Options) -> anyhow::Result<String> {
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}/");
    crate::output::emitln!("Sympozium dashboard: {url}");
    crate::output::emitln!("Token: {token}");
    eprintln!("(Ctrl-C stops it)");
    if options.open {
        // A missing browser is no reason to stop serving.
        if let Err(e) = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            eprintln!("could not open a browser (xdg-open: {e}); open {url} yourself");
        }
    }
    Ok(url)
}

/// The API server in this process.
async fn in_process(client: &Client, options: &Options) -> anyhow::Result<i32> {
    let token = token(client, &options.system_namespace).await?;
    let bus = match &options.nats_url {
        None => None,
        Some(url) => {
            let bus_options = sympozium_bus::BusOptions::operator(options.nats_creds.as_deref())
                .map_err(|e| anyhow::anyhow!("--nats-creds: {e}"))?;
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
        bedrock_endpoint: None,
    };
    let listener = listen(options).await?;
    announce(&listener, &token, options)?;
    axum::serve(listener, sympozium_apiserver::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(0)
}
