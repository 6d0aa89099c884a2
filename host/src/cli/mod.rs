//! The subcommands of the `sockhost` binary.

pub mod bench;
pub mod check;
pub mod fetch;
pub mod paths;
pub mod smoke;
