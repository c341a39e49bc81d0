//! Network probes made from inside a pod's network namespace: the test process enters the
//! namespace on a thread of its own (root), so its packets are the pod's packets and go
//! through exactly the filtering the pod's own programs get.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

/// What came of trying to reach something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this text.
    Reached(String),
    /// No answer: why (timeout, reset, refused, closed).
    Blocked(String),
}

impl Outcome {
    pub fn reached(&self) -> bool {
        matches!(self, Outcome::Reached(_))
    }
}

/// The network namespace of the pod with `ip` on this test process's node.
pub fn netns_of(ip: &str) -> PathBuf {
    let last = ip.rsplit('.').next().unwrap();
    PathBuf::from(format!("/run/netns/symt{}-{last}", std::process::id() % 100_000))
}

fn in_netns<T: Send + 'static>(pod_ip: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = netns_of(pod_ip);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// An HTTP GET to `target` from the pod at `from_ip`; `Reached` with the body's first line.
pub async fn http_from(from_ip: &str, target: SocketAddr) -> Outcome {
    let from = from_ip.to_string();
    tokio::task::spawn_blocking(move || {
        in_netns(&from, move || {
            let mut s = match TcpStream::connect_timeout(&target, Duration::from_millis(1500)) {
                Ok(s) => s,
                Err(e) => return Outcome::Blocked(format!("connect: {e}")),
            };
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            if let Err(e) = s.write_all(b"GET / HTTP/1.0\r\n\r\n") {
                return Outcome::Blocked(format!("write: {e}"));
            }
            let mut buf = String::new();
            match s.read_to_string(&mut buf) {
                Ok(_) if buf.starts_with("HTTP/") => {
                    Outcome::Reached(buf.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
                }
                Ok(_) => Outcome::Blocked(format!("closed without an answer ({buf:?})")),
                Err(e) => Outcome::Blocked(format!("read: {e}")),
            }
        })
    })
    .await
    .unwrap()
}

/// An A query for `name` to `server`:53 over UDP from the pod at `from_ip`: the answers.
pub async fn dns_from(from_ip: &str, server: Ipv4Addr, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let from = from_ip.to_string();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        in_netns(&from, move || {
            let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
            let mut q = vec![0x51, 0x7a, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
            for label in name.trim_end_matches('.').split('.') {
                q.push(label.len() as u8);
                q.extend_from_slice(label.as_bytes());
            }
            q.extend_from_slice(&[0, 0, 1, 0, 1]);
            sock.send_to(&q, (server, 53)).map_err(|e| format!("send: {e}"))?;
            let mut buf = [0u8; 512];
            let n = sock.recv(&mut buf).map_err(|e| format!("no answer: {e}"))?;
            let r = &buf[..n];
            if r.len() < 12 || r[0..2] != q[0..2] {
                return Err("not an answer to the query".into());
            }
            // Answers follow the echoed question; A records end with their 4 address bytes.
            let answers = u16::from_be_bytes([r[6], r[7]]) as usize;
            let mut out = Vec::new();
            let mut at = q.len();
            for _ in 0..answers {
                // Name (a pointer, 2 bytes), type, class, ttl, rdlength.
                let rdlen = u16::from_be_bytes([r[at + 10], r[at + 11]]) as usize;
                if rdlen == 4 {
                    out.push(Ipv4Addr::new(r[at + 12], r[at + 13], r[at + 14], r[at + 15]));
                }
                at += 12 + rdlen;
            }
            Ok(out)
        })
    })
    .await
    .unwrap()
}

/// Polls `probe` until `want` holds for its outcome, or panics after `timeout` naming what
/// was tried and what it last got.
pub async fn until<F, Fut>(
    what: &str,
    timeout: Duration,
    want: impl Fn(&Outcome) -> bool,
    probe: F,
) -> Outcome
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = probe().await;
        if want(&got) {
            return got;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: still {got:?} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
