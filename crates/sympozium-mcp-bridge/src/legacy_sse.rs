//! The older MCP HTTP+SSE transport (protocol 2024-11-05), for servers that only speak it:
//! `GET <url>` opens an event stream whose first `endpoint` event names the URL to `POST`
//! JSON-RPC messages to; the server's messages arrive as `message` events on the stream.
//! rmcp dropped this transport, so it is built here as a sink/stream pair that rmcp's
//! client service runs over.

use futures::StreamExt;
use futures::channel::mpsc;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};

/// Outgoing and incoming halves of a connected session.
pub type Halves =
    (mpsc::UnboundedSender<ClientJsonRpcMessage>, mpsc::UnboundedReceiver<ServerJsonRpcMessage>);

/// One server-sent event.
#[derive(Debug, Default, PartialEq)]
pub struct Event {
    /// `event:` (empty means `message`).
    pub event: String,
    /// The `data:` lines joined by newlines.
    pub data: String,
}

/// Splits complete events off the front of `buffer` (which keeps the incomplete rest).
pub fn take_events(buffer: &mut String) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let normalized = buffer.replace("\r\n", "\n");
        if normalized.len() != buffer.len() {
            *buffer = normalized;
        }
        let Some(end) = buffer.find("\n\n") else { break };
        let block: String = buffer.drain(..end + 2).collect();
        let mut event = Event::default();
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event.event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
            }
        }
        event.data = data.join("\n");
        if !event.event.is_empty() || !event.data.is_empty() {
            out.push(event);
        }
    }
    out
}

/// Why the legacy SSE transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(#[source] reqwest::Error),
    /// The GET of the event stream failed.
    #[error("opening the SSE stream: {0}")]
    Open(#[source] reqwest::Error),
    /// The GET was answered with an error status.
    #[error("opening the SSE stream: HTTP {0}")]
    Status(reqwest::StatusCode),
    /// The stream ended before announcing where to POST.
    #[error("the SSE stream ended before the endpoint event")]
    NoEndpoint,
    /// Reading the stream failed.
    #[error("{0}")]
    Read(#[source] reqwest::Error),
    /// The `endpoint` event is not a URL.
    #[error("endpoint event {endpoint:?}: {source}")]
    BadEndpoint {
        /// The event's data.
        endpoint: String,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },
    /// The server URL itself is not a URL.
    #[error("{0}")]
    BadUrl(#[source] url::ParseError),
    /// The endpoint is on another origin, where the credentials must not go.
    #[error("endpoint {0} is not on the server's origin")]
    ForeignOrigin(url::Url),
}

/// Opens the event stream at `url` with `headers`, waits for the `endpoint` event and
/// returns the halves rmcp's client runs over.
pub async fn connect(url: &str, headers: &[(String, String)]) -> Result<Halves, SseError> {
    let client = reqwest::Client::builder().build().map_err(SseError::Client)?;
    let with_headers = |mut req: reqwest::RequestBuilder| {
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req
    };
    let response = with_headers(client.get(url).header("accept", "text/event-stream"))
        .send()
        .await
        .map_err(SseError::Open)?;
    if !response.status().is_success() {
        return Err(SseError::Status(response.status()));
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut pending = Vec::new();
    let endpoint = 'found: loop {
        let Some(chunk) = body.next().await else {
            return Err(SseError::NoEndpoint);
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk.map_err(SseError::Read)?));
        let mut events = take_events(&mut buffer).into_iter();
        while let Some(e) = events.next() {
            if e.event == "endpoint" {
                pending.extend(events);
                break 'found e.data;
            }
        }
    };
    let post_url = url::Url::parse(url)
        .and_then(|base| base.join(endpoint.trim()))
        .map_err(|source| SseError::BadEndpoint { endpoint: endpoint.clone(), source })?;
    if post_url.origin() != url::Url::parse(url).map_err(SseError::BadUrl)?.origin() {
        // The credentials go with every POST: never to another origin.
        return Err(SseError::ForeignOrigin(post_url));
    }
    let (in_tx, in_rx) = mpsc::unbounded::<ServerJsonRpcMessage>();
    let (out_tx, mut out_rx) = mpsc::unbounded::<ClientJsonRpcMessage>();
    let deliver = |tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>, e: Event| {
        if e.event.is_empty() || e.event == "message" {
            match serde_json::from_str::<ServerJsonRpcMessage>(&e.data) {
                Ok(m) => {
                    let _ = tx.unbounded_send(m);
                }
                Err(err) => tracing::warn!(error = %err, "ignoring an unreadable SSE message"),
            }
        }
    };
    for e in pending {
        deliver(&in_tx, e);
    }
    tokio::spawn(async move {
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            for e in take_events(&mut buffer) {
                deliver(&in_tx, e);
            }
        }
        // Dropping the sender ends rmcp's session; the bridge reconnects on the next call.
    });
    let headers = headers.to_vec();
    tokio::spawn(async move {
        while let Some(message) = out_rx.next().await {
            let mut req = client.post(post_url.clone()).json(&message);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(status = %r.status(), "the SSE server refused a message"),
                Err(e) => tracing::warn!(error = %e, "posting to the SSE server failed"),
            }
        }
    });
    Ok((out_tx, in_rx))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut b = "event: endpoint\r\ndata: /message?sessionId=1\r\n\r\nevent: mess".to_string();
        let e = take_events(&mut b);
        assert_eq!(e, [Event { event: "endpoint".into(), data: "/message?sessionId=1".into() }]);
        b.push_str("age\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(take_events(&mut b), [Event { event: "message".into(), data: "{\"a\":\n1}".into() }]);
        assert!(b.is_empty());
    }
}
