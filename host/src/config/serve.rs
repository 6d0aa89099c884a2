//! The `[serve]` section: how `sockhost serve` listens and what it allows
//! its clients. Every field is optional; the command line overrides it.
//!
//! ```toml
//! [serve]
//! listen = ["127.0.0.1:8128"]   # default; a non-loopback address needs allow-remote
//! unix = "/run/sockhost.sock"   # default $XDG_RUNTIME_DIR/sockhost/sockhost.sock; false: none
//! connect-ports = [443]         # ports CONNECT may tunnel to (default 443)
//! intercept = false             # terminate CONNECTs with the local CA (default false)
//! allow-remote = false          # listen beyond loopback (default false); needs credentials
//! credentials = "users.txt"     # user:password per line, mode 0600; every client authenticates
//! access-log = "access.jsonl"   # one JSON object per request (default: none)
//!
//! [serve.limits]
//! max-clients = 1024            # connections at once; more wait in the listen queue
//! header-read-timeout = "30s"   # slowloris
//! keep-alive-idle = "60s"       # a silent client connection (HTTP/1.1 or h2c) is closed
//! tunnel-idle = "300s"          # a CONNECT tunnel with no byte either way is closed
//! max-request-body = "16 MiB"   # larger gets 413 (default: no limit; bodies stream)
//! ```
//!
//! Paths are relative to the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sockhost_policy::{parse_duration, parse_size};

use crate::serve::limits::Limits;
use crate::serve::listen::{check_exposure, ListenError, DEFAULT_PORT};
use crate::serve::proxy::DEFAULT_CONNECT_PORTS;

/// The most client connections `max-clients` may allow.
pub const MAX_MAX_CLIENTS: usize = 1 << 20;

/// Where the Unix socket listener is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UnixSocket {
    /// `$XDG_RUNTIME_DIR/sockhost/sockhost.sock` (see
    /// [`crate::serve::listen::default_socket_path`]).
    #[default]
    Default,
    /// This path.
    Path(PathBuf),
    /// No Unix socket.
    Off,
}

/// The `[serve]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// TCP addresses to listen on (default `127.0.0.1:8128`).
    pub listen: Vec<SocketAddr>,
    /// The Unix socket.
    pub unix: UnixSocket,
    /// Ports `CONNECT` may tunnel to (default 443).
    pub connect_ports: Vec<u16>,
    /// Intercept `CONNECT`s with the local CA.
    pub intercept: bool,
    /// Listen beyond loopback; every client then authenticates.
    pub allow_remote: bool,
    /// The credentials file (`user:password` per line).
    pub credentials: Option<PathBuf>,
    /// Where the access log (JSON lines) goes.
    pub access_log: Option<PathBuf>,
    /// `[serve.limits]`.
    pub limits: Limits,
    /// `[serve.control]`: the control API's listeners.
    pub control: super::control::ControlConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))],
            unix: UnixSocket::Default,
            connect_ports: DEFAULT_CONNECT_PORTS.to_vec(),
            intercept: false,
            allow_remote: false,
            credentials: None,
            access_log: None,
            limits: Limits::default(),
            control: Default::default(),
        }
    }
}

