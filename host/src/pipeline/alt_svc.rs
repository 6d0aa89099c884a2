//! Learning Alt-Svc alternatives from responses: the in-memory cache the
//! dialer reads is updated at once; the file, when there is one, is
//! written by a background writer.

use std::sync::{Arc, Mutex};

use http::HeaderValue;

use super::alt_svc_file::AltSvcFile;
use crate::host::DEFAULT_NETWORK;
use crate::net::alt_svc::AltSvcCache;
use crate::net::pool::OriginKey;

/// The Alt-Svc cache shared with the dialer, and where it is saved.
#[derive(Debug, Clone)]
pub struct AltSvcLearner {
    cache: Arc<Mutex<AltSvcCache>>,
    file: Option<Arc<AltSvcFile>>,
}

impl AltSvcLearner {
    /// Learns into `cache`; saves it through `file` when given.
    pub fn new(cache: Arc<Mutex<AltSvcCache>>, file: Option<AltSvcFile>) -> AltSvcLearner {
        AltSvcLearner {
            cache,
            file: file.map(Arc::new),
        }
    }

    /// Remembers what an origin's Alt-Svc header says (only over https, as
    /// RFC 7838 §2.1 requires of what is used), asking for a save when the
    /// alternatives changed. A header that does not parse is ignored.
    pub fn learn(&self, origin: &OriginKey, value: &HeaderValue) {
        if origin.scheme != "https" {
            return;
        }
        let said = match value
            .to_str()
            .map_err(|e| e.to_string())
            .and_then(|v| crate::net::alt_svc::parse(v).map_err(|e| e.to_string()))
        {
            Ok(said) => said,
            Err(e) => {
                tracing::debug!("{origin}: Alt-Svc ignored: {e}");
                return;
            }
        };
        let now = std::time::SystemTime::now();
        let changed = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .update(DEFAULT_NETWORK, origin, said, now);
        if let (true, Some(file)) = (changed, &self.file) {
            file.changed();
        }
    }

    /// Waits until every change learned so far is in the file.
    pub async fn flush(&self) {
        if let Some(file) = &self.file {
            file.flush().await;
        }
    }
}
