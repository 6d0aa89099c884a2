//! Logging to the host (always available, rate-limited by the host).
//!
//! Outside wasm32 (native unit tests of a plugin) lines go to stderr.

use crate::__bindings::base::sockhost::plugin::log as host;

pub use host::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Logs at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}
/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}
/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}
