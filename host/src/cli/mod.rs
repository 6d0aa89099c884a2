//! The subcommands of the `sockhost` binary.

pub mod bench;
pub mod bench_costs;
pub mod bench_http;
pub mod bench_rules;
pub mod bench_stats;
pub mod ca;
pub mod check;
pub mod compile;
pub mod control;
pub mod dns;
pub mod fetch;
pub mod host_setup;
pub mod paths;
pub mod plugins;
pub mod probe_metrics;
pub mod reload;
pub mod serve;
pub mod smoke;
pub mod status;
pub mod table;
