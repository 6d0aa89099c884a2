//! The one instance of a plugin's state for worlds whose exports are plain
//! functions (connect, telemetry, extension). A component instance is
//! single-threaded, so a thread-local slot is the whole story.

use std::any::Any;
use std::cell::RefCell;

thread_local! {
    static SLOT: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` on the plugin's state, creating it with `new` on first use.
pub(crate) fn with<T: 'static, R>(new: fn() -> T, f: impl FnOnce(&mut T) -> R) -> R {
    crate::panic::install();
    SLOT.with(|slot| {
        let mut slot = slot.borrow_mut();
        let state = slot.get_or_insert_with(|| Box::new(new()));
        let state = state
            .downcast_mut::<T>()
            .expect("one plugin type per component");
        f(state)
    })
}
