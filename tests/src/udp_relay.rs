//! A user-space UDP relay on loopback that drops a fixed fraction of the
//! datagrams it forwards, in both directions: a lossy path for QUIC, so
//! congestion controllers have losses to react to (there is no netem on
//! these machines).
//!
//! One client at a time: datagrams from the upstream go to the address the
//! latest client datagram came from. The drops come from a seeded generator,
//! so a run's loss pattern depends only on the order of datagrams.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest datagram relayed (a UDP payload can be no larger).
const MAX_DATAGRAM: usize = 65_535;

/// How often the relay threads look at the stop flag when idle.
const POLL: Duration = Duration::from_millis(50);

/// Datagrams seen and dropped, per direction.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Client to upstream: forwarded.
    pub up_forwarded: AtomicU64,
    /// Client to upstream: dropped.
    pub up_dropped: AtomicU64,
    /// Upstream to client: forwarded.
    pub down_forwarded: AtomicU64,
    /// Upstream to client: dropped.
    pub down_dropped: AtomicU64,
}

/// A running relay; stops when dropped.
#[derive(Debug)]
pub struct LossyRelay {
    /// Where clients send (127.0.0.1, or ::1 for an IPv6 upstream).
    pub addr: SocketAddr,
    /// What it did so far.
    pub stats: Arc<RelayStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// xorshift64*: a small, seeded, deterministic generator.
#[derive(Debug, Clone)]
struct Drops {
    state: u64,
    /// Drop when the next value is below this.
    threshold: u64,
}

impl Drops {
    fn new(loss: f64, seed: u64) -> Drops {
        assert!((0.0..1.0).contains(&loss), "loss must be in [0, 1): {loss}");
        Drops {
            state: seed | 1,
            threshold: (loss * u64::MAX as f64) as u64,
        }
    }

    fn drop_next(&mut self) -> bool {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) < self.threshold
    }
}

impl LossyRelay {
    /// Relays between clients and `upstream`, dropping `loss` (0 to <1) of
    /// the datagrams in each direction; `seed` fixes which.
    pub fn start(upstream: SocketAddr, loss: f64, seed: u64) -> LossyRelay {
        let local: SocketAddr = if upstream.is_ipv6() {
            "[::1]:0".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        };
        let front = UdpSocket::bind(local).expect("bind the relay's client side");
        let back = UdpSocket::bind(local).expect("bind the relay's upstream side");
        back.connect(upstream).expect("connect to the upstream");
        for s in [&front, &back] {
            s.set_read_timeout(Some(POLL)).unwrap();
        }
        let addr = front.local_addr().unwrap();
        let stats = Arc::new(RelayStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let up = {
            let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (stats, stop, client) = (stats.clone(), stop.clone(), client.clone());
            let mut drops = Drops::new(loss, seed);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    if drops.drop_next() {
                        stats.up_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // A full socket buffer drops too, as a router would.
                    let _ = back.send(&buf[..n]);
                    stats.up_forwarded.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let down = {
            let (stats, stop) = (stats.clone(), stop.clone());
            let mut drops = Drops::new(loss, seed.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = back.recv(&mut buf) else {
                        continue;
                    };
                    let Some(to) = *client.lock().unwrap() else {
                        continue;
                    };
                    if drops.drop_next() {
                        stats.down_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let _ = front.send_to(&buf[..n], to);
                    stats.down_forwarded.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        LossyRelay {
            addr,
            stats,
            stop,
            threads: vec![up, down],
        }
    }

    /// The fraction of client-to-upstream datagrams dropped so far.
    pub fn up_loss(&self) -> f64 {
        let d = self.stats.up_dropped.load(Ordering::Relaxed) as f64;
        let f = self.stats.up_forwarded.load(Ordering::Relaxed) as f64;
        if d + f == 0.0 {
            0.0
        } else {
            d / (d + f)
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_rate_is_close_to_the_loss_asked_for_and_repeatable() {
        for loss in [0.0, 0.01, 0.1] {
            let mut d = Drops::new(loss, 7);
            let dropped = (0..100_000).filter(|_| d.drop_next()).count();
            let rate = dropped as f64 / 100_000.0;
            assert!((rate - loss).abs() < 0.002, "asked {loss}, got {rate}");
        }
        let a: Vec<bool> = {
            let mut d = Drops::new(0.01, 42);
            (0..10_000).map(|_| d.drop_next()).collect()
        };
        let mut d = Drops::new(0.01, 42);
        assert!(a.iter().all(|&x| x == d.drop_next()));
    }

    #[test]
    fn datagrams_go_both_ways_and_some_are_dropped() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A dropped datagram costs one timeout: keep them short.
        server
            .set_read_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        let relay = LossyRelay::start(server.local_addr().unwrap(), 0.1, 1);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        let mut got_back = 0;
        let mut buf = [0u8; 64];
        for i in 0..500u32 {
            client.send_to(&i.to_be_bytes(), relay.addr).unwrap();
            if let Ok((n, from)) = server.recv_from(&mut buf) {
                server.send_to(&buf[..n], from).unwrap();
                if client.recv(&mut buf).is_ok() {
                    got_back += 1;
                }
            }
        }
        // About 0.9 * 0.9 of 500 make the round trip.
        assert!((330..=470).contains(&got_back), "{got_back} round trips");
        assert!(relay.up_loss() > 0.03 && relay.up_loss() < 0.2);
    }
}
