//! The connection manager's tokio shell: one task owns the sans-IO
//! [`Pool`] and every connection's sender, dials what the pool asks for,
//! and lends connections to requests. A request gives its HTTP/1.1
//! connection back when its response body has been read to the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::congestion::CongestionStatus;
use super::connect::LateConnection;
use super::connection::{ConnectionInfo, Established, ReqBody, Secured, Sender};
use super::dial::Dialer;
use super::error::{DialError, LeaseError};
use super::pool::{Action, ConnId, OriginKey, Pool, PoolPrefs, Protocol, RequestId};

/// A connection lent to one request.
#[derive(Debug)]
pub struct Lease {
    /// The connection.
    pub conn: ConnId,
    /// How to send on it.
    pub sender: Sender,
    /// How it was set up.
    pub info: Arc<ConnectionInfo>,
    /// Whether the connection served an earlier request.
    pub reused: bool,
    manager: mpsc::UnboundedSender<Cmd>,
}

impl Lease {
    /// Gives the connection back: `reusable` is false when the response
    /// was not read to the end (an HTTP/1.1 connection is then unusable).
    pub fn give_back(self, reusable: bool) {
        let sender = match self.sender {
            Sender::Http1(s) if reusable && !s.is_closed() => Some(s),
            _ => None,
        };
        let _ = self.manager.send(Cmd::Done {
            conn: self.conn,
            http1: sender,
            broken: !reusable,
        });
    }
}

#[derive(Debug)]
enum Cmd {
    Request {
        origin: OriginKey,
        reply: oneshot::Sender<Result<Lease, LeaseError>>,
    },
    Dialed {
        conn: ConnId,
        result: Result<Established, DialError>,
    },
    Done {
        conn: ConnId,
        http1: Option<hyper::client::conn::http1::SendRequest<ReqBody>>,
        broken: bool,
    },
    Closed {
        conn: ConnId,
    },
    Stats {
        reply: oneshot::Sender<PoolStats>,
    },
    Adopt {
        origin: OriginKey,
        est: Established,
    },
}

/// What the pool holds right now.
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// Connections, including handshakes and closes in progress.
    pub connections: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// Each origin with an established connection or a waiting request,
    /// by origin.
    pub origins: Vec<OriginStats>,
}

/// One origin's part of the pool.
#[derive(Debug, Clone)]
pub struct OriginStats {
    /// The origin.
    pub origin: OriginKey,
    /// Its established connections (handshakes and closes in progress
    /// are not listed).
    pub connections: Vec<ConnectionStats>,
    /// Requests waiting for a connection to it.
    pub queued: usize,
}

/// One established connection.
#[derive(Debug, Clone)]
pub struct ConnectionStats {
    /// Its protocol.
    pub protocol: Protocol,
    /// The peer.
    pub peer: Option<SocketAddr>,
    /// Requests on it now (0: idle).
    pub active: usize,
    /// What controls its congestion (QUIC only).
    pub congestion: Option<Arc<CongestionStatus>>,
}

/// A handle to the manager task.
#[derive(Debug, Clone)]
pub struct Manager {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Manager {
    /// Starts the manager on the current tokio runtime.
    pub fn start(dialer: Dialer, prefs: PoolPrefs) -> Manager {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            pool: Pool::new(prefs),
            dialer,
            tx: tx.clone(),
            conns: HashMap::new(),
            waiting: HashMap::new(),
            next_request: 1,
        };
        tokio::spawn(task.run(rx));
        Manager { tx }
    }

    /// What the pool holds right now.
    pub async fn stats(&self) -> Option<PoolStats> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::Stats { reply }).ok()?;
        rx.await.ok()
    }

    /// A connection to `origin`, when one is usable.
    pub async fn lease(&self, origin: OriginKey) -> Result<Lease, LeaseError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Request { origin, reply })
            .map_err(|_| LeaseError::ManagerStopped)?;
        rx.await.map_err(|_| LeaseError::ManagerStopped)?
    }
}

struct ConnEntry {
    protocol: Protocol,
    /// HTTP/1.1: present while idle. HTTP/2: always present.
    sender: Option<Sender>,
    info: Arc<ConnectionInfo>,
    uses: u64,
}

