//! The daemon, `sockhost serve`: the socket process as a long-running
//! process that unchanged clients reach as an HTTP proxy, on loopback TCP
//! and on a Unix socket. Every request it proxies goes through the one
//! request pipeline ([`crate::pipeline`]).
//!
//! - [`listen`]: the listeners (loopback only; the socket 0600);
//! - [`server`]: accept loops, hyper per connection, graceful shutdown;
//! - [`proxy`]: a client request through the pipeline, the response back;
//! - [`target`]: what a request line asks for (sans-IO);
//! - [`hop`]: hop-by-hop headers and `Via` (sans-IO);
//! - [`refusal`]: failures as statuses with a one-line reason (sans-IO);
//! - [`ca`]: the local CA and per-host certificates for interception;
//! - [`intercept`]: `CONNECT`s terminated with those certificates, opt-in.

pub mod ca;
pub mod hop;
pub mod intercept;
pub mod listen;
pub mod proxy;
pub mod refusal;
pub mod server;
pub mod target;
