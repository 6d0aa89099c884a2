//! A `CONNECT` tunnel through the pipeline's phases that apply to it:
//! the request filter decides at host level (a request with method
//! `CONNECT` and URL `https://host:port/`; a redirect is refused), the
//! connection is planned and raced like any other (TCP only), and finish
//! publishes the request's end with the bytes carried each way.

use std::sync::atomic::Ordering;
use std::time::Instant;

use http::Method;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::finish::RequestEnd;
use super::tunnel_end::{self, Watched};
use super::{request_filter, Pipeline};
use crate::extensions::PluginAction;
use crate::host::{FetchError, FetchRequest, LeaseError, RequestBody};
use crate::net::connection::ConnectionInfo;
use crate::plugins::extension::ResourceType;

/// The buffer each direction of a tunnel copies through.
pub const TUNNEL_BUFFER: usize = 64 << 10;

/// An open tunnel's upstream side.
#[derive(Debug)]
pub struct Tunnel {
    /// The connection to the origin.
    pub stream: TcpStream,
    /// How it was made.
    pub connection: ConnectionInfo,
    /// What extensions did.
    pub actions: Vec<PluginAction>,
    end: Option<RequestEnd>,
}

impl Pipeline {
    /// Phases 1 and 2 of a tunnel to `authority` (`host:port`): `headers`
    /// are the client's, for the extensions to see.
    pub async fn tunnel(
        &self,
        authority: &str,
        headers: Vec<(String, String)>,
    ) -> Result<Tunnel, FetchError> {
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let url = format!("https://{authority}/");
        let mut request = FetchRequest {
            method: Method::CONNECT,
            url: url.clone(),
            headers,
            body: RequestBody::empty(),
            resource_type: ResourceType::Other,
        };
        let mut actions = Vec::new();
        let extensions = self.extensions.get();
        let target = request_filter::run(&extensions, id, &mut request, &mut actions).await?;
        if request.url != url {
            return Err(FetchError::TunnelRedirected { to: request.url });
        }
        let end = RequestEnd::start(
            &self.bus,
            id,
            &target.origin,
            &Method::CONNECT,
            None,
            started,
        );
        match self.dialer.tunnel(&target.origin).await {
            Ok((stream, connection)) => Ok(Tunnel {
                stream,
                connection,
                actions,
                end,
            }),
            Err(e) => {
                let e = FetchError::Connect(LeaseError::Dial(std::sync::Arc::new(e)));
                super::finish::failed(end, &e);
                Err(e)
            }
        }
    }
}

impl Tunnel {
    /// Carries bytes both ways between `client` and the origin until either
    /// side closes, then publishes the request's end (phase 5); returns
    /// the bytes (to the origin, to the client).
    pub async fn carry<C>(mut self, client: &mut C) -> std::io::Result<(u64, u64)>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let mut client = Watched::new(client);
        let mut origin = Watched::new(&mut self.stream);
        let carried = tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut origin,
            TUNNEL_BUFFER,
            TUNNEL_BUFFER,
        )
        .await;
        if let Some(mut end) = self.end.take() {
            // What was read each way, known even when the copy failed.
            end.sent(client.read as usize);
            end.received(origin.read as usize);
            end.publish(tunnel_end::failure(
                &carried,
                client.failed,
                client.ended || origin.ended,
            ));
        }
        carried
    }
}
