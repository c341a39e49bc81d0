//! A real OpenTelemetry Collector (OTLP receiver over gRPC and HTTP, file exporter) on
//! random loopback ports, for tests that assert what a component exported.
//!
//! The binary is built from the collector's Go modules by `otelcol/build.sh` (cached under
//! `~/.cache/sympozium-otelcol`, keyed by its inputs). `make test` builds it once and
//! exports `SYMPOZIUM_OTELCOL`; a developer running `cargo test` gets it built here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{Error, Result, repo_root};

/// A running collector writing what it receives to one JSON-lines file per signal; killed
/// on drop.
#[derive(Debug)]
pub struct OtelCollector {
    child: Option<Child>,
    dir: PathBuf,
    grpc_port: u16,
    http_port: u16,
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Command { command: "bind".into(), reason: e.to_string() })
}

fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SYMPOZIUM_OTELCOL").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let script = repo_root().join("otelcol/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Command { command: script.display().to_string(), reason: e.to_string() })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last().map(str::trim).filter(|l| !l.is_empty()) {
        Some(path) if out.status.success() => Ok(PathBuf::from(path)),
        _ => Err(Error::Command {
            command: script.display().to_string(),
            reason: format!("building the test collector failed ({})", out.status),
        }),
    }
}

impl OtelCollector {
    /// Builds (once, cached) and starts a collector; returns when both receivers listen.
    pub async fn start() -> Result<Self> {
        let (grpc_port, http_port) = (free_port()?, free_port()?);
        let dir = std::env::temp_dir().join(format!("sympozium-otelcol-{}-{grpc_port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Command { command: "mkdir".into(), reason: e.to_string() })?;
        let file = |signal: &str| dir.join(format!("{signal}.jsonl")).display().to_string();
        let config = format!(
            r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
      http:
        endpoint: 127.0.0.1:{http_port}
exporters:
  file/traces:
    path: {traces}
    flush_interval: 100ms
  file/metrics:
    path: {metrics}
    flush_interval: 100ms
  file/logs:
    path: {logs}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      exporters: [file/logs]
"#,
            traces = file("traces"),
            metrics = file("metrics"),
            logs = file("logs"),
        );
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).map_err(|e| Error::Command {
            command: "write collector config".into(),
            reason: e.to_string(),
        })?;
        let bin = binary()?;
        let log = std::fs::File::create(dir.join("collector.log"))
            .map_err(|e| Error::Command { command: "collector log".into(), reason: e.to_string() })?;
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Command { command: bin.display().to_string(), reason: e.to_string() })?;
        let collector = Self { child: Some(child), dir, grpc_port, http_port };
        for _ in 0..400 {
            let grpc = tokio::net::TcpStream::connect(("127.0.0.1", grpc_port)).await.is_ok();
            let http = tokio::net::TcpStream::connect(("127.0.0.1", http_port)).await.is_ok();
            if grpc && http {
                return Ok(collector);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(Error::Command {
            command: "otel collector".into(),
            reason: format!("not listening after 10s; its log:\n{}", collector.log()),
        })
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:<port>`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The OTLP/HTTP endpoint (base URL; signals post to `/v1/<signal>`).
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The collector's own log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("collector.log")).unwrap_or_default()
    }

    fn read(&self, signal: &str) -> Vec<Value> {
        read_lines(&self.dir.join(format!("{signal}.jsonl")))
    }

    /// Every span received so far, flattened: each span's JSON with its resource's
    /// attributes added as `resource` (a map) and its scope name as `scope`.
    pub fn spans(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for batch in self.read("traces") {
            for rs in batch["resourceSpans"].as_array().into_iter().flatten() {
                let resource = attributes(&rs["resource"]["attributes"]);
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        let mut span = span.clone();
                        span["resource"] = resource.clone();
                        span["scope"] = ss["scope"]["name"].clone();
                        span["attrs"] = attributes(&span["attributes"]);
                        out.push(span);
                    }
                }
            }
        }
        out
    }

    /// Every metric received so far, flattened: each metric's JSON with `resource` added.
    pub fn metrics(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for batch in self.read("metrics") {
            for rm in batch["resourceMetrics"].as_array().into_iter().flatten() {
                let resource = attributes(&rm["resource"]["attributes"]);
                for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                    for metric in sm["metrics"].as_array().into_iter().flatten() {
                        let mut metric = metric.clone();
                        metric["resource"] = resource.clone();
                        out.push(metric);
                    }
                }
            }
        }
        out
    }

    /// Every log record received so far, with `resource` added.
    pub fn logs(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for batch in self.read("logs") {
            for rl in batch["resourceLogs"].as_array().into_iter().flatten() {
                let resource = attributes(&rl["resource"]["attributes"]);
                for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                    for record in sl["logRecords"].as_array().into_iter().flatten() {
                        let mut record = record.clone();
                        record["resource"] = resource.clone();
                        out.push(record);
                    }
                }
            }
        }
        out
    }

    /// Kills the collector (a collector outage); what it wrote stays readable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// OTLP JSON attributes (`[{key, value: {stringValue|intValue|...}}]`) as a flat map.
pub fn attributes(list: &Value) -> Value {
    let mut map = serde_json::Map::new();
    for kv in list.as_array().into_iter().flatten() {
        let Some(key) = kv["key"].as_str() else { continue };
        let v = &kv["value"];
        let value = if let Some(s) = v["stringValue"].as_str() {
            Value::from(s)
        } else if let Some(i) = v["intValue"].as_str().and_then(|s| s.parse::<i64>().ok()) {
            Value::from(i)
        } else if let Some(i) = v["intValue"].as_i64() {
            Value::from(i)
        } else if let Some(d) = v["doubleValue"].as_f64() {
            Value::from(d)
        } else if let Some(b) = v["boolValue"].as_bool() {
            Value::from(b)
        } else {
            v.clone()
        };
        map.insert(key.to_string(), value);
    }
    Value::Object(map)
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

impl Drop for OtelCollector {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
