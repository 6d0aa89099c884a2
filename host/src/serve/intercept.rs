//! Interception, opt-in (`sockhost serve --intercept`): a `CONNECT` is
//! answered by the daemon itself. It terminates the client's TLS with a
//! certificate for the requested host, signed by the local CA
//! ([`super::ca`]), which the user installed in the client's trust store;
//! each request inside then goes through the full pipeline as an
//! `https://` request, so extensions see full URLs and the upstream may be
//! HTTP/3. An upstream certificate error is never hidden: the client gets
//! 502 with the reason, never a re-signed bad certificate.

use std::sync::Arc;

use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use super::ca::LeafCache;
use super::hop;
use super::proxy::{Proxy, ProxyBody};
use super::refusal::Refusal;
use super::target::authority;

/// Certificates for intercepted hosts.
#[derive(Debug, Clone)]
pub struct Interceptor {
    leaves: Arc<LeafCache>,
}

impl Interceptor {
    /// Intercepts with certificates from `leaves`.
    pub fn new(leaves: LeafCache) -> Self {
        Interceptor {
            leaves: Arc::new(leaves),
        }
    }

    /// Answers a `CONNECT` to `host:port` with 200, then speaks TLS as
    /// `host` to the client on the upgraded connection and serves what it
    /// asks through `proxy`.
    pub fn intercept(
        &self,
        proxy: Proxy,
        host: &str,
        port: u16,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Refusal> {
        let config = self.leaves.server_config(host).map_err(|e| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot intercept {host}: {e}"),
            )
        })?;
        let authority = authority(host, port);
        let upgrade = hyper::upgrade::on(request);
        let (open, tunnels) = (proxy.tunnels().open(), proxy.tunnels().clone());
        tokio::spawn(async move {
            let _open = open;
            let upgraded = match upgrade.await {
                Ok(u) => u,
                Err(e) => return tracing::debug!("CONNECT {authority}: the client left: {e}"),
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let tls = match acceptor.accept(TokioIo::new(upgraded)).await {
                Ok(tls) => tls,
                // Most often: the client does not trust the local CA.
                Err(e) => return tracing::info!("intercepting {authority}: client TLS: {e}"),
            };
            let service = service_fn(move |inner| {
                let (proxy, authority) = (proxy.clone(), authority.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(proxy.handle_inside(&authority, inner).await)
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = tunnels.stopping() => {
                    // The request in flight finishes; keep-alive ends.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!("intercepted connection ended: {e}");
            }
        });
        let mut out = Response::new(Either::Right(Full::default()));
        hop::add_via(out.headers_mut(), Version::HTTP_11);
        Ok(out)
    }
}
