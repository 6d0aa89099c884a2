//! Which lookups reached a name server. hickory answers from its cache
//! without saying so; its connections are made through a
//! [`ConnectionProvider`], so the resolver's provider here wraps tokio's and
//! counts every message a connection sends, into the lookup whose future
//! sends it ([`count_sent`]). A lookup that sent nothing was answered by
//! the resolver itself: from its cache, or for names hickory answers
//! without asking (`localhost`, the hosts file when the system
//! configuration is used).

use std::cell::Cell;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use hickory_resolver::config::ConnectionConfig;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsExchange, DnsHandle};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::op::DnsRequest;
use hickory_resolver::{ConnectionProvider, PoolContext};

tokio::task_local! {
    /// Messages sent to name servers by the lookup being polled.
    static SENT: Cell<u32>;
}

/// Runs `lookup`, returning its output and how many messages it sent to
/// name servers (0: the resolver answered it itself).
pub async fn count_sent<F: Future>(lookup: F) -> (F::Output, u32) {
    SENT.scope(Cell::new(0), async {
        let out = lookup.await;
        (out, SENT.with(Cell::get))
    })
    .await
}

/// tokio's connections to name servers, each message they send counted.
#[derive(Clone, Default)]
pub struct WireCounting {
    inner: TokioRuntimeProvider,
}

impl std::fmt::Debug for WireCounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // hickory's provider has no Debug of its own.
        f.write_str("WireCounting")
    }
}

type ConnFuture = Pin<Box<dyn Future<Output = Result<Counted, NetError>> + Send + 'static>>;

impl ConnectionProvider for WireCounting {
    type Conn = Counted;
    type FutureConn = ConnFuture;
    type RuntimeProvider = TokioRuntimeProvider;

    fn new_connection(
        &self,
        ip: IpAddr,
        config: &ConnectionConfig,
        cx: &PoolContext,
    ) -> Result<ConnFuture, NetError> {
        let connecting = self.inner.new_connection(ip, config, cx)?;
        Ok(Box::pin(async move { connecting.await.map(Counted) }))
    }

    fn runtime_provider(&self) -> &TokioRuntimeProvider {
        &self.inner
    }
}

/// A connection to a name server whose sends are counted.
#[derive(Clone)]
pub struct Counted(DnsExchange<TokioRuntimeProvider>);

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // hickory's exchange has no Debug of its own.
        f.write_str("Counted")
    }
}

impl DnsHandle for Counted {
    type Response = <DnsExchange<TokioRuntimeProvider> as DnsHandle>::Response;
    type Runtime = TokioRuntimeProvider;

    fn is_verifying_dnssec(&self) -> bool {
        self.0.is_verifying_dnssec()
    }

    fn is_using_edns(&self) -> bool {
        self.0.is_using_edns()
    }

    fn send(&self, request: DnsRequest) -> Self::Response {
        // Outside a counted lookup (a background probe), nobody asks.
        let _ = SENT.try_with(|sent| sent.set(sent.get().saturating_add(1)));
        self.0.send(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_count_into_the_lookup_that_made_them() {
        let bump = || {
            let _ = SENT.try_with(|s| s.set(s.get() + 1));
        };
        let (out, sent) = count_sent(async {
            bump();
            tokio::task::yield_now().await;
            bump();
            7
        })
        .await;
        assert_eq!((out, sent), (7, 2));
        // Two lookups polled together count apart.
        let one = count_sent(async {
            bump();
            tokio::task::yield_now().await;
        });
        let none = count_sent(tokio::task::yield_now());
        let ((_, a), (_, b)) = tokio::join!(one, none);
        assert_eq!((a, b), (1, 0));
    }
}
