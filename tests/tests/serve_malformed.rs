//! `sockhost serve` against malformed and hostile clients, written as raw
//! bytes: each gets its status (from hyper's parser or from the proxy),
//! never a hang or a panic, and a client that stops mid-head is cut off.
//! The daemon runs in-process on a loopback port.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sockhost::host::Host;
use sockhost::serve::listen;
use sockhost::serve::proxy::Proxy;
use sockhost::serve::server::{self, Server, MAX_HEADERS, MAX_HEADER_BYTES};
use sockhost_tests::rt;

/// How long a read may block: a hang fails the test instead of stalling it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The daemon's header read timeout here (30 s by default).
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

/// The daemon on a free loopback port, in a thread of its own; shut down
/// when dropped.
struct Daemon {
    addr: SocketAddr,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn start() -> Daemon {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sockhost.sock");
        let path = socket.clone();
        let thread = std::thread::spawn(move || {
            rt().block_on(async move {
                let listener = listen::tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
                let unix = listen::unix(&path).await.unwrap();
                let addrs = server::addresses(std::slice::from_ref(&listener));
                addr_tx.send(addrs[0]).unwrap();
                let proxy = Proxy::new(Host::builder().build().unwrap(), addrs);
                Server::new(proxy, vec![listener], Some((unix, path)))
                    .header_read_timeout(HEADER_TIMEOUT)
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx
            .recv_timeout(READ_TIMEOUT)
            .expect("the daemon listens");
        Daemon {
            addr,
            socket,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        s
    }

    /// Writes `request`, reads one response.
    fn send(&self, request: &[u8]) -> Answer {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        Answer::read(s)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One response as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
    /// The server closed the connection after the response.
    closed: bool,
}

impl Answer {
    fn read(mut s: TcpStream) -> Answer {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) => panic!(
                    "closed without a response; got {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("no response within {READ_TIMEOUT:?}: {e}"),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no content-length in {head:?}"));
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let n = s.read(&mut chunk).expect("the body arrives");
            assert!(n > 0, "closed mid-body");
            body.extend_from_slice(&chunk[..n]);
        }
        // The connection is closed now, or kept open for the next request.
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let closed = match s.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => panic!("more bytes after the response: {:?}", &chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
            Err(_) => false,
        };
        Answer {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
            closed,
        }
    }
}

/// How long until the server closes `s` (which sends nothing more).
fn closed_after(mut s: impl Read, start: Instant) -> Duration {
    let mut chunk = [0u8; 1024];
    match s.read(&mut chunk) {
        Ok(0) => start.elapsed(),
        Ok(n) => panic!(
            "bytes instead of a close: {:?}",
            String::from_utf8_lossy(&chunk[..n])
        ),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => start.elapsed(),
        Err(e) => panic!("still open after {:?}: {e}", start.elapsed()),
    }
}

#[test]
fn what_the_proxy_refuses_gets_a_status_and_a_one_line_reason() {
    let d = Daemon::start();
    let origin_form = d.send(b"GET / HTTP/1.1\r\nHost: www.test\r\n\r\n");
    assert_eq!(origin_form.status, 400, "{origin_form:?}");
    assert!(origin_form.body.contains("absolute URL"), "{origin_form:?}");
    assert_eq!(origin_form.body.lines().count(), 1, "{origin_form:?}");

    // hyper takes obs-text in a value; the pipeline takes visible ASCII.
    let latin =
        d.send(b"GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\nX-Name: caf\xe9\r\n\r\n");
    assert_eq!(latin.status, 400, "{latin:?}");
    assert!(latin.body.contains("x-name"), "{latin:?}");
    assert_eq!(latin.body.lines().count(), 1, "{latin:?}");

    let me = format!("GET http://{0}/ HTTP/1.1\r\nHost: {0}\r\n\r\n", d.addr);
    let me = d.send(me.as_bytes());
    assert_eq!(me.status, 508, "{me:?}");
    assert!(me.head.to_ascii_lowercase().contains("via:"), "{me:?}");
    assert!(me.body.contains("the proxy itself"), "{me:?}");
    assert_eq!(me.body.lines().count(), 1, "{me:?}");
}

/// What hyper's parser rejects is answered by hyper, with an empty body,
/// and the connection is closed: the rest of the bytes cannot be trusted.
#[test]
fn malformed_requests_get_400_and_the_connection_closed() {
    let d = Daemon::start();
    for (what, request) in [
        ("a request line without target or version", &b"GARBAGE\r\n\r\n"[..]),
        (
            "an unknown HTTP version",
            b"GET http://x/ HTTP/9.9\r\nHost: x\r\n\r\n",
        ),
        (
            "two differing Content-Lengths",
            b"POST http://x/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "a NUL in a header value",
            b"GET http://x/ HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n",
        ),
        (
            "a Transfer-Encoding that does not end in chunked",
            b"POST http://x/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        ),
    ] {
        let a = d.send(request);
        assert_eq!(a.status, 400, "{what}: {a:?}");
        // hyper's own answer: no reason, and not through the proxy (no Via).
        assert!(!a.head.to_ascii_lowercase().contains("via:"), "{what}: {a:?}");
        assert!(a.closed, "{what}: the connection stays open: {a:?}");
    }
}

/// Content-Length and Transfer-Encoding together: hyper follows RFC 9112
/// §6.1's other choice, reads the body as chunked (Content-Length
/// dropped) and closes the connection after the response, so nothing the
/// client smuggled after the body is read as a request.
#[test]
fn content_length_with_chunked_is_read_as_chunked_and_the_connection_closed() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = upstream.local_addr().unwrap().port();
    let origin = std::thread::spawn(move || {
        let (s, _) = upstream.accept().unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut r = std::io::BufReader::new(s);
        let mut head = String::new();
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            head.push_str(&line);
        }
        let lower = head.to_ascii_lowercase();
        let length = lower.lines().find_map(|l| {
            l.strip_prefix("content-length:")?
                .trim()
                .parse::<usize>()
                .ok()
        });
        // The body streams: its length unknown, it goes upstream chunked.
        let body = match length {
            Some(n) => {
                let mut body = vec![0; n];
                r.read_exact(&mut body).unwrap();
                body
            }
            None => read_chunked(&mut r),
        };
        let mut s = r.into_inner();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(answer.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        head
    });
    let d = Daemon::start();
    let request = format!(
        "POST http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    );
    let a = d.send(request.as_bytes());
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "hello", "the chunked body went upstream: {a:?}");
    assert!(a.closed, "the connection stays open after CL+TE: {a:?}");
    let head = origin.join().unwrap().to_ascii_lowercase();
    assert!(
        !(head.contains("transfer-encoding") && head.contains("content-length")),
        "the upstream request is ambiguous too: {head}"
    );
}

/// A chunked body (RFC 9112 §7.1), read to its last chunk.
fn read_chunked(r: &mut impl std::io::BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        let mut chunk = vec![0; size + 2];
        r.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

#[test]
fn oversized_heads_get_431() {
    let d = Daemon::start();
    let big = format!(
        "GET http://x/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 << 10)
    );
    assert!(big.len() > MAX_HEADER_BYTES);
    let a = d.send(big.as_bytes());
    assert_eq!(a.status, 431, "{a:?}");
    assert!(a.closed, "{a:?}");

    let mut many = String::from("GET http://x/ HTTP/1.1\r\nHost: x\r\n");
    for i in 0..MAX_HEADERS + 1 {
        many.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    assert!(many.len() < MAX_HEADER_BYTES);
    let a = d.send(many.as_bytes());
    assert_eq!(a.status, 431, "{a:?}");
    assert!(a.closed, "{a:?}");
}

/// A client that starts a request and stops (slowloris), or connects and
/// says nothing, is cut off after the header read timeout.
#[test]
fn a_client_that_stops_mid_head_is_cut_off() {
    let d = Daemon::start();
    let mut partial = d.connect();
    let start = Instant::now();
    partial.write_all(b"GET http://x/ HT").unwrap();
    let after = closed_after(partial, start);
    assert!(after < Duration::from_secs(2), "closed after {after:?}");

    let silent = d.connect();
    let after = closed_after(silent, Instant::now());
    assert!(after < Duration::from_secs(2), "closed after {after:?}");

    let silent = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    silent.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let after = closed_after(silent, Instant::now());
    assert!(
        after < Duration::from_secs(2),
        "unix: closed after {after:?}"
    );
}
