//! nginx from Debian as an origin nobody here wrote: TLS, HTTP/2 and
//! HTTP/1.1, serving generated files from a temporary folder. The harness
//! writes the config, starts nginx in the foreground and stops it on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary (`scripts/setup.sh` installs Debian's package).
pub const NGINX: &str = "/usr/sbin/nginx";

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    /// Where it listens in cleartext (HTTP/1.1), serving the same files.
    pub http_addr: SocketAddr,
    /// Where it listens (TLS; HTTP/2 and HTTP/1.1 by ALPN).
    pub addr: SocketAddr,
    /// The CA that signed its certificate (`--ca`).
    pub ca_file: PathBuf,
    /// The folder it serves; tests may add files.
    pub root: PathBuf,
    /// Its access log, when asked for ([`Nginx::start_with`]): one line per
    /// request, `HOST METHOD URI STATUS`.
    pub access_log: Option<PathBuf>,
    child: Child,
    _dir: tempfile::TempDir,
}

/// The names nginx's certificate is for, unless told otherwise.
pub const DEFAULT_NAMES: &[&str] = &["localhost", "nginx.test"];

impl Nginx {
    /// Starts nginx serving `files` (name, size in bytes of a known pattern).
    pub fn start(files: &[(&str, u64)]) -> Nginx {
        Nginx::start_with(files, DEFAULT_NAMES, false)
    }

    /// [`Nginx::start`] with a certificate for `names`, and an access log if
    /// `access_log`.
    pub fn start_with(files: &[(&str, u64)], names: &[&str], access_log: bool) -> Nginx {
        Nginx::start_with_headers(files, names, access_log, &[])
    }

    /// [`Nginx::start_with`], every response carrying `headers` too
    /// (`Alt-Svc`, say).
    pub fn start_with_headers(
        files: &[(&str, u64)],
        names: &[&str],
        access_log: bool,
        headers: &[(&str, &str)],
    ) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: install nginx (bash scripts/setup.sh does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root).unwrap();
        for (name, size) in files {
            let path = root.join(name);
            if *size > 64 << 20 {
                // Large files are sparse: nginx streams zeros from the page cache.
                let f = std::fs::File::create(&path).unwrap();
                f.set_len(*size).unwrap();
            } else {
                let data: Vec<u8> = (0..*size as usize)
                    .map(crate::origin::pattern_byte)
                    .collect();
                std::fs::write(&path, data).unwrap();
            }
        }
        let (ca_pem, cert_pem, key_pem) = crate::origin::certificates(names);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
        // Both held until both are chosen, so they differ.
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (tls_listener, http_listener) = (free(), free());
        let port = tls_listener.local_addr().unwrap().port();
        let http_port = http_listener.local_addr().unwrap().port();
        drop((tls_listener, http_listener));
        let d = dir.path().display();
        let user = if is_root() { "user root root;" } else { "" };
        let log_path = access_log.then(|| dir.path().join("access.log"));
        let headers: String = headers
            .iter()
            .map(|(name, value)| format!("add_header {name} '{value}' always;\n    "))
            .collect();
        let log = match &log_path {
            Some(path) => format!(
                "log_format hosts '$host $request_method $request_uri $status';\n    access_log {} hosts;",
                path.display()
            ),
            None => "access_log off;".to_owned(),
        };
        let conf = format!(
            "{user}
worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    {log}
    {headers}types {{
        text/html html;
        text/javascript js;
        image/svg+xml svg;
        image/png png;
        text/plain txt;
    }}
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    sendfile on;
    keepalive_requests 100000;
    http2_max_requests 100000;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        root {d}/www;
        location / {{ }}
    }}
    server {{
        listen 127.0.0.1:{http_port};
        root {d}/www;
        location / {{ }}
    }}
}}
"
        );
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let http_addr: SocketAddr = ([127, 0, 0, 1], http_port).into();
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err()
            || std::net::TcpStream::connect(http_addr).is_err()
        {
            assert!(
                Instant::now() < until,
                "nginx did not listen on {addr}: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            addr,
            http_addr,
            ca_file,
            root,
            access_log: log_path,
            child,
            _dir: dir,
        }
    }
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
}

impl Nginx {
    /// The lines of the access log so far (empty without one).
    pub fn requests(&self) -> Vec<String> {
        self.access_log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The PEM file of the certificate it serves.
    pub fn cert_file(&self) -> PathBuf {
        self._dir.path().join("cert.pem")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown, in which the master stops its
        // workers; a SIGKILL would leave the workers running, orphaned.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
