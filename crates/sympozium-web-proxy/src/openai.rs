//! The OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions`
//! (whole answers, or server-sent events in the exact chunk format).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use kube::ResourceExt;
use serde_json::{Value, json};
use sympozium_api::SympoziumInstance;

use crate::AppState;
use crate::error::ApiError;
use crate::runs::{Kind, Outcome, RunHandle, Step};
use crate::wire::{self, ChatRequest, Usage};

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/models", get(models)).route("/v1/chat/completions", post(chat))
}

/// A JSON body whose rejections (bad JSON, wrong types, too large) are OpenAI-style errors.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(rejection_error(&rejection)),
        }
    }
}

/// Too large → 413, not JSON → 415, anything else (syntax, missing or mistyped fields,
/// named by their path) → 400 as OpenAI answers it.
fn rejection_error(r: &JsonRejection) -> ApiError {
    use axum::http::StatusCode;
    let mut e = ApiError::invalid("body", r.body_text());
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            e.status = StatusCode::PAYLOAD_TOO_LARGE;
            e.message = "request body too large".into();
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => e.status = StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => {}
    }
    e
}

fn model_of(inst: &SympoziumInstance) -> String {
    let m = inst.spec.agents.default.model.trim();
    if m.is_empty() { inst.name_any() } else { m.to_string() }
}

async fn models(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let inst = state.runs.instance().await?;
    let created = inst.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
    Ok(Json(json!({"object": "list", "data": [
        {"id": model_of(&inst), "object": "model", "created": created, "owned_by": "sympozium"}
    ]})))
}

async fn chat(State(state): State<AppState>, Body(req): Body<ChatRequest>) -> Result<Response, ApiError> {
    let prompt = wire::prompt(&req)?;
    let inst = state.runs.instance().await?;
    let model = model_of(&inst);
    let mut handle = state.runs.start(&inst, Kind::Chat, &prompt).await?;
    let id = format!("chatcmpl-{}", handle.name);
    let created = chrono::Utc::now().timestamp();
    if !req.stream {
        return match handle.outcome().await? {
            Outcome::Answer(text, usage) => {
                Ok(Json(wire::completion(&id, created, &model, &text, usage)).into_response())
            }
            Outcome::Failed(error) => Err(ApiError::run_failed(format!("agent run failed: {error}"))),
        };
    }
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let stream = sse(handle, Chunks { id, created, model, include_usage });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

struct Chunks {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
}

impl Chunks {
    fn delta(&self, delta: Value, finish: Option<&str>) -> Event {
        data(&wire::chunk(&self.id, self.created, &self.model, delta, finish, self.include_usage))
    }
}

fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

enum Phase {
    Start,
    Streaming,
    Finished(Vec<Event>),
}

/// The SSE stream of one run: a role chunk, content chunks as they are written, the stop
/// chunk (and the usage chunk when asked), then `[DONE]`. A failure after the headers went
/// out is an `error` event (OpenAI clients raise it) and no `[DONE]`.
fn sse(handle: RunHandle, c: Chunks) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((handle, c, Phase::Start), |(mut handle, c, phase)| async move {
        match phase {
            Phase::Start => {
                let first = c.delta(json!({"role": "assistant", "content": ""}), None);
                Some((Ok::<Event, Infallible>(first), (handle, c, Phase::Streaming)))
            }
            Phase::Streaming => {
                let events = match handle.next().await {
                    Ok(Step::Chunk(text)) => {
                        let e = c.delta(json!({"content": text}), None);
                        return Some((Ok(e), (handle, c, Phase::Streaming)));
                    }
                    Ok(Step::Done(Outcome::Answer(text, usage))) => end(&c, &handle, &text, usage),
                    Ok(Step::Done(Outcome::Failed(error))) => {
                        vec![data(&ApiError::run_failed(format!("agent run failed: {error}")).body())]
                    }
                    Err(e) => vec![data(&e.body())],
                };
                let mut events = events;
                let first = events.remove(0);
                Some((Ok(first), (handle, c, Phase::Finished(events))))
            }
            Phase::Finished(mut rest) => {
                if rest.is_empty() {
                    return None;
                }
                let next = rest.remove(0);
                Some((Ok(next), (handle, c, Phase::Finished(rest))))
            }
        }
    })
}

fn end(c: &Chunks, handle: &RunHandle, text: &str, usage: Usage) -> Vec<Event> {
    let mut events = Vec::new();
    // A runner that did not stream still answers (the whole text as one delta); when the run's
    // end overtook its last chunks, the rest of the answer follows.
    if let Some(rest) = text.strip_prefix(handle.streamed()).filter(|r| !r.is_empty()) {
        events.push(c.delta(json!({"content": rest}), None));
    }
    events.push(c.delta(json!({}), Some("stop")));
    if c.include_usage {
        events.push(data(&wire::usage_chunk(&c.id, c.created, &c.model, usage)));
    }
    events.push(Event::default().data("[DONE]"));
    events
}
