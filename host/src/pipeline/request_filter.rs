//! Phase 1, request filter: the extensions' declarative rules, then their
//! hooks, decide about a request before any network work. An extension
//! may redirect it; each redirect goes through the filter again, at most
//! [`MAX_EXTENSION_REDIRECTS`] times.

use super::target::Target;
use crate::extensions::{Extensions, PluginAction, RequestDecision};
use crate::host::{FetchError, FetchRequest};

/// Most extension redirects one fetch follows.
pub const MAX_EXTENSION_REDIRECTS: usize = 5;

/// Filters request `id`: its headers may change in place, its URL on a
/// redirect; returns where it goes. What the extensions did is added to
/// `actions`.
pub async fn run(
    extensions: &Extensions,
    id: u64,
    request: &mut FetchRequest,
    actions: &mut Vec<PluginAction>,
) -> Result<Target, FetchError> {
    // Parsed once, and again only when an extension redirects.
    let mut target = Target::parse(&request.url)?;
    if extensions.is_empty() {
        return Ok(target);
    }
    let first_url = request.url.clone();
    let mut hops = 0;
    loop {
        let decision = extensions
            .before_request(
                id,
                &request.url,
                request.method.as_str(),
                request.resource_type,
                &mut request.headers,
                actions,
            )
            .await;
        let url = match decision {
            RequestDecision::Continue => return Ok(target),
            RequestDecision::Cancel { extension, reason } => {
                return Err(FetchError::Blocked { extension, reason })
            }
            RequestDecision::Redirect { url, .. } => url,
        };
        hops += 1;
        if hops > MAX_EXTENSION_REDIRECTS {
            return Err(FetchError::TooManyRedirects(
                MAX_EXTENSION_REDIRECTS,
                first_url,
            ));
        }
        target = Target::parse(&url)?;
        request.url = url;
    }
}
