//! Starting a daemon for the client: `PROGRAM serve --no-tcp --unix SOCKET
//! ARGS…`, listening only on the client's socket. A thread waits for the
//! process, so that it is reaped as soon as it dies and the client can say
//! how it ended.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::connection::{self, ConnectFailure, Connection};
use super::error::DaemonError;

/// How long a new daemon may take to listen by default (it compiles its
/// plugins, from the cache after the first run).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the socket is tried while a daemon starts.
const POLL: Duration = Duration::from_millis(25);
/// How often a thread looks whether a daemon exited, to reap it (and
/// learn how it ended) soon after.
const REAP_POLL: Duration = Duration::from_millis(20);

/// How to start a daemon: the `sockhost` program and the arguments that
/// follow `serve --no-tcp --unix SOCKET` (`--config FILE`, …).
#[derive(Debug, Clone)]
pub struct DaemonCommand {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    start_timeout: Duration,
}

impl DaemonCommand {
    /// Runs `program` (the `sockhost` binary).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        DaemonCommand {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }

    /// Adds arguments after `serve --no-tcp --unix SOCKET`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// How long a new daemon may take to listen (default
    /// [`DEFAULT_START_TIMEOUT`]).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    fn command(&self, socket: &Path) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("serve")
            .arg("--no-tcp")
            .arg("--unix")
            .arg(socket)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            // It says where it listens; the client knows.
            .stdout(Stdio::null());
        c
    }
}

/// A daemon the client started.
#[derive(Debug)]
pub(crate) struct Daemon {
    pid: u32,
    process: Arc<Mutex<Process>>,
}

/// The child and, once reaped, how it exited. Reaping happens under the
/// lock only, so that while it is held an unreaped pid is still the
/// daemon's (a reaped pid may be another process's already).
#[derive(Debug)]
struct Process {
    child: Child,
    exit: Option<ExitStatus>,
}

impl Process {
    fn reap(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }
}

impl Daemon {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How it exited, once it has.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reap()
    }

    /// Asks it to stop (SIGTERM: it finishes what is in flight), unless it
    /// already exited.
    pub fn terminate(&self) {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        if process.reap().is_none() {
            let pid = i32::try_from(self.pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }
}

/// Starts a daemon on `socket` and connects to it once it listens.
pub(crate) async fn start(
    command: &DaemonCommand,
    socket: &Path,
) -> Result<(Daemon, Connection), DaemonError> {
    let child = command
        .command(socket)
        .spawn()
        .map_err(|source| DaemonError::Spawn {
            program: command.program.clone(),
            source,
        })?;
    let pid = child.id();
    let process = Arc::new(Mutex::new(Process { child, exit: None }));
    let reaper = process.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("sockhost-daemon-{pid}"))
        .spawn(move || loop {
            if reaper
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reap()
                .is_some()
            {
                return;
            }
            std::thread::sleep(REAP_POLL);
        });
    let daemon = Daemon { pid, process };
    if let Err(source) = spawned {
        daemon.terminate();
        return Err(DaemonError::Spawn {
            program: command.program.clone(),
            source,
        });
    }
    let deadline = Instant::now() + command.start_timeout;
    loop {
        if let Some(status) = daemon.exit_status() {
            return Err(DaemonError::ExitedAtStart {
                socket: socket.to_owned(),
                status,
            });
        }
        match connection::connect(socket).await {
            Ok(conn) => return Ok((daemon, conn)),
            Err(ConnectFailure::Absent(_)) if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await
            }
            Err(ConnectFailure::Absent(_)) => {
                daemon.terminate();
                return Err(DaemonError::StartTimeout {
                    socket: socket.to_owned(),
                    waited: command.start_timeout,
                });
            }
            Err(ConnectFailure::Failed(e)) => {
                daemon.terminate();
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_daemon_that_exits_at_once_is_reported_with_its_status() {
        let dir = tempfile::tempdir().unwrap();
        // `false serve …` exits 1 without listening.
        let e = start(&DaemonCommand::new("false"), &dir.path().join("s.sock"))
            .await
            .unwrap_err();
        assert!(matches!(e, DaemonError::ExitedAtStart { .. }), "{e}");
        assert!(e.to_string().contains("exit status: 1"), "{e}");
    }

    #[tokio::test]
    async fn a_daemon_that_never_listens_is_stopped_after_the_timeout() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("silent");
        std::fs::write(&program, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cmd = DaemonCommand::new(&program).start_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let e = start(&cmd, &dir.path().join("s.sock")).await.unwrap_err();
        assert!(matches!(e, DaemonError::StartTimeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn the_daemon_listens_on_the_socket_only() {
        let cmd = DaemonCommand::new("/bin/sockhost").args(["--config", "c.toml"]);
        let c = cmd.command(Path::new("/run/s.sock"));
        let args: Vec<_> = c.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "serve",
                "--no-tcp",
                "--unix",
                "/run/s.sock",
                "--config",
                "c.toml"
            ]
        );
    }
}
