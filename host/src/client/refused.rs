//! The daemon's own answers (marked with
//! [`REFUSAL_HEADER`](crate::serve::refusal::REFUSAL_HEADER)) as the
//! [`FetchError`] an in-process fetch would have given, where the status
//! and reason say which; otherwise a [`DaemonError::Refused`] naming the
//! daemon's reason. Sans-IO.

use http::StatusCode;

use super::error::DaemonError;
use crate::host::FetchError;

/// How an extension's cancel reads in the daemon's reason: the text of
/// [`FetchError::Blocked`].
const BLOCKED_PREFIX: &str = "blocked by extension ";

/// The reason in a refusal's body: JSON (`{"error": …}`) when the request
/// accepted it, else one line of text.
pub fn reason(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return e.to_owned();
        }
    }
    String::from_utf8_lossy(body).trim().to_owned()
}

/// The error a refusal with `status` and `reason` stands for.
pub fn to_error(status: StatusCode, reason: String) -> FetchError {
    if status == StatusCode::FORBIDDEN {
        if let Some((extension, why)) = reason
            .strip_prefix(BLOCKED_PREFIX)
            .and_then(|rest| rest.split_once(": "))
        {
            return FetchError::Blocked {
                extension: extension.to_owned(),
                reason: why.to_owned(),
            };
        }
    }
    FetchError::Daemon(DaemonError::Refused { status, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::refusal::Refusal;

    /// What the daemon would send for `error`, as text or JSON.
    fn round_trip(error: &FetchError, json: bool) -> FetchError {
        let refusal = Refusal::from_fetch(error);
        let (_, body) = refusal.body(json);
        to_error(refusal.status, reason(&body))
    }

    #[test]
    fn an_extension_cancel_comes_back_as_blocked() {
        let blocked = FetchError::Blocked {
            extension: "blocklist".into(),
            reason: "ads.test: matches ||ads.test^".into(),
        };
        for json in [false, true] {
            match round_trip(&blocked, json) {
                FetchError::Blocked { extension, reason } => {
                    assert_eq!(extension, "blocklist");
                    assert_eq!(reason, "ads.test: matches ||ads.test^");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn other_refusals_name_the_status_and_the_reason() {
        let late = FetchError::Timeout {
            origin: "https://www.test:443".into(),
            timeout: std::time::Duration::from_secs(30),
        };
        let e = round_trip(&late, false);
        assert!(e.is_timeout(), "{e}");
        let text = e.to_string();
        assert!(text.contains("504") && text.contains("www.test"), "{text}");
        let e = to_error(StatusCode::BAD_GATEWAY, "could not resolve x.test".into());
        assert!(
            matches!(&e, FetchError::Daemon(DaemonError::Refused { status, .. }) if *status == StatusCode::BAD_GATEWAY),
            "{e}"
        );
        assert!(!e.is_timeout());
        // A 403 that is not an extension's cancel stays the daemon's.
        let e = to_error(
            StatusCode::FORBIDDEN,
            "CONNECT to port 25 is not allowed".into(),
        );
        assert!(matches!(e, FetchError::Daemon(_)), "{e}");
    }
}
