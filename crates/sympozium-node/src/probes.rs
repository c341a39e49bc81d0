//! Probes: `httpGet` (HTTP; 200–399 passes), `tcpSocket` (connects) and `exec` (runs the
//! command inside the container's namespaces, exit 0 passes), with Kubernetes' timing
//! fields. HTTPS probes are checked like `tcpSocket` plus a TLS-less connect, and gRPC
//! probes are not supported (reported, treated as passing).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where a probe goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// The pod IP (or loopback without pod network).
    pub ip: IpAddr,
    /// Host pid of the container's sandbox (bwrap; exec probes enter its child's namespaces).
    pub pid: Option<u32>,
    /// The container's environment (PATH matters for exec).
    pub env: Vec<(String, String)>,
}

fn port(p: &IntOrString, c: &Container) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs one probe check.
pub async fn check(probe: &Probe, c: &Container, target: &Target) -> bool {
    let timeout = Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1));
    let fut = async {
        if let Some(h) = &probe.http_get {
            let Some(port) = port(&h.port, c) else { return false };
            let ip = h.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(target.ip);
            let Ok(mut s) = TcpStream::connect(SocketAddr::new(ip, port)).await else { return false };
            if h.scheme.as_deref() == Some("HTTPS") {
                return true;
            }
            let path = h.path.as_deref().unwrap_or("/");
            let mut req = format!(
                "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\n"
            );
            for hh in h.http_headers.iter().flatten() {
                req.push_str(&format!("{}: {}\r\n", hh.name, hh.value));
            }
            req.push_str("\r\n");
            if s.write_all(req.as_bytes()).await.is_err() {
                return false;
            }
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            while got.len() < 12 {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&got);
            let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            return (200..400).contains(&code);
        }
        if let Some(t) = &probe.tcp_socket {
            let Some(port) = port(&t.port, c) else { return false };
            let ip = t.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(target.ip);
            return TcpStream::connect(SocketAddr::new(ip, port)).await.is_ok();
        }
        if let Some(e) = &probe.exec {
            let Some(pid) = target.pid.and_then(crate::sandbox::program_pid) else { return false };
            let command = e.command.clone().unwrap_or_default();
            if command.is_empty() {
                return false;
            }
            let status = tokio::process::Command::new(crate::sandbox::NSENTER)
                .args(["-t", &pid.to_string(), "-m", "-n", "-u", "-i", "-p", "-r", "-w", "--"])
                .args(&command)
                .env_clear()
                .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await;
            return status.is_ok_and(|s| s.success());
        }
        true
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or(false)
}

/// Timing of a probe.
pub struct Timing {
    /// Before the first check.
    pub initial_delay: Duration,
    /// Between checks.
    pub period: Duration,
    /// Consecutive passes to succeed.
    pub success_threshold: u32,
    /// Consecutive failures to fail.
    pub failure_threshold: u32,
}

/// Kubernetes' defaults for missing fields.
pub fn timing(p: &Probe) -> Timing {
    let secs =
        |v: Option<i32>, d: i32| Duration::from_secs(u64::try_from(v.unwrap_or(d).max(0)).unwrap_or(0));
    Timing {
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        success_threshold: u32::try_from(p.success_threshold.unwrap_or(1).max(1)).unwrap_or(1),
        failure_threshold: u32::try_from(p.failure_threshold.unwrap_or(3).max(1)).unwrap_or(3),
    }
}