struct Task {
    pool: Pool,
    dialer: Dialer,
    tx: mpsc::UnboundedSender<Cmd>,
    conns: HashMap<ConnId, ConnEntry>,
    waiting: HashMap<RequestId, oneshot::Sender<Result<Lease, LeaseError>>>,
    next_request: RequestId,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let deadline = self.pool.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => return,
                },
                _ = sleep => self.pool.tick(Instant::now()),
            };
            self.perform(actions);
        }
    }

    fn handle(&mut self, cmd: Cmd) -> Vec<Action> {
        let now = Instant::now();
        match cmd {
            Cmd::Request { origin, reply } => {
                let id = self.next_request;
                self.next_request += 1;
                self.waiting.insert(id, reply);
                self.pool.request(id, origin, now)
            }
            Cmd::Dialed { conn, result } => match result {
                Ok(mut est) => {
                    if let (Some(late), Some(origin)) = (est.late.take(), self.pool_origin(conn)) {
                        self.adopt_late_winners(origin, late);
                    }
                    self.insert(conn, est);
                    let protocol = self.conns[&conn].protocol;
                    self.pool.connected(conn, protocol, now)
                }
                Err(e) => self.pool.connect_failed(conn, Arc::new(e), now),
            },
            Cmd::Adopt { origin, est } => match self.pool.adopt(origin, est.protocol, now) {
                Some((conn, actions)) => {
                    tracing::debug!("adopted a late connection as {conn}");
                    self.insert(conn, est);
                    actions
                }
                // Over the limits: dropping it closes it.
                None => Vec::new(),
            },
            Cmd::Done {
                conn,
                http1,
                broken,
            } => {
                if broken
                    && matches!(self.conns.get(&conn), Some(c) if c.protocol == Protocol::Http1)
                {
                    self.conns.remove(&conn);
                    return self.pool.closed(conn, now);
                }
                if let (Some(entry), Some(s)) = (self.conns.get_mut(&conn), http1) {
                    entry.sender = Some(Sender::Http1(s));
                }
                self.pool.request_done(conn, now)
            }
            Cmd::Closed { conn } => {
                self.conns.remove(&conn);
                self.pool.closed(conn, now)
            }
            Cmd::Stats { reply } => {
                let _ = reply.send(self.stats());
                Vec::new()
            }
        }
    }

    /// The pool's view, with what the manager knows of each connection.
    fn stats(&self) -> PoolStats {
        let origins = self
            .pool
            .view()
            .into_iter()
            .map(|o| OriginStats {
                origin: o.origin,
                queued: o.queued,
                connections: o
                    .connections
                    .into_iter()
                    .map(|c| {
                        let info = self.conns.get(&c.conn).map(|e| &e.info);
                        ConnectionStats {
                            protocol: c.protocol,
                            peer: info.and_then(|i| i.remote),
                            active: c.active,
                            congestion: info.and_then(|i| i.congestion.clone()),
                        }
                    })
                    .collect(),
            })
            .collect();
        PoolStats {
            connections: self.pool.total_connections(),
            waiting: self.pool.waiting(),
            origins,
        }
    }

    fn insert(&mut self, conn: ConnId, est: Established) {
        let tx = self.tx.clone();
        let closed = est.closed;
        tokio::spawn(async move {
            let _ = closed.await;
            let _ = tx.send(Cmd::Closed { conn });
        });
        self.conns.insert(
            conn,
            ConnEntry {
                protocol: est.protocol,
                sender: Some(est.sender),
                info: est.info,
                uses: 0,
            },
        );
    }

    /// Connections of a won race that connected anyway (a syn-retry twin)
    /// get their HTTP handshake and are offered to the pool.
    fn adopt_late_winners(
        &self,
        origin: OriginKey,
        mut late: mpsc::UnboundedReceiver<LateConnection<Secured>>,
    ) {
        let (dialer, tx) = (self.dialer.clone(), self.tx.clone());
        tokio::spawn(async move {
            while let Some(l) = late.recv().await {
                let info = ConnectionInfo {
                    remote: Some(l.addr),
                    planned_by: "syn-retry late winner".into(),
                    ..ConnectionInfo::default()
                };
                if let Ok(est) = dialer.establish(&origin, l.stream, info).await {
                    let origin = origin.clone();
                    let _ = tx.send(Cmd::Adopt { origin, est });
                }
            }
        });
    }

    /// The origin a connection in the pool belongs to.
    fn pool_origin(&self, conn: ConnId) -> Option<OriginKey> {
        self.pool.origin_of(conn)
    }

    fn perform(&mut self, actions: Vec<Action>) {
        let mut queue = actions;
        while !queue.is_empty() {
            let mut more = Vec::new();
            for action in queue {
                match action {
                    Action::Connect { conn, origin } => {
                        let dialer = self.dialer.clone();
                        let tx = self.tx.clone();
                        tokio::spawn(async move {
                            let result = dialer.dial(&origin).await;
                            let _ = tx.send(Cmd::Dialed { conn, result });
                        });
                    }
                    Action::Dispatch { request, conn } => {
                        let Some(reply) = self.waiting.remove(&request) else {
                            more.extend(self.pool.request_done(conn, Instant::now()));
                            continue;
                        };
                        let Some(entry) = self.conns.get_mut(&conn) else {
                            let origin = self.pool.origin_of(conn);
                            let _ = reply.send(Err(LeaseError::Vanished(origin)));
                            continue;
                        };
                        let sender = match &mut entry.sender {
                            Some(Sender::Http2(s)) => Some(Sender::Http2(s.clone())),
                            Some(Sender::Http3(s)) => Some(Sender::Http3(s.clone())),
                            slot @ Some(Sender::Http1(_)) => slot.take(),
                            None => None,
                        };
                        let Some(sender) = sender else {
                            let origin = self.pool.origin_of(conn);
                            let _ = reply.send(Err(LeaseError::Busy(origin)));
                            continue;
                        };
                        entry.uses += 1;
                        let lease = Lease {
                            conn,
                            sender,
                            info: entry.info.clone(),
                            reused: entry.uses > 1,
                            manager: self.tx.clone(),
                        };
                        if let Err(Ok(lease)) = reply.send(Ok(lease)) {
                            // The requester gave up: the connection is free.
                            lease.give_back(true);
                        }
                    }
                    Action::Fail { request, error } => {
                        if let Some(reply) = self.waiting.remove(&request) {
                            let _ = reply.send(Err(LeaseError::Dial(error)));
                        }
                    }
                    Action::Close(conn) => {
                        // Dropping the sender ends the connection's driver.
                        self.conns.remove(&conn);
                    }
                }
            }
            queue = more;
        }
    }
}
