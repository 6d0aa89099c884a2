//! The IPC client of the daemon (`sockhost serve`): the same
//! [`Fetch`](crate::Fetch) API as an in-process [`Host`], with the sockets
//! in another process. A crash there takes down only that process; the
//! client relaunches it and, after too many crashes, fetches in-process,
//! as Firefox falls back from a socket process that keeps crashing.
//!
//! - [`connection`]: one HTTP/2 connection (prior knowledge) over the Unix
//!   socket, shared by every fetch;
//! - [`request`] and [`response`]: a fetch as an absolute-form request,
//!   and the daemon's response (timings from `Server-Timing`);
//! - [`refused`]: the daemon's refusals as fetch errors (sans-IO);
//! - [`launch`]: starting a daemon that listens on the socket only;
//! - [`lifecycle`] and [`crash_window`]: start, relaunch or fall back
//!   (sans-IO).

mod connection;
pub mod crash_window;
mod error;
pub mod launch;
pub mod lifecycle;
pub mod refused;
mod request;
pub mod response;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use self::connection::absent;
use self::connection::{ConnectFailure, Connection};
pub use self::crash_window::{CrashWindow, DEFAULT_CRASH_LIMIT, DEFAULT_CRASH_WINDOW};
pub use self::error::DaemonError;
use self::launch::Daemon;
pub use self::launch::DaemonCommand;
use self::lifecycle::{Lifecycle, Step};
use crate::host::{FetchError, FetchRequest, FetchResponse, Host, DEFAULT_REQUEST_TIMEOUT};
use crate::wiring::WiringError;

/// Builds the in-process host a client falls back to (with the daemon's
/// config, typically [`Host::from_config`]); called once, on fallback.
pub type HostFactory = Arc<dyn Fn() -> Result<Host, WiringError> + Send + Sync>;

/// How long the client waits for the daemon's response head by default:
/// the daemon's own timeout, and a margin for it to say so.
pub const DEFAULT_CLIENT_TIMEOUT: Duration =
    DEFAULT_REQUEST_TIMEOUT.saturating_add(Duration::from_secs(5));

/// What the client knows about its daemon, for tests and status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStatus {
    /// Whether a connection to a daemon is open.
    pub connected: bool,
    /// The daemon the client started last, if it started one.
    pub daemon_pid: Option<u32>,
    /// Daemons the client started.
    pub launches: u32,
    /// Daemons started after the first (after a crash or a failed start).
    pub relaunches: u32,
    /// Crashes counted (a daemon lost, or one that would not start).
    pub crashes: u32,
    /// Whether the client fetches in-process now.
    pub fallen_back: bool,
    /// The last time a daemon was lost or would not start: why.
    pub last_failure: Option<String>,
}

/// A client of the daemon; clones share its connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    socket: PathBuf,
    launch: Option<DaemonCommand>,
    fallback: Option<HostFactory>,
    timeout: Duration,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket)
            .field("launch", &self.launch)
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}

struct State {
    lifecycle: Lifecycle,
    connection: Option<Connection>,
    daemon: Option<Daemon>,
    /// Why a daemon was last lost or would not start.
    last_failure: Option<String>,
    /// Set once the client fell back (boxed: a host is large).
    host: Option<Box<Host>>,
}

/// Where one fetch goes.
enum Route {
    Daemon(hyper::client::conn::http2::SendRequest<request::DaemonBody>),
    InProcess(Box<Host>),
}

/// Builds a [`Client`].
#[derive(Clone)]
pub struct ClientBuilder {
    socket: PathBuf,
    launch: Option<DaemonCommand>,
    fallback: Option<HostFactory>,
    crashes: CrashWindow,
    timeout: Duration,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("socket", &self.socket)
            .field("launch", &self.launch)
            .field("fallback", &self.fallback.is_some())
            .field("crashes", &self.crashes)
            .finish()
    }
}

impl ClientBuilder {
    /// Starts a daemon with `command` when none answers on the socket, and
    /// relaunches it when it dies.
    pub fn launch(mut self, command: DaemonCommand) -> Self {
        self.launch = Some(command);
        self
    }

