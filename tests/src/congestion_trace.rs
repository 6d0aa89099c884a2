//! Recording what quinn tells a congestion controller during a real
//! transfer, and replaying it into another controller: so the WASM NewReno
//! and Cubic can be compared with quinn's own on exactly the same sends,
//! ACK frames and losses.
//!
//! A trace lives in memory only: quinn's `RttEstimator` cannot be built
//! outside quinn, so the recorded calls keep the estimator quinn passed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::congestion::{Controller, ControllerFactory};
use quinn_proto::RttEstimator;
use rustls::pki_types::pem::PemObject;

use crate::udp_relay::LossyRelay;

/// One call quinn made. (No `Debug`: quinn's `RttEstimator` has none.)
#[allow(missing_debug_implementations)]
#[derive(Clone, Copy)]
pub enum Call {
    /// `on_sent`.
    Sent {
        /// When.
        now: Instant,
        /// Bytes.
        bytes: u64,
        /// The datagram's last packet number.
        pn: u64,
    },
    /// `on_ack`, one packet.
    Ack {
        /// When.
        now: Instant,
        /// When the packet was sent.
        sent: Instant,
        /// Its size.
        bytes: u64,
        /// Whether the sender was application-limited.
        app_limited: bool,
        /// The estimator quinn passed.
        rtt: RttEstimator,
    },
    /// `on_end_acks`: the end of an ACK frame.
    EndAcks {
        /// When.
        now: Instant,
        /// Bytes in flight.
        in_flight: u64,
        /// Whether the sender was application-limited.
        app_limited: bool,
        /// The largest packet number acknowledged.
        largest: Option<u64>,
    },
    /// `on_congestion_event`.
    Congestion {
        /// When.
        now: Instant,
        /// When the newest lost packet was sent.
        sent: Instant,
        /// Persistent congestion.
        persistent: bool,
        /// Bytes lost (0 for ECN).
        lost: u64,
    },
    /// `on_mtu_update`.
    Mtu(u16),
}

/// A call and the recorded controller's window after it.
#[allow(missing_debug_implementations)]
#[derive(Clone, Copy)]
pub struct Step {
    /// The call.
    pub call: Call,
    /// The window after it.
    pub window: u64,
}

/// Everything quinn told one connection's controller.
#[allow(missing_debug_implementations)]
#[derive(Default)]
pub struct Trace {
    /// When the controller was built and with which MTU.
    pub created: Option<(Instant, u16)>,
    /// The calls, in order.
    pub steps: Vec<Step>,
}

impl Trace {
    /// How many calls of each kind: (acks, ACK frames, congestion events,
    /// of which persistent, MTU updates).
    pub fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0, 0);
        for s in &self.steps {
            match s.call {
                Call::Ack { .. } => c.0 += 1,
                Call::EndAcks { .. } => c.1 += 1,
                Call::Congestion { persistent, .. } => {
                    c.2 += 1;
                    c.3 += usize::from(persistent);
                }
                Call::Mtu(_) => c.4 += 1,
                Call::Sent { .. } => {}
            }
        }
        c
    }
}

/// Feeds `trace` to `c`; returns the window after each step.
pub fn replay(trace: &Trace, c: &mut dyn Controller) -> Vec<u64> {
    trace
        .steps
        .iter()
        .map(|s| {
            match s.call {
                Call::Sent { now, bytes, pn } => c.on_sent(now, bytes, pn),
                Call::Ack {
                    now,
                    sent,
                    bytes,
                    app_limited,
                    rtt,
                } => c.on_ack(now, sent, bytes, app_limited, &rtt),
                Call::EndAcks {
                    now,
                    in_flight,
                    app_limited,
                    largest,
                } => c.on_end_acks(now, in_flight, app_limited, largest),
                Call::Congestion {
                    now,
                    sent,
                    persistent,
                    lost,
                } => c.on_congestion_event(now, sent, persistent, lost),
                Call::Mtu(m) => c.on_mtu_update(m),
            }
            c.window()
        })
        .collect()
}

/// The steps after which a controller told of acknowledgements once per
/// ACK frame has settled: the end of each frame, and congestion events and
/// MTU updates outside a frame. (quinn reports an MTU probe's
/// acknowledgement in the middle of a frame, before the frame is delivered.)
pub fn settled(trace: &Trace) -> Vec<bool> {
    let mut in_frame = false;
    trace
        .steps
        .iter()
        .map(|s| match s.call {
            Call::Ack { .. } => {
                in_frame = true;
                false
            }
            Call::EndAcks { .. } => {
                in_frame = false;
                true
            }
            Call::Congestion { .. } | Call::Mtu(_) => !in_frame,
            Call::Sent { .. } => false,
        })
        .collect()
}

/// A controller that records every call before passing it on.
struct Recorder {
    inner: Box<dyn Controller>,
    trace: Arc<Mutex<Trace>>,
}

impl Recorder {
    fn push(&self, call: Call) {
        let window = self.inner.window();
        self.trace.lock().unwrap().steps.push(Step { call, window });
    }
}

