//! The streaming routes: `/exec/{ns}/{pod}/{container}`, `/attach/{ns}/{pod}/{container}`
//! and `/portForward/{ns}/{pod}` (GET or POST, as API server versions differ). Each
//! answers `101 Switching Protocols` to `Upgrade: SPDY/3.1` with the protocol version it
//! chose from `X-Stream-Protocol-Version`, then serves the session.

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;

use super::exec::{self, Options};
use super::session::Session;
use super::{ExecTarget, PodHandle, Registry, portforward, websocket};

/// The streaming routes over the running pods.
pub fn router(running: Registry) -> Router {
    Router::new()
        .route("/exec/{namespace}/{pod}/{container}", get(exec_route).post(exec_route))
        .route("/attach/{namespace}/{pod}/{container}", get(attach_route).post(attach_route))
        .route("/portForward/{namespace}/{pod}", get(port_forward_route).post(port_forward_route))
        .with_state(running)
}

fn refuse(code: StatusCode, msg: String) -> Response {
    (code, format!("{msg}\n")).into_response()
}

/// A refusal, boxed (a Response is large for an error variant).
type Refusal = Box<Response>;

/// Every value of `X-Stream-Protocol-Version` (repeated or comma-separated).
fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn wants_spdy(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("SPDY/3.1")))
}

fn pod(running: &Registry, ns: &str, pod: &str) -> Result<PodHandle, Refusal> {
    running.read().ok().and_then(|r| r.get(&(ns.to_string(), pod.to_string())).cloned()).ok_or_else(|| {
        Box::new(refuse(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} is not running on this node")))
    })
}

fn container(handle: &PodHandle, ns: &str, pod: &str, name: &str) -> Result<Arc<ExecTarget>, Refusal> {
    handle.containers.read().ok().and_then(|c| c.get(name).cloned()).ok_or_else(|| {
        Box::new(refuse(
            StatusCode::NOT_FOUND,
            format!("container {name:?} of pod {ns}/{pod} is not running"),
        ))
    })
}

/// Answers the upgrade and runs `serve` on the upgraded connection.
fn upgrade<F, Fut>(mut req: Request, protocol: &'static str, serve: F) -> Response
where
    F: FnOnce(Session) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(Session::start(TokioIo::new(upgraded))).await,
            Err(e) => tracing::debug!(error = %e, "streaming: upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", protocol)
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[derive(Clone, Copy)]
enum Kind {
    Exec,
    Attach,
}

async fn command_route(
    running: Registry,
    kind: Kind,
    (ns, name, c): (String, String, String),
    req: Request,
) -> Response {
    let target = match pod(&running, &ns, &name).and_then(|h| container(&h, &ns, &name, &c)) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    if !wants_spdy(req.headers()) {
        return refuse(StatusCode::BAD_REQUEST, "this endpoint needs an upgrade to SPDY/3.1".into());
    }
    let Some((protocol, protocol_name)) = exec::negotiate(&offered(req.headers())) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "no supported stream protocol offered (v4.channel.k8s.io … channel.k8s.io)".into(),
        );
    };
    let opts = Options::from_query(req.uri().query().unwrap_or(""));
    if matches!(kind, Kind::Exec) && opts.command.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "query parameter `command` is required".into());
    }
    tracing::info!(pod = %format!("{ns}/{name}"), container = %c, command = ?opts.command, tty = opts.tty,
        kind = if matches!(kind, Kind::Exec) { "exec" } else { "attach" }, "streaming session");
    upgrade(req, protocol_name, move |session| async move {
        match kind {
            Kind::Exec => exec::exec(session, target, opts, protocol).await,
            Kind::Attach => exec::attach(session, target, opts, protocol).await,
        }
    })
}

async fn exec_route(
    State(r): State<Registry>,
    Path(p): Path<(String, String, String)>,
    req: Request,
) -> Response {
    command_route(r, Kind::Exec, p, req).await
}

async fn attach_route(
    State(r): State<Registry>,
    Path(p): Path<(String, String, String)>,
    req: Request,
) -> Response {
    command_route(r, Kind::Attach, p, req).await
}

async fn port_forward_route(
    State(running): State<Registry>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let handle = match pod(&running, &ns, &name) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let label = format!("{ns}/{name}");
    let websocket = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if websocket {
        let ports = match websocket::ports(req.uri().query().unwrap_or("")) {
            Ok(p) => p,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(e) => return e.into_response(),
        };
        tracing::info!(pod = %label, ?ports, "port-forward session (WebSocket)");
        let netns = handle.netns;
        return ws
            .protocols([websocket::PROTOCOL])
            .on_upgrade(move |socket| websocket::serve(socket, netns, ports, label));
    }
    if !wants_spdy(req.headers()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "this endpoint needs an upgrade to SPDY/3.1 or WebSocket".into(),
        );
    }
    if !offered(req.headers()).iter().any(|p| p == portforward::PROTOCOL) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("stream protocol {} was not offered", portforward::PROTOCOL),
        );
    }
    tracing::info!(pod = %label, "port-forward session");
    upgrade(req, portforward::PROTOCOL, move |session| portforward::serve(session, handle.netns, label))
}