    /// Fetches in-process, in a host `factory` builds, once the daemon
    /// crashed too often (or, without [`Self::launch`], when none runs).
    pub fn fall_back_to(mut self, factory: HostFactory) -> Self {
        self.fallback = Some(factory);
        self
    }

    /// `limit` crashes within `window` make the client fall back (default
    /// [`DEFAULT_CRASH_LIMIT`] within [`DEFAULT_CRASH_WINDOW`]).
    pub fn crash_limit(mut self, limit: usize, window: Duration) -> Self {
        self.crashes = CrashWindow::new(limit, window);
        self
    }

    /// How long to wait for a response head (default
    /// [`DEFAULT_CLIENT_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client. It connects on its first fetch.
    pub fn build(self) -> Client {
        let lifecycle =
            Lifecycle::new(self.crashes, self.launch.is_some(), self.fallback.is_some());
        Client {
            inner: Arc::new(Inner {
                socket: self.socket,
                launch: self.launch,
                fallback: self.fallback,
                timeout: self.timeout,
                state: tokio::sync::Mutex::new(State {
                    lifecycle,
                    connection: None,
                    daemon: None,
                    last_failure: None,
                    host: None,
                }),
            }),
        }
    }
}

impl Client {
    /// A client of the daemon at `socket`
    /// ([`crate::serve::listen::default_socket_path`] is where `sockhost
    /// serve` listens by default).
    pub fn builder(socket: impl Into<PathBuf>) -> ClientBuilder {
        ClientBuilder {
            socket: socket.into(),
            launch: None,
            fallback: None,
            crashes: CrashWindow::default(),
            timeout: DEFAULT_CLIENT_TIMEOUT,
        }
    }

