//! The daemon's control plane, the counterpart of Firefox's memory
//! reporter, crash reporter and preference sync for `sockhost serve`: what
//! the daemon is doing and what each plugin costs, read as JSON, as
//! Prometheus text or as a page; and the operator's levers (reload, enable
//! and disable a plugin, a network change).
//!
//! - [`status`]: the status document (`GET /v1/status`), plain data;
//! - [`route`]: what a control request asks for, or its 4xx (sans-IO);
//! - [`plane`]: the operations the control listener calls on the daemon;
//! - [`page`]: the status page (`GET /`), drawn from the document;
//! - [`client`]: the other end, for `sockhost status` and its siblings;
//! - [`server`]: the control listener (Unix socket 0600, loopback TCP with a
//!   bearer token);
//! - [`token`]: that bearer token;
//! - [`memory`]: the daemon's resident set;
//! - [`metrics`]: `GET /metrics` ([`exposition`]: its text formats,
//!   [`probe_export`]: the probes' metrics in it);
//! - [`crash`]: the crash reporter (panic hook, reports, their scan).

pub mod client;
pub mod crash;
pub mod exposition;
pub mod memory;
pub mod metrics;
pub mod page;
pub mod plane;
pub mod probe_export;
pub mod route;
pub mod server;
pub mod status;
pub mod token;
