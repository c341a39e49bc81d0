//! Fuzz targets for what the agent runner reads from outside its own code: LLM response
//! streams (OpenAI and Anthropic SSE, Bedrock's AWS event stream) served over loopback
//! HTTP to the real providers, tool calls the model makes (names, argument text, the tool
//! policy) through the real toolbox and file tools, the file tools' path confinement, the
//! memory-marker filter and durations.
//!
//! Under `cargo test` each target runs for about a second on random input plus its
//! committed corpus (`tests/__fuzz__/<test name>/corpus`); `make fuzz` runs them under
//! libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sympozium_agent_runner::config::{LlmLimits, ModelTarget, Thinking};
use sympozium_agent_runner::duration::{format_duration, parse_duration};
use sympozium_agent_runner::llm::{
    Anthropic, AwsCredentials, Bedrock, ChatRequest, Message, NoSink, OpenAi, Provider, ToolCall,
};
use sympozium_agent_runner::output::MarkerFilter;
use sympozium_agent_runner::paths::{Access, Roots};
use sympozium_agent_runner::policy::ToolPolicy;
use sympozium_agent_runner::tools::{EditFile, ListDirectory, ReadFile, Tool, Toolbox, WriteFile};
use sympozium_testkit::fuzz::{self, Choices};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__").join(target).join("corpus")
}

/// CRC-32 (IEEE), for framing Bedrock events the way AWS does.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// One AWS event-stream message with string headers.
fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (k, v) in headers {
        h.push(k.len().min(255) as u8);
        h.extend_from_slice(&k.as_bytes()[..k.len().min(255)]);
        h.push(7);
        let v = &v.as_bytes()[..v.len().min(65_535)];
        h.extend_from_slice(&(v.len() as u16).to_be_bytes());
        h.extend_from_slice(v);
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut m = Vec::new();
    m.extend_from_slice(&(total as u32).to_be_bytes());
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    m.extend_from_slice(&crc32(&m).to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    m.extend_from_slice(&crc32(&m).to_be_bytes());
    m
}

/// The wire body of a seed stream: `{"provider", "events": [...]}`, each event a chunk
/// (OpenAI), `{"event","data"}` (Anthropic) or `{"event","type","data"}` (Bedrock).
fn wire(doc: &Value) -> (String, Vec<u8>) {
    let provider = doc["provider"].as_str().unwrap_or("openai").to_string();
    let mut body = Vec::new();
    for e in doc["events"].as_array().into_iter().flatten() {
        match provider.as_str() {
            "bedrock" => {
                let kind = e["type"].as_str().unwrap_or("event");
                let name = e["event"].as_str().unwrap_or_default();
                let headers = if kind == "exception" {
                    vec![(":message-type", "exception"), (":exception-type", name)]
                } else {
                    vec![
                        (":message-type", kind),
                        (":event-type", name),
                        (":content-type", "application/json"),
                    ]
                };
                body.extend(frame(&headers, e["data"].to_string().as_bytes()));
            }
            "anthropic" => {
                let name = e["event"].as_str().unwrap_or_default();
                body.extend(format!("event: {name}\ndata: {}\n\n", e["data"]).into_bytes());
            }
            _ => match e {
                Value::String(s) => body.extend(format!("data: {s}\n\n").into_bytes()),
                v => body.extend(format!("data: {v}\n\n").into_bytes()),
            },
        }
    }
    (provider, body)
}

struct Llm {
    rt: tokio::runtime::Runtime,
    body: Arc<Mutex<Vec<u8>>>,
    openai: OpenAi,
    anthropic: Anthropic,
    bedrock: Bedrock,
}

impl Llm {
    /// A loopback server answering every request with the current body, and the three
    /// providers pointed at it.
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let body = Arc::new(Mutex::new(Vec::new()));
        let served = body.clone();
        let app = axum::Router::new().fallback(move || {
            let bytes = served.lock().unwrap().clone();
            async move { ([("content-type", "text/event-stream")], bytes) }
        });
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        let limits = LlmLimits {
            request_timeout: Some(Duration::from_secs(10)),
            max_retries: 0,
            retry_backoff: Duration::from_millis(1),
            stream: true,
        };
        let http = || sympozium_agent_runner::llm::Http::new(&limits, true).unwrap();
        let target = |provider: &str| ModelTarget {
            provider: provider.into(),
            model: "m".into(),
            base_url: base.clone(),
            api_key: "k".into(),
        };
        let creds = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        Self {
            openai: OpenAi::new(&target("openai"), Thinking::Off, "2024-10-21", http()).unwrap(),
            anthropic: Anthropic::new(&target("anthropic"), Thinking::Off, http()),
            bedrock: Bedrock::new(&target("bedrock"), Thinking::Off, http(), creds).unwrap(),
            rt,
            body,
        }
    }

    fn complete(&self, provider: &dyn Provider, body: Vec<u8>) {
        *self.body.lock().unwrap() = body;
        let messages = [Message::User("hi".into())];
        let request = ChatRequest { system: "", messages: &messages, tools: &[] };
        let mut sink = NoSink;
        match self.rt.block_on(provider.complete(request, &mut sink)) {
            Ok(turn) => {
                for call in &turn.tool_calls {
                    // A call the runner will dispatch has a name; its arguments are text the
                    // toolbox parses (see `tool_calls`).
                    let _ = (&call.id, &call.arguments);
                }
            }
            Err(e) => assert!(!e.to_string().is_empty(), "an error says why"),
        }
    }

    fn provider(&self, name: &str) -> &dyn Provider {
        match name {
            "anthropic" => &self.anthropic,
            "bedrock" => &self.bedrock,
            _ => &self.openai,
        }
    }
}

