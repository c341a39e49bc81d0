//! An MCP server over the older HTTP+SSE transport (protocol 2024-11-05): `GET /sse` opens a
//! session whose first event names `POST /message?sessionId=<id>`; answers come back as
//! `message` events. rmcp serves the protocol over a channel pair per session.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::channel::mpsc;
use futures_util::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::{ServerHandler, ServiceExt};
use tokio_util::sync::CancellationToken;

type Sessions = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<ClientJsonRpcMessage>>>>;

struct Shared<H> {
    handler: H,
    sessions: Sessions,
    next: AtomicU64,
    cancel: CancellationToken,
}

/// A running HTTP+SSE server; stops when dropped.
pub struct McpSseServer {
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl McpSseServer {
    /// Serves `handler` at `/sse` + `/message` on `bind`.
    pub async fn start<H>(bind: SocketAddr, handler: H) -> std::io::Result<Self>
    where
        H: ServerHandler + Clone + Send + Sync + 'static,
    {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            handler,
            sessions: Arc::default(),
            next: AtomicU64::new(1),
            cancel: cancel.clone(),
        });
        let app = Router::new()
            .route("/sse", get(open::<H>))
            .route("/message", post(message::<H>))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        Ok(Self { addr, cancel })
    }

    /// `http://<addr>/sse`.
    pub fn url(&self) -> String {
        format!("http://{}/sse", self.addr)
    }
}

impl Drop for McpSseServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn open<H>(State(shared): State<Arc<Shared<H>>>) -> Response
where
    H: ServerHandler + Clone + Send + Sync + 'static,
{
    let id = shared.next.fetch_add(1, Ordering::Relaxed).to_string();
    let (to_server, from_client) = mpsc::unbounded::<ClientJsonRpcMessage>();
    let (to_client, from_server) = mpsc::unbounded::<ServerJsonRpcMessage>();
    shared.sessions.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), to_server);
    let handler = shared.handler.clone();
    let cancel = shared.cancel.clone();
    tokio::spawn(async move {
        if let Ok(running) = handler.serve((to_client, from_client)).await {
            tokio::select! {
                _ = running.waiting() => {}
                () = cancel.cancelled() => {}
            }
        }
    });
    let first = futures_util::stream::once(async move {
        Ok::<_, Infallible>(Bytes::from(format!("event: endpoint\ndata: /message?sessionId={id}\n\n")))
    });
    let rest = from_server.map(|m| {
        Ok::<_, Infallible>(Bytes::from(format!(
            "event: message\ndata: {}\n\n",
            serde_json::to_string(&m).unwrap_or_default()
        )))
    });
    let cancel = shared.cancel.clone();
    let body = first.chain(rest).take_until(cancel.cancelled_owned());
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn message<H>(
    State(shared): State<Arc<Shared<H>>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response
where
    H: ServerHandler + Clone + Send + Sync + 'static,
{
    let Some(id) = q.get("sessionId") else {
        return (StatusCode::BAD_REQUEST, "sessionId is required").into_response();
    };
    let sender = shared.sessions.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned();
    let Some(sender) = sender else {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    };
    match serde_json::from_slice::<ClientJsonRpcMessage>(&body) {
        Ok(m) => match sender.unbounded_send(m) {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(_) => (StatusCode::GONE, "session closed").into_response(),
        },
        Err(e) => (StatusCode::BAD_REQUEST, format!("not a JSON-RPC message: {e}")).into_response(),
    }
}
