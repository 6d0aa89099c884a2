//! The daemon, `sockhost serve`: the socket process as a long-running
//! process that unchanged clients reach as an HTTP proxy, on loopback TCP
//! and on a Unix socket. Every request it proxies goes through the one
//! request pipeline ([`crate::pipeline`]).
//!
//! - [`listen`]: the listeners (loopback unless remote clients are
//!   allowed; the socket 0600);
//! - [`server`]: accept loops, hyper per connection, graceful shutdown;
//! - [`daemon`]: the daemon as the control plane sees it (status, reload);
//! - [`limits`]: the limits on clients, with their defaults;
//! - [`client`]: a client connection as the handler sees it;
//! - [`activity`]: connections and requests counted for the status;
//! - [`idle`]: idle timeouts on client connections and tunnels;
//! - [`auth`]: proxy authentication for remote clients (sans-IO);
//! - [`access_log`]: one JSON line per request, written off the request path;
//! - [`counted`]: response bodies that report their size when done;
//! - [`actions_header`]: plugin actions in `Sockhost-Actions` (sans-IO);
//! - [`proxy`]: a client request through the pipeline, the response back;
//! - [`target`]: what a request line asks for (sans-IO);
//! - [`hop`]: hop-by-hop headers and `Via` (sans-IO);
//! - [`refusal`]: failures as statuses with a one-line reason (sans-IO);
//! - [`ca`]: the local CA and per-host certificates for interception;
//! - [`intercept`]: `CONNECT`s terminated with those certificates, opt-in.

pub mod access_log;
pub mod actions_header;
pub mod activity;
pub mod auth;
pub mod ca;
pub mod client;
pub mod counted;
pub mod daemon;
pub mod fetch_dest;
pub mod hop;
pub mod idle;
pub mod intercept;
pub mod limits;
pub mod listen;
pub mod proxy;
pub mod refusal;
pub mod server;
pub mod target;
pub mod tunnels;
