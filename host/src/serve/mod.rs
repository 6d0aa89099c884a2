//! The daemon, `sockhost serve`: the socket process as a long-running
//! process that unchanged clients reach as an HTTP proxy, on loopback TCP
//! and on a Unix socket. Every request it proxies goes through the one
//! request pipeline ([`crate::pipeline`]).
pub mod ca;
