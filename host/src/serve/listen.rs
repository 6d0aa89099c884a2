//! Where the daemon listens: loopback TCP, and a Unix socket that only its
//! user can reach (folder 0700, socket 0600). An open proxy on another
//! address is a vulnerability: such an address is refused unless remote
//! clients are allowed, and then only with credentials
//! ([`check_exposure`]; clients authenticate, see [`super::auth`]).

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

/// The proxy's TCP port on 127.0.0.1 when none is given.
pub const DEFAULT_PORT: u16 = 8128;

/// Why a listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// A non-loopback address, remote clients not allowed.
    #[error(
        "{0}: the daemon listens on loopback only unless allow-remote = true (--allow-remote) with a credentials file (an open proxy on another address would serve anyone who reaches it)"
    )]
    NotLoopback(SocketAddr),
    /// Remote clients allowed, but no credentials to check them against.
    #[error(
        "allow-remote needs a credentials file (credentials = FILE, --credentials FILE): an open proxy would serve anyone who reaches it"
    )]
    NoCredentials,
    /// The TCP bind failed.
    #[error("cannot listen on {addr}: {source}")]
    Tcp {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Another daemon answers on the socket.
    #[error("{0}: a daemon is already listening there")]
    InUse(PathBuf),
    /// The socket's folder or the socket could not be made.
    #[error("cannot listen on {path}: {source}")]
    Unix {
        /// The socket (or its folder).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Whether the daemon may listen on `listen`: loopback addresses always;
/// others only when `allow_remote`, which needs credentials (checked even
/// on loopback: a daemon that says it takes remote clients authenticates
/// every one). Sans-IO.
pub fn check_exposure(
    listen: &[SocketAddr],
    allow_remote: bool,
    has_credentials: bool,
) -> Result<(), ListenError> {
    if allow_remote {
        return if has_credentials {
            Ok(())
        } else {
            Err(ListenError::NoCredentials)
        };
    }
    match listen.iter().find(|a| !a.ip().is_loopback()) {
        Some(addr) => Err(ListenError::NotLoopback(*addr)),
        None => Ok(()),
    }
}

/// Binds `addr`, which must be a loopback address.
pub async fn tcp(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    check_exposure(&[addr], false, false)?;
    bind_tcp(addr).await
}

/// Binds `addr`, any address: for a daemon whose addresses passed
/// [`check_exposure`] with remote clients allowed.
pub async fn tcp_remote(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    bind_tcp(addr).await
}

async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Tcp { addr, source })
}

/// `$XDG_RUNTIME_DIR/sockhost/sockhost.sock` (or the temp dir's, with the
/// user id in the folder name, where there is no runtime dir).
pub fn default_socket_path() -> PathBuf {
    runtime_dir().join("sockhost.sock")
}

/// The control API's socket, next to the proxy's:
/// `$XDG_RUNTIME_DIR/sockhost/control.sock`.
pub fn default_control_socket_path() -> PathBuf {
    runtime_dir().join("control.sock")
}

fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("sockhost"),
        None => {
            std::env::temp_dir().join(format!("sockhost-{}", rustix::process::getuid().as_raw()))
        }
    }
}

/// Binds a Unix socket at `path`: its folder is made 0700 when missing,
/// the socket is 0600. A socket file left by a daemon that died is
/// replaced; one a live daemon answers on is an error.
pub async fn unix(path: &Path) -> Result<UnixListener, ListenError> {
    let failed = |source| ListenError::Unix {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(failed)?;
        }
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ListenError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(failed)?;
    }
    let listener = UnixListener::bind(path).map_err(failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_loopback_is_served() {
        let e = tcp("0.0.0.0:0".parse().unwrap()).await.unwrap_err();
        assert!(matches!(e, ListenError::NotLoopback(_)), "{e}");
        assert!(e.to_string().contains("loopback"), "{e}");
        let l = tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn remote_addresses_need_allow_remote_and_credentials() {
        let lo: SocketAddr = "127.0.0.1:8128".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8128".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8128".parse().unwrap();
        assert!(check_exposure(&[lo, lo6], false, false).is_ok());
        let e = check_exposure(&[lo, any], false, true).unwrap_err();
        assert!(matches!(e, ListenError::NotLoopback(a) if a == any), "{e}");
        assert!(e.to_string().contains("allow-remote"), "{e}");
        assert!(matches!(
            check_exposure(&[any], true, false),
            Err(ListenError::NoCredentials)
        ));
        // Allowed remote clients always authenticate, loopback included.
        assert!(matches!(
            check_exposure(&[lo], true, false),
            Err(ListenError::NoCredentials)
        ));
        assert!(check_exposure(&[any, lo], true, true).is_ok());
    }

    #[tokio::test]
    async fn the_socket_is_private_a_stale_one_is_replaced_and_a_live_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("sockhost.sock");
        let live = unix(&path).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let e = unix(&path).await.unwrap_err();
        assert!(matches!(e, ListenError::InUse(_)), "{e}");
        drop(live);
        // The file stays behind, as after a crash; nobody answers on it.
        assert!(path.exists());
        let again = unix(&path).await.unwrap();
        drop(again);
    }
}
