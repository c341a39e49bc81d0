//! The pods' DNS server: answers `A` queries for `<svc>.<ns>.svc[.<domain>]` from the
//! watched Services (cluster IP, or ready endpoints of a headless Service). Every other
//! name is NXDOMAIN: there is no upstream resolver (pods have no route off the machine).

use std::net::Ipv4Addr;

use tokio::net::UdpSocket;

use crate::services::ServiceTable;

/// Serves DNS on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, table: ServiceTable, domain: String) {
    let mut buf = [0u8; 1500];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "dns receive");
                continue;
            }
        };
        let Some(query) = buf.get(..len) else { continue };
        if let Some(reply) = answer(query, |name| table.resolve(name, &domain)) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// Builds the reply to one query; `lookup` gives the addresses of a name (None: unknown).
pub fn answer(query: &[u8], lookup: impl Fn(&str) -> Option<Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if qdcount != 1 {
        return None;
    }
    // Question: labels, then type and class.
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_string());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let question = query.get(12..question_end)?;
    let name = labels.join(".");
    let found = lookup(&name);
    let answers: Vec<Ipv4Addr> = match (&found, qtype) {
        (Some(ips), 1 | 255) => ips.clone(),
        _ => Vec::new(),
    };
    let rcode: u8 = if found.is_some() { 0 } else { 3 };
    let mut out = Vec::with_capacity(question_end + answers.len() * 16);
    out.extend_from_slice(&query[0..2]);
    // QR, opcode copied, AA; RD copied; RA clear.
    out.push(0x80 | (query[2] & 0x78) | 0x04 | (query[2] & 0x01));
    out.push(rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(answers.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(question);
    for ip in answers {
        out.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        out.extend_from_slice(&5u32.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(u8::try_from(l.len()).unwrap());
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn known_names_get_an_a_record_and_unknown_names_nxdomain() {
        let lookup = |n: &str| (n == "web.ns.svc.cluster.local").then(|| vec![Ipv4Addr::new(10, 0, 0, 9)]);
        let r = answer(&query("web.ns.svc.cluster.local", 1), lookup).unwrap();
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 9]);
        let aaaa = answer(&query("web.ns.svc.cluster.local", 28), lookup).unwrap();
        assert_eq!((aaaa[3] & 0x0f, u16::from_be_bytes([aaaa[6], aaaa[7]])), (0, 0));
        let nx = answer(&query("example.com", 1), lookup).unwrap();
        assert_eq!(nx[3] & 0x0f, 3);
    }
}
