//! What the commands that talk to a running daemon share (`status`,
//! `reload`, `plugins`, `dns`): where its control listener is, and the
//! exit code that says it is not running.

use std::future::Future;
use std::path::PathBuf;

use sockhost::control::client::{ControlClient, Endpoint};
use sockhost::serve::listen::default_control_socket_path;

/// The exit code when no daemon is running: scripts tell it from a
/// daemon that refused (1) and from a usage error (2).
pub const NOT_RUNNING_EXIT: u8 = 3;

/// What the help of every control command ends with.
pub const EXIT_CODES: &str = "Exit status: 0 done; 1 the daemon refused or failed (its one-line reason is printed); 2 bad usage; 3 sockhost is not running.";

/// Where the daemon's control listener is.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ControlArgs {
    /// The control socket (default: $XDG_RUNTIME_DIR/sockhost/control.sock,
    /// next to the proxy's socket).
    #[arg(long = "control", value_name = "PATH", conflicts_with = "control_url")]
    pub socket: Option<PathBuf>,
    /// The control listener's loopback TCP port instead, e.g.
    /// http://127.0.0.1:8129 (needs --control-token-file).
    #[arg(long, value_name = "URL", requires = "control_token_file")]
    pub control_url: Option<String>,
    /// The file holding the bearer token the TCP control listener asks
    /// for (the daemon's --control-token-file; mode 0600).
    #[arg(long, value_name = "FILE", requires = "control_url")]
    pub control_token_file: Option<PathBuf>,
}

impl ControlArgs {
    /// The client these options name.
    pub fn client(&self) -> anyhow::Result<ControlClient> {
        let endpoint = match (&self.control_url, &self.control_token_file) {
            (Some(url), Some(token)) => Endpoint::tcp(url, token)?,
            _ => Endpoint::Unix(
                self.socket
                    .clone()
                    .unwrap_or_else(default_control_socket_path),
            ),
        };
        Ok(ControlClient::new(endpoint))
    }
}

/// Runs one control exchange to its end on a runtime of its own.
pub fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
