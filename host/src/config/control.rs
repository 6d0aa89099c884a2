//! The `[serve.control]` section: where the daemon's control API listens.
//!
//! ```toml
//! [serve.control]
//! unix = "/run/sockhost/control.sock"  # default: control.sock beside the proxy's socket; false: none
//! listen = "127.0.0.1:8129"            # also on loopback TCP (default: not); needs token-file
//! token-file = "control.token"         # mode 0600; requests send Authorization: Bearer TOKEN
//! ```
//!
//! Paths are relative to the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::serve::UnixSocket;

/// The `[serve.control]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlConfig {
    /// The control socket (mode 0600).
    pub unix: UnixSocket,
    /// A loopback TCP address to answer on too.
    pub listen: Option<SocketAddr>,
    /// The bearer token's file, required with `listen`.
    pub token_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawControl {
    unix: Option<toml::Value>,
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

impl RawControl {
    /// Validates the section; errors are (field, message).
    pub(super) fn validate(self, dir: &Path) -> Result<ControlConfig, (String, String)> {
        let fail = |field: &str, message: String| (format!("serve.control.{field}"), message);
        let mut c = ControlConfig {
            unix: super::serve::unix_socket(self.unix, dir)
                .map_err(|message| fail("unix", message))?,
            ..ControlConfig::default()
        };
        if let Some(listen) = self.listen {
            let addr: SocketAddr = listen
                .parse()
                .map_err(|_| fail("listen", format!("{listen:?} is not ADDR:PORT")))?;
            if !addr.ip().is_loopback() {
                return Err(fail(
                    "listen",
                    format!("{addr}: the control API listens on loopback only (it changes what the daemon does)"),
                ));
            }
            c.listen = Some(addr);
        }
        c.token_file = self.token_file.map(|p| dir.join(p));
        if c.listen.is_some() && c.token_file.is_none() {
            return Err(fail(
                "token-file",
                "listen needs a token file (mode 0600): every request on TCP must carry its token"
                    .into(),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    fn parse(text: &str) -> Result<ControlConfig, String> {
        Config::parse(text, Path::new("/etc/sockhost/config.toml"))
            .map(|c| c.serve.control)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_then_every_field() {
        assert_eq!(parse("").unwrap(), ControlConfig::default());
        let c = parse(
            "[serve.control]\nunix = \"run/c.sock\"\nlisten = \"127.0.0.1:8129\"\ntoken-file = \"t\"\n",
        )
        .unwrap();
        assert_eq!(c.unix, UnixSocket::Path("/etc/sockhost/run/c.sock".into()));
        assert_eq!(c.listen, Some("127.0.0.1:8129".parse().unwrap()));
        assert_eq!(c.token_file, Some("/etc/sockhost/t".into()));
        assert_eq!(
            parse("[serve.control]\nunix = false\n").unwrap().unix,
            UnixSocket::Off
        );
    }

    #[test]
    fn tcp_is_loopback_only_and_needs_a_token() {
        let e =
            parse("[serve.control]\nlisten = \"0.0.0.0:8129\"\ntoken-file = \"t\"\n").unwrap_err();
        assert!(
            e.contains("serve.control.listen") && e.contains("loopback only"),
            "{e}"
        );
        let e = parse("[serve.control]\nlisten = \"127.0.0.1:8129\"\n").unwrap_err();
        assert!(e.contains("serve.control.token-file"), "{e}");
        let e = parse("[serve.control]\nlisten = \"here\"\n").unwrap_err();
        assert!(e.contains("is not ADDR:PORT"), "{e}");
        let e = parse("[serve.control]\nport = 1\n").unwrap_err();
        assert!(e.contains("port"), "{e}");
    }
}
