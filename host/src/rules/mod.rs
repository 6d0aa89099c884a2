//! Declarative extension rules, compiled and evaluated natively, so that
//! most requests are decided without entering WASM.

pub mod pattern;
pub mod ruleset;
