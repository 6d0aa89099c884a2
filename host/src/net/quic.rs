//! QUIC connections for HTTP/3, with quinn. Every connection gets a UDP
//! socket (and a quinn endpoint) of its own: a fresh local port, hence a
//! fresh NAT mapping, so a server cannot link two connections by port.
//!
//! Batched UDP I/O is quinn-udp's (recvmmsg, GSO and GRO where the kernel
//! has them) behind quinn's endpoint, which receives into one long-lived
//! buffer per socket. With batching off, a plain socket sends and receives
//! one datagram per system call, for comparison.

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, TokioRuntime, UdpPoller};

use super::congestion::{CongestionSelector, CongestionStatus, NativeCubic};
use super::pool::OriginKey;
use super::windows::{CONNECTION_WINDOW, STREAM_WINDOW};

/// Longest a QUIC handshake may take before the attempt fails.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle QUIC connection lives (the peer may choose less).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// UDP system calls made by sockhost's QUIC sockets (both kinds), for
/// benchmarks: each send is one `sendmsg`/`sendto` (carrying several
/// datagrams with GSO), each receive one `recvmmsg`/`recvfrom` that
/// returned data.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UdpStats {
    /// Send calls that sent.
    pub sends: u64,
    /// Datagrams those sends carried.
    pub sent_datagrams: u64,
    /// Receive calls that returned datagrams.
    pub recvs: u64,
    /// Datagrams those receives returned.
    pub received_datagrams: u64,
}

static SENDS: AtomicU64 = AtomicU64::new(0);
static SENT_DATAGRAMS: AtomicU64 = AtomicU64::new(0);
static RECVS: AtomicU64 = AtomicU64::new(0);
static RECEIVED_DATAGRAMS: AtomicU64 = AtomicU64::new(0);

/// The counts so far, process-wide.
pub fn udp_stats() -> UdpStats {
    UdpStats {
        sends: SENDS.load(Ordering::Relaxed),
        sent_datagrams: SENT_DATAGRAMS.load(Ordering::Relaxed),
        recvs: RECVS.load(Ordering::Relaxed),
        received_datagrams: RECEIVED_DATAGRAMS.load(Ordering::Relaxed),
    }
}

/// Why a QUIC connection could not be set up. The messages leave the peer
/// out: the race names it with each attempt's error.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The local UDP socket could not be opened.
    #[error("cannot open a UDP socket: {source}")]
    Socket {
        /// The peer.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// quinn refused to start the connection (e.g. a bad server name).
    #[error("cannot start QUIC: {why}")]
    Start {
        /// The peer.
        addr: SocketAddr,
        /// What quinn said.
        why: String,
    },
    /// The handshake failed (TLS errors are named as for TCP).
    #[error("QUIC handshake failed: {why}")]
    Handshake {
        /// The peer.
        addr: SocketAddr,
        /// What failed.
        why: String,
    },
    /// No answer within the handshake timeout (a UDP black hole looks so).
    #[error("QUIC handshake: no answer in {timeout:?}")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
}

