//! Command-line configuration (flags with the environment variables the controller sets).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The web endpoint of one SympoziumInstance.
#[derive(Parser, Debug, Clone)]
#[command(name = "sympozium-web-proxy", version, about)]
pub struct Config {
    /// The instance this endpoint serves.
    #[arg(long, env = "INSTANCE_NAME")]
    pub instance_name: String,
    /// Namespace of the instance (default: the pod's ServiceAccount namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// API key callers must send as `Authorization: Bearer <key>`.
    #[arg(long, env = "WEB_PROXY_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// NATS URL of the event bus (answers of the runs arrive there).
    #[arg(long, env = "EVENT_BUS_URL", default_value = "nats://nats.sympozium-system.svc:4222")]
    pub event_bus_url: String,
    /// Address to listen on.
    #[arg(long, env = "WEB_PROXY_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,
    /// Requests per minute each API key may make (sustained rate).
    #[arg(long, env = "RATE_LIMIT_RPM", default_value_t = 60)]
    pub rate_limit_rpm: u32,
    /// Requests an API key may make at once before the per-minute rate applies.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 10)]
    pub rate_limit_burst: u32,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Longest a request waits for its run's answer (then 504 and the run is stopped).
    #[arg(long, env = "RUN_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub run_timeout: Duration,
    /// Kubeconfig (in-cluster configuration when unset).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Parses a Go duration (`90s`, `10m`, `1h30m`) or a number of seconds; zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, sympozium_protocol::duration::DurationError> {
    use sympozium_protocol::duration::{BareUnit, parse_positive};
    parse_positive(s, BareUnit::Seconds)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("10d").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
