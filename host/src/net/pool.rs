//! The connection manager's decisions, sans-IO (necko-style): which request
//! goes on which connection, when to open a connection, what to close.
//!
//! - HTTP/1.1: one request at a time per connection, at most
//!   [`PoolPrefs::max_per_host`] connections per origin and
//!   [`PoolPrefs::max_total`] in all; requests over the limits wait in a
//!   queue, they do not fail.
//! - HTTP/2 (and HTTP/3): one connection per origin carries up to
//!   [`STREAMS_PER_CONNECTION`] requests; only beyond that is another one
//!   opened (within [`PoolPrefs::max_per_host`]), so that unread response
//!   bodies never take a connection's whole receive window (see
//!   [`super::windows`]).
//! - Until an origin's protocol is known, only one handshake is made, so a
//!   burst of requests to an h2 origin opens exactly one connection.
//! - **First usable wins**: a waiting request is not tied to the handshake
//!   started for it; whichever connection becomes usable first (a pooled one
//!   freed by another request, or a new one) takes the oldest waiting
//!   request. A handshake that completes with nobody waiting leaves an idle
//!   connection.
//! - Idle connections are kept warm for [`PoolPrefs::idle_timeout`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::DialError;
use super::windows::STREAMS_PER_CONNECTION;

/// Identifies a request.
pub type RequestId = u64;
/// Identifies a connection (or a handshake that will become one).
pub type ConnId = u64;

/// Where connections go: requests to the same key may share connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginKey {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for OriginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// A connection's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// One request at a time.
    Http1,
    /// Multiplexed over TCP.
    Http2,
    /// Multiplexed over QUIC.
    Http3,
}

impl Protocol {
    /// The protocol's ALPN id: `http/1.1`, `h2` or `h3`.
    pub fn alpn(self) -> &'static str {
        match self {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2 => "h2",
            Protocol::Http3 => "h3",
        }
    }

    /// Whether one connection carries many requests at once (then one
    /// connection per origin is enough).
    pub fn is_multiplexed(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Http3)
    }
}