impl ServeConfig {
    /// Whether these settings may be served: a non-loopback address needs
    /// `allow_remote`, which needs credentials.
    pub fn check_exposure(&self) -> Result<(), ListenError> {
        check_exposure(&self.listen, self.allow_remote, self.credentials.is_some())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawServe {
    listen: Option<Vec<String>>,
    unix: Option<toml::Value>,
    connect_ports: Option<Vec<i64>>,
    intercept: Option<bool>,
    allow_remote: Option<bool>,
    credentials: Option<PathBuf>,
    access_log: Option<PathBuf>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    control: super::control::RawControl,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    max_clients: Option<i64>,
    header_read_timeout: Option<String>,
    keep_alive_idle: Option<String>,
    tunnel_idle: Option<String>,
    max_request_body: Option<String>,
}

impl RawServe {
    /// Validates the section; `dir` is the config file's folder. Errors
    /// are (field, message).
    pub(super) fn validate(self, dir: &Path) -> Result<ServeConfig, (String, String)> {
        let fail = |field: &str, message: String| (format!("serve.{field}"), message);
        let mut c = ServeConfig::default();
        if let Some(listen) = self.listen {
            c.listen = listen
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.parse().map_err(|_| {
                        fail(&format!("listen[{i}]"), format!("{s:?} is not ADDR:PORT"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        c.unix = unix_socket(self.unix, dir).map_err(|message| fail("unix", message))?;
        c.control = self.control.validate(dir)?;
        if let Some(ports) = self.connect_ports {
            c.connect_ports = ports
                .iter()
                .enumerate()
                .map(|(i, &p)| match u16::try_from(p) {
                    Ok(p) if p > 0 => Ok(p),
                    _ => Err(fail(
                        &format!("connect-ports[{i}]"),
                        format!("{p} is not a port (1..=65535)"),
                    )),
                })
                .collect::<Result<_, _>>()?;
        }
        c.intercept = self.intercept.unwrap_or(c.intercept);
        c.allow_remote = self.allow_remote.unwrap_or(c.allow_remote);
        c.credentials = self.credentials.map(|p| dir.join(p));
        c.access_log = self.access_log.map(|p| dir.join(p));
        let l = self.limits;
        if let Some(n) = l.max_clients {
            c.limits.max_clients = match usize::try_from(n) {
                Ok(n) if (1..=MAX_MAX_CLIENTS).contains(&n) => n,
                _ => {
                    return Err(fail(
                        "limits.max-clients",
                        format!("{n} is outside 1..={MAX_MAX_CLIENTS}"),
                    ))
                }
            };
        }
        let duration = |field: &str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(t) => match parse_duration(&t) {
                Ok(d) if d.is_zero() => Err(fail(field, "must be more than 0".into())),
                Ok(d) => Ok(d),
                Err(e) => Err(fail(field, e.to_string())),
            },
        };
        c.limits.header_read_timeout = duration(
            "limits.header-read-timeout",
            l.header_read_timeout,
            c.limits.header_read_timeout,
        )?;
        c.limits.keep_alive_idle = duration(
            "limits.keep-alive-idle",
            l.keep_alive_idle,
            c.limits.keep_alive_idle,
        )?;
        c.limits.tunnel_idle = duration("limits.tunnel-idle", l.tunnel_idle, c.limits.tunnel_idle)?;
        if let Some(size) = l.max_request_body {
            let field = "limits.max-request-body";
            let n = parse_size(&size).map_err(|e| fail(field, e.to_string()))?;
            c.limits.max_request_body = Some(n);
        }
        c.check_exposure().map_err(|e| match e {
            ListenError::NoCredentials => fail("credentials", e.to_string()),
            _ => fail("listen", e.to_string()),
        })?;
        Ok(c)
    }
}

/// A `unix = …` field: a path (relative to `dir`), true (the default
/// socket) or false (none).
pub(super) fn unix_socket(value: Option<toml::Value>, dir: &Path) -> Result<UnixSocket, String> {
    match value {
        None | Some(toml::Value::Boolean(true)) => Ok(UnixSocket::Default),
        Some(toml::Value::Boolean(false)) => Ok(UnixSocket::Off),
        Some(toml::Value::String(p)) if !p.is_empty() => Ok(UnixSocket::Path(dir.join(p))),
        Some(other) => Err(format!(
            "{other} is not a path, true (the default socket) or false (none)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<ServeConfig, String> {
        Config::parse(text, Path::new("/etc/sockhost/config.toml"))
            .map(|c| c.serve)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn without_the_section_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, ServeConfig::default());
        assert_eq!(c.listen, vec!["127.0.0.1:8128".parse().unwrap()]);
        assert_eq!(c.unix, UnixSocket::Default);
        assert_eq!(c.connect_ports, vec![443]);
        assert!(!c.allow_remote && !c.intercept);
        assert_eq!(c.limits.max_clients, 1024);
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(30));
        assert_eq!(c.limits.keep_alive_idle, Duration::from_secs(60));
        assert_eq!(c.limits.tunnel_idle, Duration::from_secs(300));
        assert_eq!(c.limits.max_request_body, None);
    }

    #[test]
    fn every_field_parses() {
        let c = parse(
            "[serve]\nlisten = [\"0.0.0.0:3128\", \"[::1]:3128\"]\nunix = \"run/s.sock\"\n\
             connect-ports = [443, 8443]\nintercept = true\nallow-remote = true\n\
             credentials = \"users\"\naccess-log = \"/var/log/sockhost.jsonl\"\n\
             [serve.limits]\nmax-clients = 10\nheader-read-timeout = \"5s\"\n\
             keep-alive-idle = \"2s\"\ntunnel-idle = \"1500ms\"\nmax-request-body = \"1 MiB\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(
            c.unix,
            UnixSocket::Path(PathBuf::from("/etc/sockhost/run/s.sock"))
        );
        assert_eq!(c.connect_ports, vec![443, 8443]);
        assert!(c.intercept && c.allow_remote);
        assert_eq!(c.credentials, Some(PathBuf::from("/etc/sockhost/users")));
        assert_eq!(c.access_log, Some(PathBuf::from("/var/log/sockhost.jsonl")));
        assert_eq!(
            c.limits,
            Limits {
                max_clients: 10,
                header_read_timeout: Duration::from_secs(5),
                keep_alive_idle: Duration::from_secs(2),
                tunnel_idle: Duration::from_millis(1500),
                max_request_body: Some(1 << 20),
            }
        );
        assert_eq!(
            parse("[serve]\nunix = false\n").unwrap().unix,
            UnixSocket::Off
        );
        assert_eq!(
            parse("[serve]\nunix = true\n").unwrap().unix,
            UnixSocket::Default
        );
    }

    #[test]
    fn bad_values_name_the_file_and_field() {
        for (text, words) in [
            ("[serve]\nlisten = [\"localhost\"]\n", "serve.listen[0]: \"localhost\" is not ADDR:PORT"),
            ("[serve]\nlisten = [\"0.0.0.0:8128\"]\n", "serve.listen: 0.0.0.0:8128: the daemon listens on loopback only unless allow-remote"),
            ("[serve]\nallow-remote = true\n", "serve.credentials: allow-remote needs a credentials file"),
            ("[serve]\nunix = 3\n", "serve.unix: 3 is not a path"),
            ("[serve]\nconnect-ports = [0]\n", "serve.connect-ports[0]: 0 is not a port"),
            ("[serve]\nconnect-ports = [443, 70000]\n", "serve.connect-ports[1]: 70000"),
            ("[serve.limits]\nmax-clients = 0\n", "serve.limits.max-clients: 0 is outside"),
            ("[serve.limits]\nkeep-alive-idle = \"0s\"\n", "serve.limits.keep-alive-idle: must be more than 0"),
            ("[serve.limits]\ntunnel-idle = \"soon\"\n", "serve.limits.tunnel-idle"),
            ("[serve.limits]\nheader-read-timeout = \"5\"\n", "serve.limits.header-read-timeout"),
            ("[serve.limits]\nmax-request-body = \"lots\"\n", "serve.limits.max-request-body"),
            ("[serve]\nlisten-on = 1\n", "unknown field"),
            ("[serve.limits]\nclients = 1\n", "unknown field"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with("/etc/sockhost/config.toml: ") && e.contains(words), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
