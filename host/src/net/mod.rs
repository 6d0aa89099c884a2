//! The network stack. It knows nothing of plugins: it speaks traits
//! ([`plan::ConnectPolicy`], [`congestion::CongestionSelector`],
//! [`observe::NetObserver`]) that the host implements with plugins.
//!
//! Decisions are sans-IO: they take `now` and events and return actions or
//! results, so they are tested without sockets or sleeps —
//! [`race::Race`] (the connection race), [`pool::Pool`] (dispatch and
//! limits), [`candidates::CandidateSet`] (what a dial may try),
//! [`history::History`] (what a race teaches), [`dns_gate::StartGate`]
//! (when a race may start), [`alt_svc`] (the Alt-Svc cache),
//! [`dns_tally::HeldAnswers`] (what the resolver's cache holds),
//! [`happy_eyeballs`] (the built-in plan), [`windows`] (receive windows
//! and streams per connection). Thin tokio shells perform the
//! I/O: [`connect::Connector`] runs a race, [`dial::Dialer`] opens one
//! connection (or, in [`tunnel`], a plain TCP one for a `CONNECT`),
//! [`manager::Manager`] runs the pool.

pub mod alt_svc;
pub mod candidates;
pub mod congestion;
pub mod connect;
pub mod connection;
pub mod dial;
pub mod dns;
pub mod dns_gate;
pub mod dns_records;
pub mod dns_tally;
pub mod dns_wire;
pub mod error;
pub mod handshake;
pub mod happy_eyeballs;
pub mod history;
pub mod manager;
pub mod observe;
pub mod plan;
pub mod planning;
pub mod pool;
pub mod quic;
pub mod race;
pub mod tls;
pub mod tunnel;
pub mod windows;
