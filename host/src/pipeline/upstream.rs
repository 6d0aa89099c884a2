//! Phase 2, upstream: a connection to the origin, leased from the pool.
//! Planning and racing a new connection happen inside the network stack.

use crate::host::FetchError;
use crate::net::manager::{Lease, Manager};
use crate::net::pool::OriginKey;

/// A connection to `origin`: an idle one, a stream of a multiplexed one,
/// or a new one.
pub async fn lease(manager: &Manager, origin: &OriginKey) -> Result<Lease, FetchError> {
    manager
        .lease(origin.clone())
        .await
        .map_err(FetchError::Connect)
}