/// Limits and timers.
#[derive(Debug, Clone, Copy)]
pub struct PoolPrefs {
    /// HTTP/1.1 connections per origin.
    pub max_per_host: usize,
    /// Connections (and handshakes) in all.
    pub max_total: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

impl Default for PoolPrefs {
    fn default() -> Self {
        PoolPrefs {
            max_per_host: 6,
            max_total: 256,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open connection `conn` to `origin`.
    Connect {
        /// The new connection's id.
        conn: ConnId,
        /// Where.
        origin: OriginKey,
    },
    /// Send request `request` on connection `conn`.
    Dispatch {
        /// The request.
        request: RequestId,
        /// The connection.
        conn: ConnId,
    },
    /// Fail a waiting request: its origin could not be reached.
    Fail {
        /// The request.
        request: RequestId,
        /// Why (shared by every request that waited for the connection).
        error: Arc<DialError>,
    },
    /// Close an idle connection.
    Close(ConnId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    /// HTTP/1.1 with a request on it, or HTTP/2 with requests on it
    /// (usable while under [`STREAMS_PER_CONNECTION`]).
    Busy,
    Idle {
        since: Instant,
    },
    /// Told to close; still counted against the limits until the shell
    /// reports it closed, so a new connection never overlaps it.
    Closing,
}

#[derive(Debug, Clone)]
struct Conn {
    origin: OriginKey,
    protocol: Option<Protocol>,
    state: ConnState,
    /// Requests in flight on it (HTTP/2 may have many).
    active: usize,
}

impl Conn {
    /// Whether a request may be dispatched on it now.
    fn takes_another(&self) -> bool {
        match (self.protocol, self.state) {
            (Some(Protocol::Http2 | Protocol::Http3), ConnState::Busy | ConnState::Idle { .. }) => {
                self.active < STREAMS_PER_CONNECTION
            }
            (Some(Protocol::Http1), ConnState::Idle { .. }) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct OriginState {
    /// Learned from the first connection's ALPN.
    protocol: Option<Protocol>,
    waiting: VecDeque<RequestId>,
}

/// One origin as the pool sees it: its established connections and the
/// requests waiting for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginView {
    /// The origin.
    pub origin: OriginKey,
    /// Its connections that finished their handshake and are not closing,
    /// by id.
    pub connections: Vec<ConnView>,
    /// Requests waiting for a connection to it.
    pub queued: usize,
}

/// One established connection as the pool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnView {
    /// The connection.
    pub conn: ConnId,
    /// Its protocol.
    pub protocol: Protocol,
    /// Requests on it now (0: idle).
    pub active: usize,
}

/// The pool.
#[derive(Debug)]
pub struct Pool {
    prefs: PoolPrefs,
    conns: HashMap<ConnId, Conn>,
    origins: HashMap<OriginKey, OriginState>,
    /// Which origin each waiting request is for, oldest first, for the
    /// global cap: when a slot frees, the oldest blocked request's origin
    /// gets it.
    global_waiting: VecDeque<(RequestId, OriginKey)>,
    next_conn: ConnId,
}

impl Pool {
    /// An empty pool.
    pub fn new(prefs: PoolPrefs) -> Pool {
        Pool {
            prefs,
            conns: HashMap::new(),
            origins: HashMap::new(),
            global_waiting: VecDeque::new(),
            next_conn: 1,
        }
    }

    /// Connections and handshakes to `origin`.
    pub fn connections_to(&self, origin: &OriginKey) -> usize {
        self.conns.values().filter(|c| &c.origin == origin).count()
    }

    /// The origin of connection `conn`.
    pub fn origin_of(&self, conn: ConnId) -> Option<OriginKey> {
        self.conns.get(&conn).map(|c| c.origin.clone())
    }

    /// Connections and handshakes in all.
    pub fn total_connections(&self) -> usize {
        self.conns.len()
    }

    /// Requests waiting for a connection.
    pub fn waiting(&self) -> usize {
        self.origins.values().map(|o| o.waiting.len()).sum()
    }

    /// Every origin with an established connection or a waiting request,
    /// by origin; handshakes in progress and connections being closed are
    /// left out (they carry no request).
    pub fn view(&self) -> Vec<OriginView> {
        let mut views: std::collections::BTreeMap<&OriginKey, OriginView> = self
            .origins
            .iter()
            .filter(|(_, o)| !o.waiting.is_empty())
            .map(|(key, o)| {
                let view = OriginView {
                    origin: key.clone(),
                    connections: Vec::new(),
                    queued: o.waiting.len(),
                };
                (key, view)
            })
            .collect();
        for (&conn, c) in &self.conns {
            let Some(protocol) = c.protocol else { continue };
            if matches!(c.state, ConnState::Connecting | ConnState::Closing) {
                continue;
            }
            let view = views.entry(&c.origin).or_insert_with(|| OriginView {
                origin: c.origin.clone(),
                connections: Vec::new(),
                queued: 0,
            });
            view.connections.push(ConnView {
                conn,
                protocol,
                active: c.active,
            });
        }
        let mut views: Vec<OriginView> = views.into_values().collect();
        for v in &mut views {
            v.connections.sort_by_key(|c| c.conn);
        }
        views
    }

    /// A new request for `origin`.
    pub fn request(&mut self, request: RequestId, origin: OriginKey, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.origins
            .entry(origin.clone())
            .or_default()
            .waiting
            .push_back(request);
        self.global_waiting.push_back((request, origin.clone()));
        self.pump(&origin, now, &mut actions);
        actions
    }

    /// Connection `conn` finished its handshake speaking `protocol`.
    pub fn connected(&mut self, conn: ConnId, protocol: Protocol, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(c) = self.conns.get_mut(&conn) else {
            return actions;
        };
        c.protocol = Some(protocol);
        c.state = ConnState::Idle { since: now };
        let origin = c.origin.clone();
        self.origins.entry(origin.clone()).or_default().protocol = Some(protocol);
        if protocol.is_multiplexed() {
            // One h2 (or h3) connection per origin: a second one that raced
            // the first is surplus once idle.
            let surplus: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(id, c)| {
                    **id != conn
                        && c.origin == origin
                        && c.protocol == Some(protocol)
                        && c.active == 0
                })
                .map(|(id, _)| *id)
                .collect();
            for id in surplus {
                self.close(id, &mut actions);
            }
        }
        self.pump(&origin, now, &mut actions);
        self.pump_all(now, &mut actions);
        actions
    }

    /// A connection that was not asked for (a race's late winner) offers
    /// itself to the pool: it becomes an idle connection of `origin` when
    /// the limits allow, else `None` and the caller closes it.
    pub fn adopt(
        &mut self,
        origin: OriginKey,
        protocol: Protocol,
        now: Instant,
    ) -> Option<(ConnId, Vec<Action>)> {
        let to_origin = self.connections_to(&origin);
        let full = self.conns.len() >= self.prefs.max_total
            || match protocol {
                Protocol::Http1 => to_origin >= self.prefs.max_per_host,
                Protocol::Http2 | Protocol::Http3 => self
                    .conns
                    .values()
                    .any(|c| c.origin == origin && c.protocol == Some(protocol)),
            };
        if full {
            return None;
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            conn,
            Conn {
                origin: origin.clone(),
                protocol: Some(protocol),
                state: ConnState::Idle { since: now },
                active: 0,
            },
        );
        self.origins.entry(origin.clone()).or_default().protocol = Some(protocol);
        let mut actions = Vec::new();
        self.pump(&origin, now, &mut actions);
        Some((conn, actions))
    }

    /// Connection `conn`'s handshake failed. Waiting requests are failed
    /// only if nothing else to their origin is connected or connecting.
    pub fn connect_failed(
        &mut self,
        conn: ConnId,
        error: Arc<DialError>,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(c) = self.conns.remove(&conn) else {
            return actions;
        };
        let origin = c.origin;
        if self.connections_to(&origin) == 0 {
            let waiting: Vec<RequestId> = self
                .origins
                .get_mut(&origin)
                .map(|o| o.waiting.drain(..).collect())
                .unwrap_or_default();
            self.global_waiting.retain(|(r, _)| !waiting.contains(r));
            for request in waiting {
                actions.push(Action::Fail {
                    request,
                    error: error.clone(),
                });
            }
        }
        self.pump_all(now, &mut actions);
        actions
    }

    /// Request on `conn` finished (its response body was consumed).
    pub fn request_done(&mut self, conn: ConnId, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(c) = self.conns.get_mut(&conn) else {
            return actions;
        };
        c.active = c.active.saturating_sub(1);
        if c.active == 0 {
            c.state = ConnState::Idle { since: now };
        }
        let origin = c.origin.clone();
        self.pump(&origin, now, &mut actions);
        self.pump_all(now, &mut actions);
        actions
    }

    /// Connection `conn` closed (by the peer or an error).
    pub fn closed(&mut self, conn: ConnId, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(c) = self.conns.remove(&conn) {
            self.pump(&c.origin, now, &mut actions);
        }
        self.pump_all(now, &mut actions);
        actions
    }

    /// Closes connections idle for longer than the idle timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, ConnState::Idle { since } if now.duration_since(since) >= self.prefs.idle_timeout))
            .map(|(id, _)| *id)
            .collect();
        let mut actions = Vec::new();
        for id in expired {
            self.close(id, &mut actions);
        }
        self.pump_all(now, &mut actions);
        actions
    }

    fn close(&mut self, id: ConnId, actions: &mut Vec<Action>) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.state = ConnState::Closing;
            actions.push(Action::Close(id));
        }
    }

