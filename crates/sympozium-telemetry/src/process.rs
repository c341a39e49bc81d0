//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …) of this process, read from `/proc/self`, as the
//! Prometheus text exposition format. What a `/metrics` endpoint with nothing else to say
//! serves; on a system without `/proc` the readings it cannot make are left out.

use std::fmt::Write as _;

/// Clock ticks per second of `/proc/<pid>/stat` times: 100 on every Linux platform
/// Kubernetes runs on (USER_HZ is fixed by the kernel ABI).
const TICKS_PER_SECOND: f64 = 100.0;
/// Page size used by `/proc/self/statm`.
const PAGE_SIZE: u64 = 4096;

/// The process metrics as Prometheus text.
pub fn prometheus_text() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| boot_time(&s));
    let mut out = String::new();
    if let Some(fields) = stat.as_deref().and_then(stat_fields) {
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            metric(
                &mut out,
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                (user + system) / TICKS_PER_SECOND,
            );
        }
        if let Some(vsize) = ticks(20) {
            metric(&mut out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
        }
        if let Some(rss) = ticks(21) {
            metric(
                &mut out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                rss * PAGE_SIZE as f64,
            );
        }
        if let (Some(start), Some(boot)) = (ticks(19), boot) {
            metric(
                &mut out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + start / TICKS_PER_SECOND,
            );
        }
        if let Some(threads) = ticks(17) {
            metric(&mut out, "process_threads", "gauge", "Number of OS threads in the process.", threads);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(&mut out, "process_open_fds", "gauge", "Number of open file descriptors.", fds.count() as f64);
    }
    out
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses, so the split starts after its last `)`): index 0 is the state (field 3).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn this_process_reports_its_memory_cpu_and_files() {
        let text = prometheus_text();
        let value = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0, "{text}");
        assert!(value("process_open_fds") >= 3.0, "{text}");
        assert!(value("process_cpu_seconds_total") >= 0.0, "{text}");
        let started = value("process_start_time_seconds");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(started > now - 86_400.0 && started <= now + 1.0, "started {started}, now {now}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"), "{text}");
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 123456 789";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!((f[11], f[12], f[17], f[21]), ("250", "50", "7", "789"));
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1700000000\n"), Some(1_700_000_000));
    }
}
