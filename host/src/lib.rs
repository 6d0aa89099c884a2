//! sockhost: the socket process.
//!
//! One native process owns every socket an application needs and runs
//! everything pluggable about networking as capability-restricted
//! WebAssembly components. This crate is the host: the plugin runtime
//! ([`plugins`]) and the network stack ([`net`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod builtin;
pub mod client;
pub mod config;
pub mod control;
pub mod current;
pub mod extensions;
mod fetch;
pub mod host;
pub mod net;
pub mod pipeline;
pub mod plugins;
pub mod reload;
pub mod rules;
pub mod serve;
pub mod telemetry;
pub mod units;
pub mod wiring;

pub use fetch::Fetch;