    /// When [`Pool::tick`] next has something to close.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| match c.state {
                ConnState::Idle { since } => Some(since + self.prefs.idle_timeout),
                _ => None,
            })
            .min()
    }

    /// Gives waiting requests of `origin` usable connections, and starts
    /// handshakes within the limits.
    fn pump(&mut self, origin: &OriginKey, _now: Instant, actions: &mut Vec<Action>) {
        while let Some(&request) = self.origins.get(origin).and_then(|o| o.waiting.front()) {
            let Some(conn) = self.usable(origin) else {
                break;
            };
            let c = self.conns.get_mut(&conn).expect("usable exists");
            c.state = ConnState::Busy;
            c.active += 1;
            if let Some(o) = self.origins.get_mut(origin) {
                o.waiting.pop_front();
            }
            self.global_waiting.retain(|(r, _)| *r != request);
            actions.push(Action::Dispatch { request, conn });
        }
        for _ in 0..self.handshakes_wanted(origin) {
            if self.conns.len() >= self.prefs.max_total && !self.evict_idle(origin, actions) {
                break;
            }
            let conn = self.next_conn;
            self.next_conn += 1;
            self.conns.insert(
                conn,
                Conn {
                    origin: origin.clone(),
                    protocol: None,
                    state: ConnState::Connecting,
                    active: 0,
                },
            );
            actions.push(Action::Connect {
                conn,
                origin: origin.clone(),
            });
        }
    }

    /// The connection to `origin` a request should go to now: a
    /// multiplexed one with room first (the oldest, so that extra ones
    /// fall idle), then the most recently used idle connection (warmest
    /// congestion window).
    fn usable(&self, origin: &OriginKey) -> Option<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| &c.origin == origin)
            .filter(|(_, c)| c.takes_another())
            .max_by_key(|(id, c)| {
                let multiplexed = c.protocol.is_some_and(Protocol::is_multiplexed);
                (
                    multiplexed,
                    match c.state {
                        ConnState::Idle { since } if !multiplexed => Some(since),
                        _ => None,
                    },
                    std::cmp::Reverse(**id),
                )
            })
            .map(|(id, _)| *id)
    }

    /// How many handshakes to start for the requests of `origin` still
    /// waiting, within the per-host limits (the global cap is the caller's).
    fn handshakes_wanted(&self, origin: &OriginKey) -> usize {
        let waiting = self.origins.get(origin).map_or(0, |o| o.waiting.len());
        let protocol = self.origins.get(origin).and_then(|o| o.protocol);
        let connecting = self
            .conns
            .values()
            .filter(|c| &c.origin == origin && c.state == ConnState::Connecting)
            .count();
        let to_origin = self.connections_to(origin);
        match protocol {
            // Until the protocol is known, one handshake at a time.
            None => usize::from(waiting > 0 && connecting == 0),
            // One h2 or h3 connection carries everything it has room for;
            // another one only when every one is full, one at a time.
            Some(Protocol::Http2 | Protocol::Http3) => usize::from(
                waiting > 0
                    && connecting == 0
                    && to_origin < self.prefs.max_per_host.max(1)
                    && !self
                        .conns
                        .values()
                        .any(|c| &c.origin == origin && c.takes_another()),
            ),
            // h1: one connection per waiting request not already covered by
            // a handshake in progress, within the per-host cap.
            Some(Protocol::Http1) => waiting
                .saturating_sub(connecting)
                .min(self.prefs.max_per_host.saturating_sub(to_origin)),
        }
    }

    /// At the global cap, closes the oldest idle connection of another
    /// origin to make room. Returns whether it did.
    fn evict_idle(&mut self, for_origin: &OriginKey, actions: &mut Vec<Action>) -> bool {
        // A close already under way frees a slot soon: do not close more.
        if self.conns.values().any(|c| c.state == ConnState::Closing) {
            return false;
        }
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| &c.origin != for_origin)
            .filter_map(|(id, c)| match c.state {
                ConnState::Idle { since } => Some((since, *id)),
                _ => None,
            })
            .min()
            .map(|(_, id)| id);
        match victim {
            Some(id) => {
                self.close(id, actions);
                // The slot frees when the shell reports the close.
                false
            }
            None => false,
        }
    }

    /// Serves origins blocked by the global cap, oldest request first.
    fn pump_all(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let origins: Vec<OriginKey> = {
            let mut seen = Vec::new();
            for (_, o) in &self.global_waiting {
                if !seen.contains(o) {
                    seen.push(o.clone());
                }
            }
            seen
        };
        for o in origins {
            self.pump(&o, now, actions);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(host: &str) -> OriginKey {
        OriginKey {
            scheme: "https".into(),
            host: host.into(),
            port: 443,
        }
    }

    fn connects(a: &[Action]) -> Vec<ConnId> {
        a.iter()
            .filter_map(|a| match a {
                Action::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .collect()
    }

    fn dispatches(a: &[Action]) -> Vec<(RequestId, ConnId)> {
        a.iter()
            .filter_map(|a| match a {
                Action::Dispatch { request, conn } => Some((*request, *conn)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_h2_origin_gets_exactly_one_connection_for_a_burst() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs::default());
        let o = origin("h2.test");
        let mut started = Vec::new();
        for r in 0..20 {
            started.extend(connects(&p.request(r, o.clone(), t)));
        }
        assert_eq!(
            started.len(),
            1,
            "one handshake until the protocol is known"
        );
        let a = p.connected(started[0], Protocol::Http2, t);
        assert_eq!(dispatches(&a).len(), 20);
        assert!(dispatches(&a).iter().all(|(_, c)| *c == started[0]));
        assert_eq!(p.connections_to(&o), 1);
        // Later requests reuse it at once.
        assert_eq!(
            dispatches(&p.request(99, o.clone(), t)),
            vec![(99, started[0])]
        );
    }

    #[test]
    fn a_full_h2_connection_gets_a_second_one_and_the_first_is_filled_first() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs::default());
        let o = origin("h2.test");
        let n = STREAMS_PER_CONNECTION as RequestId;
        let c1 = connects(&p.request(0, o.clone(), t))[0];
        for r in 1..n + 2 {
            assert!(connects(&p.request(r, o.clone(), t)).is_empty());
        }
        // The first connection takes all it has room for; a second one is
        // opened for the rest, once.
        let a = p.connected(c1, Protocol::Http2, t);
        assert_eq!(dispatches(&a).len(), STREAMS_PER_CONNECTION);
        let c2 = connects(&a);
        assert_eq!(c2.len(), 1);
        assert!(connects(&p.request(n + 2, o.clone(), t)).is_empty());
        let a = p.connected(c2[0], Protocol::Http2, t);
        assert_eq!(
            dispatches(&a),
            vec![(n, c2[0]), (n + 1, c2[0]), (n + 2, c2[0])]
        );
        // A request that finishes on the first makes room there, which
        // the next request takes before the second connection.
        assert!(dispatches(&p.request_done(c1, t)).is_empty());
        assert_eq!(
            dispatches(&p.request(n + 3, o.clone(), t)),
            vec![(n + 3, c1)]
        );
        // Even when the second one is idle: it is left to time out.
        for _ in 0..3 {
            p.request_done(c2[0], t);
        }
        p.request_done(c1, t);
        assert_eq!(
            dispatches(&p.request(n + 4, o.clone(), t)),
            vec![(n + 4, c1)]
        );
        assert_eq!(p.connections_to(&o), 2);
    }

    #[test]
    fn full_h2_connections_stop_at_the_per_host_cap_and_requests_wait() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs {
            max_per_host: 2,
            ..PoolPrefs::default()
        });
        let o = origin("h2.test");
        let n = STREAMS_PER_CONNECTION as RequestId;
        let c1 = connects(&p.request(0, o.clone(), t))[0];
        for r in 1..2 * n + 1 {
            p.request(r, o.clone(), t);
        }
        let c2 = connects(&p.connected(c1, Protocol::Http2, t))[0];
        let a = p.connected(c2, Protocol::Http2, t);
        assert_eq!(dispatches(&a).len(), STREAMS_PER_CONNECTION);
        assert!(connects(&a).is_empty(), "two connections at most");
        assert_eq!(p.waiting(), 1);
        assert_eq!(dispatches(&p.request_done(c2, t)), vec![(2 * n, c2)]);
    }

    #[test]
    fn an_h1_origin_uses_at_most_six_connections_and_queues_the_rest() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs::default());
        let o = origin("h1.test");
        let first = connects(&p.request(0, o.clone(), t));
        assert_eq!(first.len(), 1);
        for r in 1..20 {
            assert!(connects(&p.request(r, o.clone(), t)).is_empty());
        }
        // The first connection says h1: now open up to the cap.
        let a = p.connected(first[0], Protocol::Http1, t);
        assert_eq!(dispatches(&a), vec![(0, first[0])]);
        let more = connects(&a);
        assert_eq!(more.len(), 5, "6 in all");
        assert_eq!(p.connections_to(&o), 6);
        let mut dispatched = 1;
        for c in &more {
            dispatched += dispatches(&p.connected(*c, Protocol::Http1, t)).len();
        }
        assert_eq!(dispatched, 6);
        assert_eq!(p.waiting(), 14);
        // Each finished request frees its connection for the next waiting one.
        let a = p.request_done(first[0], t);
        assert_eq!(dispatches(&a), vec![(6, first[0])]);
        assert!(connects(&a).is_empty());
        assert_eq!(p.connections_to(&o), 6);
    }

    #[test]
    fn a_freed_pooled_connection_wins_over_a_pending_handshake() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs::default());
        let o = origin("h1.test");
        let c1 = connects(&p.request(1, o.clone(), t))[0];
        p.connected(c1, Protocol::Http1, t);
        // Request 2 arrives while 1 is in flight: a handshake starts.
        let c2 = connects(&p.request(2, o.clone(), t))[0];
        // Request 1 finishes before the handshake: request 2 takes c1.
        assert_eq!(dispatches(&p.request_done(c1, t)), vec![(2, c1)]);
        // The handshake completes with nobody waiting: an idle connection.
        assert!(dispatches(&p.connected(c2, Protocol::Http1, t)).is_empty());
        assert_eq!(p.waiting(), 0);
        assert_eq!(dispatches(&p.request(3, o.clone(), t)), vec![(3, c2)]);
    }

    #[test]
    fn the_global_cap_holds_and_queued_requests_are_served_later() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs {
            max_per_host: 6,
            max_total: 4,
            idle_timeout: Duration::from_secs(90),
        });
        let mut conns = Vec::new();
        for (i, host) in ["a.test", "b.test", "c.test", "d.test", "e.test"]
            .iter()
            .enumerate()
        {
            conns.extend(connects(&p.request(i as u64, origin(host), t)));
        }
        assert_eq!(conns.len(), 4);
        assert_eq!(p.total_connections(), 4);
        assert_eq!(p.waiting(), 5);
        for c in &conns {
            p.connected(*c, Protocol::Http1, t);
        }
        // a's request finishes: its idle connection is closed for e, and
        // e's connection starts only once that close is done.
        let a = p.request_done(conns[0], t);
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Close(c) if *c == conns[0])),
            "{a:?}"
        );
        assert!(connects(&a).is_empty(), "{a:?}");
        let a = p.closed(conns[0], t);
        let e = connects(&a);
        assert_eq!(e.len(), 1);
        assert_eq!(p.total_connections(), 4);
        assert_eq!(
            dispatches(&p.connected(e[0], Protocol::Http1, t)),
            vec![(4, e[0])]
        );
    }

    #[test]
    fn failures_fail_waiting_requests_only_when_nothing_else_can_serve_them() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs::default());
        let o = origin("down.test");
        let c = connects(&p.request(1, o.clone(), t))[0];
        p.request(2, o.clone(), t);
        let refused = Arc::new(DialError::Http3NeedsHttps { origin: o.clone() });
        let a = p.connect_failed(c, refused.clone(), t);
        assert_eq!(a.len(), 2);
        assert!(
            matches!(&a[0], Action::Fail { request: 1, error } if Arc::ptr_eq(error, &refused))
        );
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn a_late_winner_is_adopted_within_the_limits() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs::default());
        let o = origin("h1.test");
        let c = connects(&p.request(1, o.clone(), t))[0];
        p.connected(c, Protocol::Http1, t);
        // A late twin of c's race: an idle connection, used by the next request.
        let (late, actions) = p.adopt(o.clone(), Protocol::Http1, t).unwrap();
        assert!(actions.is_empty());
        assert_eq!(dispatches(&p.request(2, o.clone(), t)), vec![(2, late)]);
        // A second h2 connection to an origin is never adopted.
        let o2 = origin("h2.test");
        let c2 = connects(&p.request(3, o2.clone(), t))[0];
        p.connected(c2, Protocol::Http2, t);
        assert!(p.adopt(o2, Protocol::Http2, t).is_none());
    }

    #[test]
    fn the_view_shows_established_connections_their_requests_and_the_queue() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs {
            max_per_host: 1,
            ..PoolPrefs::default()
        });
        let (h1, h2) = (origin("h1.test"), origin("h2.test"));
        let c1 = connects(&p.request(1, h1.clone(), t))[0];
        p.request(2, h1.clone(), t);
        let c2 = connects(&p.request(3, h2.clone(), t))[0];
        // Handshakes in progress are not connections yet.
        let v = p.view();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|o| o.connections.is_empty()), "{v:?}");
        assert_eq!(v[0].queued, 2);
        p.connected(c1, Protocol::Http1, t);
        p.connected(c2, Protocol::Http2, t);
        p.request(4, h2.clone(), t);
        let v = p.view();
        assert_eq!(v[0].origin, h1);
        assert_eq!(
            v[0].connections,
            [ConnView {
                conn: c1,
                protocol: Protocol::Http1,
                active: 1
            }]
        );
        assert_eq!(v[0].queued, 1, "one h1 connection at most: request 2 waits");
        assert_eq!(v[1].connections[0].active, 2, "h2 carries both");
        assert_eq!(v[1].queued, 0);
        // Finished requests leave idle connections.
        p.request_done(c1, t);
        p.request_done(c1, t);
        p.request_done(c2, t);
        p.request_done(c2, t);
        let v = p.view();
        assert!(
            v.iter()
                .all(|o| o.queued == 0 && o.connections[0].active == 0),
            "{v:?}"
        );
        assert_eq!(v[0].connections[0].protocol.alpn(), "http/1.1");
        assert_eq!(v[1].connections[0].protocol.alpn(), "h2");
    }

    #[test]
    fn idle_connections_close_after_the_idle_timeout() {
        let t = Instant::now();
        let mut p = Pool::new(PoolPrefs {
            idle_timeout: Duration::from_secs(5),
            ..PoolPrefs::default()
        });
        let o = origin("h1.test");
        let c = connects(&p.request(1, o.clone(), t))[0];
        p.connected(c, Protocol::Http1, t);
        p.request_done(c, t + Duration::from_secs(1));
        assert_eq!(p.next_deadline(), Some(t + Duration::from_secs(6)));
        assert!(p.tick(t + Duration::from_secs(5)).is_empty());
        let closed = p.tick(t + Duration::from_secs(6));
        assert!(
            matches!(closed[..], [Action::Close(x)] if x == c),
            "{closed:?}"
        );
        assert_eq!(p.total_connections(), 1, "counted until closed");
        p.closed(c, t + Duration::from_secs(6));
        assert_eq!(p.total_connections(), 0);
    }
}