/// The TLS configuration cannot drive QUIC (it offers no TLS 1.3 suite
/// QUIC can use for its initial packets).
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration unusable for QUIC: {0}")]
pub struct QuicConfigError(#[from] quinn::crypto::rustls::NoInitialCipherSuite);

/// QUIC client settings shared by every connection.
#[derive(Debug, Clone)]
pub struct Quic {
    config: quinn::ClientConfig,
    /// Batched UDP I/O (quinn-udp) or one datagram per system call.
    pub batching: bool,
    /// Per-attempt handshake timeout.
    pub handshake_timeout: Duration,
    /// Chooses each new connection's congestion controller.
    pub congestion: Arc<dyn CongestionSelector>,
}

/// A QUIC connection that finished its handshake.
#[derive(Debug)]
pub struct QuicConnection {
    /// The connection.
    pub connection: quinn::Connection,
    /// Its endpoint (its own socket); dropped with the connection.
    pub endpoint: quinn::Endpoint,
    /// Handshake time.
    pub elapsed: Duration,
    /// The local address of its socket.
    pub local: SocketAddr,
    /// What controls its congestion.
    pub congestion: Arc<CongestionStatus>,
}

impl Quic {
    /// Settings from a rustls configuration offering `h3` (TLS 1.3 only).
    pub fn new(tls: Arc<rustls::ClientConfig>, batching: bool) -> Result<Quic, QuicConfigError> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        Ok(Quic {
            config,
            batching,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            congestion: Arc::new(NativeCubic),
        })
    }

    /// The client configuration of one new connection to `origin`: the
    /// shared TLS settings with a transport of its own, whose congestion
    /// controller is the one chosen for the origin's host right now.
    fn connection_config(
        &self,
        origin: &OriginKey,
    ) -> (quinn::ClientConfig, Arc<CongestionStatus>) {
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(
            IDLE_TIMEOUT
                .try_into()
                .expect("the idle timeout fits QUIC's varint"),
        ));
        // The same windows as HTTP/2's (see `windows`). quinn's default
        // connection window is unbounded: nothing stalls, but what unread
        // streams hold would grow with the server's stream limit.
        transport.stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW));
        transport.receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW));
        let selected = self.congestion.select(origin);
        transport.congestion_controller_factory(selected.factory);
        let mut config = self.config.clone();
        config.transport_config(Arc::new(transport));
        (config, selected.status)
    }

    /// Opens a QUIC connection to `addr` for `server_name` (of `origin`) on
    /// a UDP socket of its own.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
        origin: &OriginKey,
    ) -> Result<QuicConnection, QuicError> {
        let started = Instant::now();
        let endpoint = self.endpoint(addr)?;
        let local = endpoint
            .local_addr()
            .map_err(|source| QuicError::Socket { addr, source })?;
        let (config, congestion) = self.connection_config(origin);
        let connecting = endpoint
            .connect_with(config, addr, server_name)
            .map_err(|e| QuicError::Start {
                addr,
                why: e.to_string(),
            })?;
        let connection = match tokio::time::timeout(self.handshake_timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(QuicError::Handshake {
                    addr,
                    why: describe(&e),
                })
            }
            Err(_) => {
                return Err(QuicError::Timeout {
                    addr,
                    timeout: self.handshake_timeout,
                })
            }
        };
        Ok(QuicConnection {
            connection,
            endpoint,
            elapsed: started.elapsed(),
            local,
            congestion,
        })
    }

    fn endpoint(&self, peer: SocketAddr) -> Result<quinn::Endpoint, QuicError> {
        let fail = |source| QuicError::Socket { addr: peer, source };
        let bind: SocketAddr = if peer.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = std::net::UdpSocket::bind(bind).map_err(fail)?;
        socket.set_nonblocking(true).map_err(fail)?;
        let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime);
        let socket: Arc<dyn AsyncUdpSocket> = if self.batching {
            Arc::new(Counted(runtime.wrap_udp_socket(socket).map_err(fail)?))
        } else {
            Arc::new(Counted(Arc::new(PlainUdpSocket {
                io: tokio::net::UdpSocket::from_std(socket).map_err(fail)?,
            })))
        };
        quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            None,
            socket,
            runtime,
        )
        .map_err(fail)
    }
}

/// A quinn connection error in a user's words; certificate problems are
/// named as they are for TCP.
fn describe(e: &quinn::ConnectionError) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("unknownissuer") {
        "certificate is signed by an unknown issuer (use --ca to trust a private CA)".to_owned()
    } else if lower.contains("notvalidforname") {
        "certificate is not valid for this name".to_owned()
    } else if lower.contains("expired") {
        "certificate has expired".to_owned()
    } else if lower.contains("no_application_protocol") || lower.contains("noapplicationprotocol") {
        "the server does not speak HTTP/3 (no ALPN h3)".to_owned()
    } else {
        text
    }
}

/// A socket whose system calls are counted in [`udp_stats`].
#[derive(Debug)]
struct Counted(Arc<dyn AsyncUdpSocket>);

impl AsyncUdpSocket for Counted {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.0.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.0.try_send(transmit)?;
        SENDS.fetch_add(1, Ordering::Relaxed);
        let datagrams = match transmit.segment_size {
            Some(size) if size > 0 => transmit.contents.len().div_ceil(size),
            _ => 1,
        };
        SENT_DATAGRAMS.fetch_add(datagrams as u64, Ordering::Relaxed);
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.0.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled {
            RECVS.fetch_add(1, Ordering::Relaxed);
            let datagrams: usize = meta[..*n]
                .iter()
                .map(|m| {
                    if m.stride > 0 {
                        m.len.div_ceil(m.stride)
                    } else {
                        1
                    }
                })
                .sum();
            RECEIVED_DATAGRAMS.fetch_add(datagrams as u64, Ordering::Relaxed);
        }
        polled
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.0.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.0.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.0.may_fragment()
    }
}

/// A UDP socket without batching: one `sendto` per datagram, one
/// `recvfrom` per datagram, no GSO/GRO. quinn asks it for one segment at a
/// time because it says it takes no more.
#[derive(Debug)]
struct PlainUdpSocket {
    io: tokio::net::UdpSocket,
}

impl AsyncUdpSocket for PlainUdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(WritablePoller { socket: self })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // max_transmit_segments is 1: quinn never hands this socket a
        // GSO batch.
        self.io
            .try_send_to(transmit.contents, transmit.destination)
            .map(drop)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut read = tokio::io::ReadBuf::new(buf);
        let addr = std::task::ready!(self.io.poll_recv_from(cx, &mut read))?;
        let len = read.filled().len();
        *m = RecvMeta {
            addr,
            len,
            stride: len,
            ecn: None,
            dst_ip: None,
        };
        Poll::Ready(Ok(1))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

/// Waits for the plain socket to become writable.
#[derive(Debug)]
struct WritablePoller {
    socket: Arc<PlainUdpSocket>,
}

impl UdpPoller for WritablePoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        self.socket.io.poll_send_ready(cx)
    }
}