    /// A client of a daemon that runs already: it neither starts one nor
    /// falls back.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client::builder(socket).build()
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.inner.socket
    }

    /// What the client knows about its daemon.
    pub async fn status(&self) -> ClientStatus {
        let state = self.inner.state.lock().await;
        ClientStatus {
            connected: state.connection.as_ref().is_some_and(|c| !c.is_closed()),
            daemon_pid: state.daemon.as_ref().map(Daemon::pid),
            launches: state.lifecycle.launches(),
            relaunches: state.lifecycle.relaunches(),
            crashes: state.lifecycle.crashes_total(),
            // Fallen back once the host is there (building it may fail).
            fallen_back: state.host.is_some(),
            last_failure: state.last_failure.clone(),
        }
    }

    /// Fetches `request` through the daemon (or in-process, once fallen
    /// back); the body streams. A fetch in flight when the daemon dies
    /// fails with [`DaemonError::Broken`]; the next one relaunches it.
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        match self.route().await? {
            Route::InProcess(host) => host.fetch(request).await,
            Route::Daemon(sender) => self.through(sender, request).await,
        }
    }

    async fn through(
        &self,
        mut sender: hyper::client::conn::http2::SendRequest<request::DaemonBody>,
        request: FetchRequest,
    ) -> Result<FetchResponse, FetchError> {
        let started = Instant::now();
        let url = request.url.clone();
        let (message, origin) = request::to_daemon(request)?;
        let socket = &self.inner.socket;
        let broken = |source| {
            FetchError::Daemon(DaemonError::Broken {
                socket: socket.clone(),
                source,
            })
        };
        let timeout = self.inner.timeout;
        let sent = tokio::time::timeout(timeout, async {
            sender.ready().await?;
            sender.send_request(message).await
        })
        .await
        .map_err(|_| FetchError::Timeout {
            origin: origin.clone(),
            timeout,
        })?
        .map_err(broken)?;
        let label = format!(
            "{origin} (through the sockhost daemon at {})",
            socket.display()
        );
        response::from_daemon(sent, url, started, label).await
    }

    /// The daemon's connection, made (and the daemon started) if needed,
    /// or the in-process host once fallen back. One fetch at a time gets
    /// here while a connection is made, so that a crash counts once.
    async fn route(&self) -> Result<Route, FetchError> {
        let inner = &*self.inner;
        let mut state = inner.state.lock().await;
        if let Some(host) = &state.host {
            return Ok(Route::InProcess(host.clone()));
        }
        if let Some(conn) = state.connection.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Route::Daemon(conn.sender.clone()));
        }
        state.connection = None;
        let absent = match connection::connect(&inner.socket).await {
            Ok(conn) => return Ok(state.use_connection(conn)),
            Err(ConnectFailure::Failed(e)) => return Err(e.into()),
            Err(ConnectFailure::Absent(e)) => e,
        };
        let step = state.lifecycle.unreachable(Instant::now());
        if matches!(
            step,
            Step::Relaunch | Step::FallBack { .. } | Step::GiveUp { .. }
        ) {
            let why = match &state.daemon {
                Some(d) => format!(
                    "the sockhost daemon (pid {}) at {} is gone ({})",
                    d.pid(),
                    inner.socket.display(),
                    d.exit_status()
                        .map_or("still running".to_owned(), |s| s.to_string())
                ),
                None => format!(
                    "the sockhost daemon at {} is gone ({absent})",
                    inner.socket.display()
                ),
            };
            tracing::warn!("{why}");
            state.last_failure = Some(why);
        }
        match step {
            Step::Start | Step::Relaunch => {
                let command = inner.launch.as_ref().expect("launching needs a command");
                if let Some(old) = state.daemon.take() {
                    old.terminate();
                }
                match launch::start(command, &inner.socket).await {
                    Ok((daemon, conn)) => {
                        tracing::info!(
                            pid = daemon.pid(),
                            relaunch = step == Step::Relaunch,
                            "started a sockhost daemon on {}",
                            inner.socket.display()
                        );
                        state.daemon = Some(daemon);
                        Ok(state.use_connection(conn))
                    }
                    Err(e) => {
                        tracing::warn!("{e}");
                        state.last_failure = Some(e.to_string());
                        match state.lifecycle.launch_failed(Instant::now()) {
                            Some(Step::FallBack { crashes }) => self.fall_back(&mut state, crashes),
                            Some(Step::GiveUp { crashes }) => Err(state.gave_up(crashes)),
                            _ => Err(e.into()),
                        }
                    }
                }
            }
            Step::FallBack { crashes } => self.fall_back(&mut state, crashes),
            Step::GiveUp { crashes } => Err(state.gave_up(crashes)),
            Step::NotRunning => Err(DaemonError::NotRunning {
                socket: inner.socket.clone(),
                source: absent,
            }
            .into()),
        }
    }

    fn fall_back(&self, state: &mut State, crashes: usize) -> Result<Route, FetchError> {
        let factory = self
            .inner
            .fallback
            .as_ref()
            .expect("falling back needs a host factory");
        if crashes == 0 {
            tracing::warn!(
                "no sockhost daemon at {} and none may be started: networking in-process",
                self.inner.socket.display()
            );
        } else {
            tracing::warn!(
                "the sockhost daemon crashed {crashes} times within {:?}: networking in-process from now on",
                state.lifecycle.window().window()
            );
        }
        let host = factory().map_err(|e| DaemonError::Fallback(Box::new(e)))?;
        let host = Box::new(host);
        state.host = Some(host.clone());
        if let Some(daemon) = state.daemon.take() {
            daemon.terminate();
        }
        Ok(Route::InProcess(host))
    }
}

impl State {
    fn gave_up(&self, crashes: usize) -> FetchError {
        let window = self.lifecycle.window().window();
        DaemonError::GaveUp { crashes, window }.into()
    }

    fn use_connection(&mut self, conn: Connection) -> Route {
        self.lifecycle.connected();
        let sender = conn.sender.clone();
        self.connection = Some(conn);
        Route::Daemon(sender)
    }
}

impl crate::Fetch for Client {
    fn fetch(
        &self,
        request: FetchRequest,
    ) -> impl std::future::Future<Output = Result<FetchResponse, FetchError>> + Send {
        Client::fetch(self, request)
    }
}

impl Drop for Inner {
    /// A daemon the client started goes with it, as a browser's socket
    /// process goes with the browser.
    fn drop(&mut self) {
        if let Some(daemon) = self.state.get_mut().daemon.take() {
            daemon.terminate();
        }
    }
}
