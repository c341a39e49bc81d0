//! What a child process costs, read from `/proc` (Linux): resident memory, CPU time and
//! the TCP connections it holds to one remote port. Benchmarks and the controller's
//! connection test use it on the processes they start.

use std::collections::HashSet;
use std::path::PathBuf;

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`), `None` once the process is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Current resident set size in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}

/// Peak resident set size ("high water mark") in MiB.
pub fn hwm_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmHWM").map(|k| k as f64 / 1024.0)
}

/// The resident set split into heap and other private memory (`RssAnon`) and mapped
/// files, mostly the program's own binary (`RssFile`), in MiB: a debug build maps far more
/// code than a release build, so only the first says what the process holds.
pub fn rss_parts_mib(pid: u32) -> Option<(f64, f64)> {
    let mib = |f| status_kib(pid, f).map(|k| k as f64 / 1024.0);
    Some((mib("RssAnon")?, mib("RssFile")?))
}

/// User plus system CPU time of the process so far, in clock ticks (`/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ; 100 on Linux).
pub const TICKS_PER_SECOND: u64 = 100;

fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return HashSet::new() };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target: PathBuf| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Established TCP connections the process holds to `remote_port` (IPv4 and IPv6).
pub fn tcp_connections_to(pid: u32, remote_port: u16) -> usize {
    let inodes = socket_inodes(pid);
    let mut n = 0;
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state), Some(inode)) = (f.get(2), f.get(3), f.get(9)) else { continue };
            let port = remote.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 01 is ESTABLISHED.
            if port == Some(remote_port)
                && *state == "01"
                && inode.parse::<u64>().is_ok_and(|i| inodes.contains(&i))
            {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn counts_this_process_connections_and_memory() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pid = std::process::id();
        assert_eq!(tcp_connections_to(pid, port), 0);
        let a = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let b = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (_sa, _) = listener.accept().await.unwrap();
        let (_sb, _) = listener.accept().await.unwrap();
        assert_eq!(tcp_connections_to(pid, port), 2);
        drop((a, b));
        assert!(rss_mib(pid).unwrap() > 0.0);
        assert!(hwm_mib(pid).unwrap() >= rss_mib(pid).unwrap() - 1.0);
        assert!(cpu_ticks(pid).is_some());
    }
}
