//! The network stack. Decisions here are sans-IO: they take `now` and
//! events and return actions, so they are tested without sockets.

pub mod alt_svc;
pub mod connect;
pub mod dns;
pub mod dns_gate;
pub mod happy_eyeballs;
pub mod http;
pub mod manager;
pub mod pool;
pub mod quic;
pub mod race;
pub mod tls;
