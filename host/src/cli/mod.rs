//! The subcommands of the `sockhost` binary.

pub mod bench;
pub mod bench_costs;
pub mod bench_http;
pub mod bench_rules;
pub mod bench_stats;
pub mod ca;
pub mod check;
pub mod compile;
pub mod fetch;
pub mod host_setup;
pub mod paths;
pub mod probe_metrics;
pub mod serve;
pub mod smoke;
