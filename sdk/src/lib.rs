//! Write sockhost plugins in Rust.
//!
//! A plugin implements one trait for its kind and registers it with one
//! macro:
//!
//! | kind (WIT world)      | trait                               | register                     |
//! |-----------------------|-------------------------------------|------------------------------|
//! | `congestion-policy`   | [`congestion::Controller`]          | `register!(congestion: T)`   |
//! | `connect-policy`      | [`connect::ConnectPolicy`]          | `register!(connect: T)`      |
//! | `telemetry-probe`     | [`telemetry::Probe`]                | `register!(probe: T)`        |
//! | `extension`           | [`extension::Extension`]            | `register!(extension: T)`    |
//!
//! ```ignore
//! use sockhost_sdk::extension::{Extension, Request, RequestVerdict};
//!
//! struct NoTracking;
//!
//! impl Extension for NoTracking {
//!     fn new() -> Self { NoTracking }
//!     fn on_request(&mut self, request: Request) -> RequestVerdict {
//!         if request.url.contains("utm_") {
//!             RequestVerdict::Cancel("tracking parameters".into())
//!         } else {
//!             RequestVerdict::Proceed(Vec::new())
//!         }
//!     }
//! }
//!
//! sockhost_sdk::register!(extension: NoTracking);
//! ```
//!
//! Build with `plugins/build.sh` (see the repository's README); the crate
//! must be a `cdylib`. A panic in a plugin is logged as
//! `panicked at FILE:LINE: MESSAGE` and ends the call; the host records the
//! fault and restarts the plugin within its manifest's limit.
//!
//! On targets other than wasm32 (a plugin's own unit tests) the log goes to
//! stderr and storage is unavailable, so plugin logic can be tested natively
//! with `cargo test`.
#![warn(missing_docs)]

// wit-bindgen's generated glue is the only unsafe code in the SDK.
#[doc(hidden)]
#[allow(
    unsafe_code,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications
)]
#[path = "bindings.rs"]
pub mod __bindings;

pub mod congestion;
pub mod connect;
pub mod extension;
mod instance;
pub mod log;
#[doc(hidden)]
pub mod panic;
mod register;
pub mod storage;
pub mod telemetry;
pub mod types;