impl Controller for Recorder {
    fn on_sent(&mut self, now: Instant, bytes: u64, pn: u64) {
        self.inner.on_sent(now, bytes, pn);
        self.push(Call::Sent { now, bytes, pn });
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
        self.push(Call::Ack {
            now,
            sent,
            bytes,
            app_limited,
            rtt: *rtt,
        });
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest: Option<u64>,
    ) {
        self.inner.on_end_acks(now, in_flight, app_limited, largest);
        self.push(Call::EndAcks {
            now,
            in_flight,
            app_limited,
            largest,
        });
    }

    fn on_congestion_event(&mut self, now: Instant, sent: Instant, persistent: bool, lost: u64) {
        self.inner.on_congestion_event(now, sent, persistent, lost);
        self.push(Call::Congestion {
            now,
            sent,
            persistent,
            lost,
        });
    }

    fn on_mtu_update(&mut self, mtu: u16) {
        self.inner.on_mtu_update(mtu);
        self.push(Call::Mtu(mtu));
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        // A migrated path is not part of the trace.
        self.inner.clone_box()
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self.inner.into_any()
    }
}

/// A factory whose controllers are `inner`'s, recorded into `trace`.
#[allow(missing_debug_implementations)]
pub struct Recording<F> {
    /// The factory of the controller that actually drives the transfer.
    pub inner: Arc<F>,
    /// Where the calls go.
    pub trace: Arc<Mutex<Trace>>,
}

impl<F: ControllerFactory + Send + Sync + 'static> ControllerFactory for Recording<F> {
    fn build(self: Arc<Self>, now: Instant, mtu: u16) -> Box<dyn Controller> {
        self.trace.lock().unwrap().created = Some((now, mtu));
        Box::new(Recorder {
            inner: self.inner.clone().build(now, mtu),
            trace: self.trace.clone(),
        })
    }
}

/// What an upload measured.
#[derive(Debug, Clone, Copy)]
pub struct Upload {
    /// From the stream's first byte to the server's confirmation.
    pub elapsed: Duration,
    /// Bytes the server counted.
    pub received: u64,
    /// The fraction of client datagrams the relay dropped.
    pub loss: f64,
}

/// A quinn server on loopback, on a runtime of its own, that counts the
/// bytes each client sends on a stream and answers with the count.
pub struct BulkServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    ca: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for BulkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for BulkServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl BulkServer {
    /// Starts the server.
    pub fn start() -> BulkServer {
        let (ca, cert, key) = crate::origin::certificates(&["www.test"]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs(&cert), key)
            .unwrap();
        tls.alpn_protocols = vec![b"bulk".to_vec()];
        let config = quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap(),
        ));
        // One worker: the server's CPU stays off the client's thread.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = {
            let _guard = runtime.enter();
            quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap()
        };
        let addr = server.local_addr().unwrap();
        runtime.spawn(async move {
            while let Some(incoming) = server.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let mut n = 0u64;
                        while let Ok(Some(chunk)) = recv.read_chunk(1 << 20, true).await {
                            n += chunk.bytes.len() as u64;
                        }
                        let _ = send.write_all(&n.to_be_bytes()).await;
                        let _ = send.finish();
                    }
                });
            }
        });
        BulkServer {
            addr,
            ca,
            runtime: Some(runtime),
        }
    }

    /// Sends `bytes` over one QUIC stream from a client whose congestion
    /// controller comes from `factory`, through a relay dropping `loss` of
    /// the datagrams (seeded by `seed`; no relay for a loss of 0). The
    /// client is the sender, so its controller is the one at work; it runs
    /// on the caller's runtime.
    pub async fn upload(
        &self,
        factory: Arc<dyn ControllerFactory + Send + Sync>,
        bytes: u64,
        loss: f64,
        seed: u64,
    ) -> Upload {
        let relay = (loss > 0.0).then(|| LossyRelay::start(self.addr, loss, seed));
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&self.ca) {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"bulk".to_vec()];
        let mut config = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
        ));
        let mut transport = quinn::TransportConfig::default();
        transport.congestion_controller_factory(factory);
        config.transport_config(Arc::new(transport));
        let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = relay.as_ref().map_or(self.addr, |r| r.addr);
        let conn = client
            .connect_with(config, to, "www.test")
            .unwrap()
            .await
            .unwrap();
        let started = Instant::now();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        static ZEROS: [u8; 1 << 20] = [0; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64) as usize;
            send.write_chunk(Bytes::from_static(&ZEROS[..n]))
                .await
                .unwrap();
            left -= n as u64;
        }
        send.finish().unwrap();
        let count = recv.read_to_end(8).await.unwrap();
        let elapsed = started.elapsed();
        conn.close(0u32.into(), b"done");
        client.wait_idle().await;
        Upload {
            elapsed,
            received: u64::from_be_bytes(count.try_into().unwrap()),
            loss: relay.as_ref().map_or(0.0, LossyRelay::up_loss),
        }
    }
}

fn certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}
