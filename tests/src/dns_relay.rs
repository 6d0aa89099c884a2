//! A DNS relay on loopback that holds back the queries of chosen record
//! types before passing them upstream: a slow AAAA (or A, or HTTPS) answer
//! from a real server, as when one query of a happy-eyeballs lookup is
//! lost and retried.
//!
//! UDP only: nothing listens for TCP on the relay's port, so a truncated
//! answer cannot be retried over TCP through it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// How long the relay waits for upstream's answer to one query.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// A running relay; stops when dropped.
pub struct DelayRelay {
    /// Where it listens (UDP on 127.0.0.1).
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for DelayRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayRelay")
            .field("addr", &self.addr)
            .finish()
    }
}

impl DelayRelay {
    /// Relays queries to `upstream` (UDP), each after the delay `delays`
    /// gives its QTYPE (1 A, 28 AAAA, 65 HTTPS; others at once), and sends
    /// the answer back to the asker. Datagrams that are not a question are
    /// dropped.
    pub fn start(upstream: SocketAddr, delays: Vec<(u16, Duration)>) -> DelayRelay {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let socket = runtime
            .block_on(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
            .expect("relay UDP socket");
        let addr = socket.local_addr().expect("relay address");
        let socket = Arc::new(socket);
        runtime.spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((len, asker)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let query = buf[..len].to_vec();
                let Some(qtype) = question_type(&query) else {
                    continue;
                };
                let delay = delays
                    .iter()
                    .find(|(t, _)| *t == qtype)
                    .map(|(_, d)| *d)
                    .unwrap_or_default();
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(answer) = ask(upstream, &query).await {
                        let _ = socket.send_to(&answer, asker).await;
                    }
                });
            }
        });
        DelayRelay {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sends `query` to `upstream` from a socket of its own (so the answer
/// cannot be another query's) and returns the first answer with the
/// query's id, if one comes within [`UPSTREAM_TIMEOUT`].
async fn ask(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        loop {
            let len = socket.recv(&mut buf).await.ok()?;
            if len >= 2 && buf[..2] == query[..2] {
                return Some(buf[..len].to_vec());
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// The QTYPE of a query's first question: after the 12-byte header and
/// the QNAME's labels. `None` for anything that is not a query with a
/// well-formed question (compression has no place in a query's first
/// name).
fn question_type(datagram: &[u8]) -> Option<u16> {
    const HEADER: usize = 12;
    let is_response = datagram.get(2)? & 0x80 != 0;
    let questions = u16::from_be_bytes([*datagram.get(4)?, *datagram.get(5)?]);
    if is_response || questions == 0 {
        return None;
    }
    let mut at = HEADER;
    loop {
        let len = usize::from(*datagram.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        at += len;
    }
    Some(u16::from_be_bytes([
        *datagram.get(at)?,
        *datagram.get(at + 1)?,
    ]))
}

#[cfg(test)]
mod tests {
    use super::question_type;

    #[test]
    fn question_types_are_read_and_malformed_queries_dropped() {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03www\x04test\x00\x00\x1c\x00\x01");
        assert_eq!(question_type(&q), Some(28));
        // Cut inside the name, inside the type; a pointer; a response.
        assert_eq!(question_type(&q[..16]), None);
        assert_eq!(question_type(&q[..q.len() - 3]), None);
        let mut pointer = q[..12].to_vec();
        pointer.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(question_type(&pointer), None);
        let mut response = q.clone();
        response[2] |= 0x80;
        assert_eq!(question_type(&response), None);
    }
}
