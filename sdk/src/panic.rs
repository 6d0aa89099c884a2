//! Panics become one error-level log line before the instance traps.
//!
//! The host reads the `panicked at` prefix to record the fault as a panic
//! (rather than a bare trap) with the plugin's own message.

use std::sync::Once;

static HOOK: Once = Once::new();

/// Installs the hook once per instance; every exported entry point calls it.
pub fn install() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "Box<dyn Any>".to_owned()
            };
            let line = match info.location() {
                Some(l) => format!("panicked at {}:{}: {message}", l.file(), l.line()),
                None => format!("panicked: {message}"),
            };
            crate::log::error(&line);
        }));
    });
}
