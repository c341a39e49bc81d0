//! The manager's HTTP endpoints: Prometheus metrics, liveness and readiness.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sympozium_kube::metrics::Metrics;
use tokio::sync::watch;

/// `/metrics` in the Prometheus text format.
pub fn metrics_router(metrics: Metrics) -> Router {
    Router::new().route("/metrics", get(render)).with_state(metrics)
}

async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
}

/// `/healthz` (the process is up) and `/readyz` (controllers are running: this replica
/// leads, or leader election is off).
pub fn health_router(ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(ready): State<watch::Receiver<bool>>| async move {
                if *ready.borrow() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not leading")
                }
            }),
        )
        .with_state(ready)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn readyz_follows_leadership_and_metrics_render() {
        let (tx, rx) = watch::channel(false);
        let app = health_router(rx);
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(get("/healthz")).await.unwrap().status(), StatusCode::OK);
        assert_eq!(
            app.clone().oneshot(get("/readyz")).await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        tx.send(true).unwrap();
        assert_eq!(app.oneshot(get("/readyz")).await.unwrap().status(), StatusCode::OK);

        let metrics = Metrics::default();
        drop(metrics.reconcile("sympoziuminstance"));
        let res = metrics_router(metrics).oneshot(get("/metrics")).await.unwrap();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("sympozium_reconciles_total"));
    }
}
