//! The instances of one plugin, taken one per call: at most `limit` exist,
//! made on demand; when all are busy a call waits for one, asynchronously
//! (the runtime's thread is free meanwhile) and for a bounded time.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// No instance became free in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no instance became free within {0:?}")]
pub struct Busy(pub Duration);

/// Up to `limit` instances of one plugin.
#[derive(Debug)]
pub(crate) struct InstancePool<T> {
    inner: Arc<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    // Invariant: idle.len() + instances leased == made <= limit, and one
    // permit is out per leased instance, so whoever holds a permit finds an
    // idle instance or may make one.
    slots: Mutex<Slots<T>>,
    permits: Arc<Semaphore>,
}

#[derive(Debug)]
struct Slots<T> {
    idle: Vec<T>,
    made: usize,
}

/// An instance taken from the pool; it goes back when dropped.
#[derive(Debug)]
pub(crate) struct Lease<T> {
    item: Option<T>,
    inner: Arc<Inner<T>>,
    // Dropped after `drop` has put the instance back.
    _permit: OwnedSemaphorePermit,
}

impl<T> InstancePool<T> {
    /// A pool of at most `limit` (at least 1) instances, `first` among them.
    pub(crate) fn new(first: T, limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            inner: Arc::new(Inner {
                slots: Mutex::new(Slots {
                    idle: vec![first],
                    made: 1,
                }),
                permits: Arc::new(Semaphore::new(limit)),
            }),
        }
    }

    /// Instances made so far.
    #[cfg(test)]
    pub(crate) fn made(&self) -> usize {
        self.inner.slots().made
    }

    /// Takes an idle instance, the one used last (its caches are warm), or
    /// makes one with `make` while fewer than `limit` exist; otherwise
    /// waits up to `wait` for one to come back (waiters are served in
    /// order).
    pub(crate) async fn take(
        &self,
        wait: Duration,
        make: impl FnOnce() -> T,
    ) -> Result<Lease<T>, Busy> {
        // A free instance is the common case: taken without a timer, whose
        // arming can wake a parked worker thread on every call.
        let permit = match self.inner.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let waiting = self.inner.permits.clone().acquire_owned();
                match tokio::time::timeout(wait, waiting).await {
                    Ok(Ok(p)) => p,
                    // The semaphore is never closed; a timeout is the only way here.
                    Ok(Err(_)) | Err(_) => return Err(Busy(wait)),
                }
            }
        };
        let mut slots = self.inner.slots();
        let item = match slots.idle.pop() {
            Some(item) => item,
            None => {
                slots.made += 1;
                make()
            }
        };
        drop(slots);
        Ok(Lease {
            item: Some(item),
            inner: self.inner.clone(),
            _permit: permit,
        })
    }
}

impl<T> Inner<T> {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots<T>> {
        // Pushes and pops only: a panic elsewhere cannot leave it torn.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Deref for Lease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.item
            .as_ref()
            .expect("a lease holds its instance until dropped")
    }
}

impl<T> DerefMut for Lease<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item
            .as_mut()
            .expect("a lease holds its instance until dropped")
    }
}

impl<T> Drop for Lease<T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.inner.slots().idle.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    const WAIT: Duration = Duration::from_millis(20);

    #[test]
    fn makes_instances_on_demand_up_to_the_limit_then_waits_bounded() {
        rt().block_on(async {
            let pool = InstancePool::new(0, 2);
            let a = pool.take(WAIT, || 1).await.unwrap();
            assert_eq!(*a, 0, "the first instance is taken before any is made");
            let b = pool.take(WAIT, || 1).await.unwrap();
            assert_eq!(*b, 1);
            assert_eq!(pool.made(), 2);
            assert_eq!(pool.take(WAIT, || 2).await.unwrap_err(), Busy(WAIT));
            assert_eq!(pool.made(), 2, "nothing is made past the limit");
            drop(a);
            let c = pool.take(WAIT, || 2).await.unwrap();
            assert_eq!(*c, 0, "a returned instance is reused");
            assert_eq!(pool.made(), 2);
        });
    }

    #[test]
    fn the_instance_used_last_is_taken_first() {
        rt().block_on(async {
            let pool = InstancePool::new(0, 3);
            let a = pool.take(WAIT, || 1).await.unwrap();
            let b = pool.take(WAIT, || 1).await.unwrap();
            drop(a);
            drop(b);
            assert_eq!(*pool.take(WAIT, || 9).await.unwrap(), 1);
            assert_eq!(pool.made(), 2, "no instance is made while one is idle");
        });
    }

    #[test]
    fn a_waiter_gets_the_instance_as_soon_as_it_comes_back() {
        rt().block_on(async {
            let pool = Arc::new(InstancePool::new(0, 1));
            let mut held = pool.take(WAIT, || 1).await.unwrap();
            *held = 7;
            let waiter = {
                let pool = pool.clone();
                tokio::spawn(async move { *pool.take(Duration::from_secs(5), || 1).await.unwrap() })
            };
            tokio::task::yield_now().await;
            drop(held);
            assert_eq!(waiter.await.unwrap(), 7);
            assert_eq!(pool.made(), 1);
        });
    }
}