#[test]
fn llm_stream() {
    let seeds = fuzz::seeds(&corpus("llm_stream"));
    assert!(seeds.len() >= 3, "the committed seed streams are there");
    let llm = AssertUnwindSafe(Llm::start());
    // The seeds as they are: each provider reads its stream into a turn.
    for seed in &seeds {
        let (provider, body) = wire(seed);
        *llm.body.lock().unwrap() = body;
        let messages = [Message::User("hi".into())];
        let request = ChatRequest { system: "", messages: &messages, tools: &[] };
        let turn = llm.rt.block_on(llm.provider(&provider).complete(request, &mut NoSink));
        match (turn, seed["expectError"].as_str()) {
            (Ok(turn), None) => {
                assert!(!turn.text.is_empty() && !turn.tool_calls.is_empty(), "seed {provider} gives a turn")
            }
            (Err(e), Some(expected)) => assert!(e.to_string().contains(expected), "seed {provider}: {e}"),
            (other, expected) => panic!("seed {provider}: {other:?}, expected error {expected:?}"),
        }
    }
    let run = |bytes: &[u8]| {
        let (provider, body) = wire(&fuzz::document(&seeds, bytes));
        llm.complete(llm.provider(&provider), body);
        // The raw bytes as each provider's stream.
        let raw = bytes.first().map_or(0, |b| b % 3);
        llm.complete(llm.provider(["openai", "anthropic", "bedrock"][usize::from(raw)]), bytes.to_vec());
    };
    bolero::check!().for_each(|bytes: &[u8]| run(bytes));
}

fn roots(dir: &Path) -> Roots {
    let r = Roots {
        ipc: dir.join("ipc"),
        workspace: dir.join("workspace"),
        skills: dir.join("skills"),
        memory: dir.join("memory"),
        tmp: dir.join("tmp"),
    };
    for d in [&r.ipc, &r.workspace, &r.skills, &r.memory, &r.tmp] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(r.workspace.join("notes.txt"), "alpha\nbeta\n").unwrap();
    r
}

