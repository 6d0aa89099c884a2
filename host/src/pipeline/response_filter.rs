//! Phase 4, response filter: the extensions see the response head (rules,
//! then hooks) and may change its headers or block it.

use crate::extensions::{Extensions, PluginAction, RequestRef};
use crate::host::{FetchError, FetchRequest, FetchResponse};

/// Filters the response to request `id`; what the extensions did is added
/// to `actions`.
pub async fn run(
    extensions: &Extensions,
    id: u64,
    request: &FetchRequest,
    response: &mut FetchResponse,
    actions: &mut Vec<PluginAction>,
) -> Result<(), FetchError> {
    if extensions.is_empty() {
        return Ok(());
    }
    let req = RequestRef {
        id,
        url: &request.url,
        method: request.method.as_str(),
        resource_type: request.resource_type,
    };
    extensions
        .after_response(
            req,
            response.status.as_u16(),
            &mut response.headers,
            actions,
        )
        .await
        .map_err(|(extension, reason)| FetchError::Blocked { extension, reason })
}
