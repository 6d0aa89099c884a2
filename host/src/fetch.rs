//! The one `fetch` API: an in-process [`Host`] and an IPC
//! [`Client`](crate::client::Client) of the daemon both implement it, so a
//! program written against [`Fetch`] works with either.

use std::future::Future;

use crate::host::{FetchError, FetchRequest, FetchResponse, Host};

/// Fetches a request; the response body streams.
pub trait Fetch {
    /// Fetches `request`: extensions decide first, then the network work;
    /// the body streams from the returned response.
    fn fetch(
        &self,
        request: FetchRequest,
    ) -> impl Future<Output = Result<FetchResponse, FetchError>> + Send;
}

impl Fetch for Host {
    fn fetch(
        &self,
        request: FetchRequest,
    ) -> impl Future<Output = Result<FetchResponse, FetchError>> + Send {
        Host::fetch(self, request)
    }
}