#[test]
fn tool_calls() {
    let seeds = fuzz::seeds(&corpus("tool_calls"));
    assert!(seeds.len() >= 3, "the committed seed calls are there");
    let dir = tempfile::tempdir().unwrap();
    let r = roots(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let shared = AssertUnwindSafe((rt, r.clone()));
    let run = |bytes: &[u8]| {
        let (rt, r) = &*shared;
        // `{"policy": <TOOL_POLICY>, "name": ..., "arguments": <JSON or text>}`
        let doc = fuzz::document(&seeds, bytes);
        let policy_text = match &doc["policy"] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            v => v.to_string(),
        };
        let Ok(policy) = ToolPolicy::from_json(&policy_text) else { return };
        let tools: Vec<Box<dyn Tool>> = vec![
            Box::new(ReadFile { roots: r.clone() }),
            Box::new(WriteFile { roots: r.clone() }),
            Box::new(EditFile { roots: r.clone() }),
            Box::new(ListDirectory { roots: r.clone() }),
        ];
        let toolbox = Toolbox::new(tools, policy, None);
        let arguments = match &doc["arguments"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let name = doc["name"].as_str().unwrap_or_default().to_string();
        let call = ToolCall { id: "c1".into(), name, arguments };
        let result = rt.block_on(toolbox.execute(&call));
        assert_eq!(result.is_error, result.content.starts_with("Error"), "{result:?}");
        // The raw bytes as the argument text of each tool.
        for name in ["read_file", "write_file", "edit_file", "list_directory"] {
            let call = ToolCall {
                id: "c2".into(),
                name: name.into(),
                arguments: String::from_utf8_lossy(bytes).into(),
            };
            let result = rt.block_on(toolbox.execute(&call));
            assert_eq!(result.is_error, result.content.starts_with("Error"), "{result:?}");
        }
    };
    bolero::check!().for_each(|bytes: &[u8]| run(bytes));
    // Nothing was written outside the pod's directories.
    let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(outside.len(), 5, "only the five roots at the top: {outside:?}");
}

#[test]
fn path_confinement() {
    let dir = tempfile::tempdir().unwrap();
    let r = roots(dir.path());
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut c = Choices::new(bytes);
        let prefix = ["/workspace/", "/tmp/", "/skills/", "/ipc/", "/memory/", "/", ""][c.below(7)];
        let path = format!("{prefix}{}", c.string());
        for (access, allowed) in [
            (Access::Read, vec![&r.workspace, &r.tmp, &r.skills, &r.ipc]),
            (Access::Write, vec![&r.workspace, &r.tmp]),
        ] {
            if let Ok(real) = r.resolve(&path, access) {
                assert!(allowed.iter().any(|root| real.starts_with(root)), "{path:?} -> {real:?} escapes");
            }
        }
    });
}

#[test]
fn memory_marker_filter() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut c = Choices::new(bytes);
        let mut text = String::new();
        while !c.is_empty() {
            text.push_str(match c.byte() % 4 {
                0 => "__SYMPOZIUM_MEMORY__",
                1 => "__SYMPOZIUM_MEMORY_END__",
                2 => "__SYMPOZIUM_",
                _ => "",
            });
            text.push_str(&c.text(12));
        }
        let whole = {
            let mut f = MarkerFilter::default();
            f.feed(&text) + &f.finish()
        };
        // The same text streamed in arbitrary pieces shows the same thing.
        let mut f = MarkerFilter::default();
        let mut shown = String::new();
        let mut rest = text.as_str();
        let mut k = 1usize;
        while !rest.is_empty() {
            let mut cut = (k * 7 + usize::from(bytes.get(k).copied().unwrap_or(3))) % 17 + 1;
            cut = cut.min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            shown.push_str(&f.feed(&rest[..cut]));
            rest = &rest[cut..];
            k += 1;
        }
        shown.push_str(&f.finish());
        assert_eq!(shown, whole, "chunking changed the output of {text:?}");
    });
}

#[test]
fn durations() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(d) = parse_duration(&text) {
            let printed = format_duration(d);
            let again = parse_duration(&printed).unwrap_or_else(|e| panic!("{printed:?} from {text:?}: {e}"));
            // Printing keeps milliseconds.
            assert!(d.abs_diff(again) < Duration::from_millis(1), "{text:?} -> {printed:?}");
        }
    });
}
