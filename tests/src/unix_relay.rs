//! A loopback TCP port relayed to a Unix socket, byte for byte: how a
//! browser, which speaks no Unix sockets, reaches the daemon's control
//! socket in a test (the control API's TCP port asks for a bearer header a
//! browser does not send).

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The relay; it stops accepting when dropped.
#[derive(Debug)]
pub struct UnixRelay {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl UnixRelay {
    /// Relays each connection to `127.0.0.1:PORT` to `socket`.
    pub fn start(socket: PathBuf) -> UnixRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if stopping.load(Ordering::Acquire) {
                    return;
                }
                let (Ok(tcp), Ok(unix)) = (tcp, UnixStream::connect(&socket)) else {
                    continue;
                };
                relay(tcp, unix);
            }
        });
        UnixRelay { addr, stop }
    }
}

impl Drop for UnixRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies both ways on two threads; each direction's end is passed on.
fn relay(tcp: TcpStream, unix: UnixStream) {
    let (Ok(mut tcp_in), Ok(mut unix_out)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut tcp_in, &mut unix_out);
        let _ = unix_out.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut unix_in, mut tcp_out) = (unix, tcp);
        let _ = std::io::copy(&mut unix_in, &mut tcp_out);
        let _ = tcp_out.shutdown(Shutdown::Write);
    });
}
