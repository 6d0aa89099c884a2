//! [`Current`]: a value that a reload replaces while work is running. New
//! work takes the value current when it starts and keeps that `Arc` to the
//! end, so a request in flight finishes on what it started with.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// A shared, replaceable value; clones share it.
pub struct Current<T: ?Sized>(Arc<RwLock<Arc<T>>>);

impl<T: ?Sized> Clone for Current<T> {
    fn clone(&self) -> Self {
        Current(self.0.clone())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Current<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl<T> Current<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Current::from_arc(Arc::new(value))
    }

    /// Replaces the value for work that starts from now on.
    pub fn replace(&self, value: T) {
        self.replace_arc(Arc::new(value));
    }
}

impl<T: ?Sized> Current<T> {
    /// Starts with `value`.
    pub fn from_arc(value: Arc<T>) -> Self {
        Current(Arc::new(RwLock::new(value)))
    }

    /// The value now. Readers only clone an `Arc` under the lock, so a
    /// panic cannot leave it half-written: a poisoned lock is still read.
    pub fn get(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value for work that starts from now on; holders of
    /// the old one keep it until they drop it.
    pub fn replace_arc(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_in_flight_keeps_what_it_took_and_new_work_sees_the_new_value() {
        let c = Current::new(1);
        let shared = c.clone();
        let in_flight = c.get();
        shared.replace(2);
        assert_eq!(*in_flight, 1);
        assert_eq!(*c.get(), 2);
        let dyn_current: Current<dyn fmt::Debug + Send + Sync> = Current::from_arc(Arc::new(3u8));
        dyn_current.replace_arc(Arc::new("four"));
        assert_eq!(format!("{dyn_current:?}"), "\"four\"");
    }
}
