//! The tunnels the daemon carries, blind or intercepted. Once a `CONNECT`
//! is answered its bytes leave hyper's hands, so hyper's graceful shutdown
//! no longer sees them: a shutdown waits for them here, as it waits for
//! requests in flight, and tells intercepted connections to finish their
//! request and close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// Open tunnels, shared by every clone of the proxy.
#[derive(Debug, Clone)]
pub struct Tunnels {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    open: AtomicUsize,
    /// Notified when the last open tunnel closes.
    drained: Notify,
    /// `true` once the daemon is shutting down.
    stopping: watch::Sender<bool>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels {
            inner: Arc::new(Inner {
                open: AtomicUsize::new(0),
                drained: Notify::new(),
                stopping: watch::Sender::new(false),
            }),
        }
    }
}

/// One open tunnel; it closes when dropped.
#[derive(Debug)]
pub struct OpenTunnel {
    tunnels: Tunnels,
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        if self.tunnels.inner.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tunnels.inner.drained.notify_waiters();
        }
    }
}

impl Tunnels {
    /// Counts a tunnel as open until the returned guard is dropped.
    pub fn open(&self) -> OpenTunnel {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        OpenTunnel {
            tunnels: self.clone(),
        }
    }

    /// How many are open.
    pub fn count(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Tells every tunnel that the daemon is shutting down.
    pub fn stop(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Resolves once [`Tunnels::stop`] was called.
    pub async fn stopping(&self) {
        let mut rx = self.inner.stopping.subscribe();
        // The sender lives as long as `self`: wait_for cannot fail.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Resolves when no tunnel is open.
    pub async fn drained(&self) {
        loop {
            // Made before the count is read: a close in between still
            // wakes it (notify_waiters reaches every Notified made).
            let closed = self.inner.drained.notified();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn draining_waits_for_the_last_tunnel() {
        let tunnels = Tunnels::default();
        tunnels.drained().await;
        let (a, b) = (tunnels.open(), tunnels.open());
        assert_eq!(tunnels.count(), 2);
        let waiting = tokio::spawn({
            let tunnels = tunnels.clone();
            async move { tunnels.drained().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one tunnel is still open");
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("drained once the last closed")
            .unwrap();
    }

    #[tokio::test]
    async fn stop_reaches_those_waiting_and_those_that_come_later() {
        let tunnels = Tunnels::default();
        let early = tokio::spawn({
            let tunnels = tunnels.clone();
            async move { tunnels.stopping().await }
        });
        tunnels.stop();
        tokio::time::timeout(Duration::from_secs(5), early)
            .await
            .expect("told")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), tunnels.stopping())
            .await
            .expect("a late one is told at once");
    }
}
