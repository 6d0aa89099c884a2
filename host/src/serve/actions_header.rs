//! What plugins did to a request, in a response header for a client that
//! asks. The client sends `Sockhost-Actions: ?1` (a structured-field
//! boolean, RFC 8941); the response then carries `Sockhost-Actions`, a
//! structured-field list with one string item per action, the plugin's
//! name, with parameters `kind` (a token: `rule-block`, `hook-redirect`,
//! …) and `detail` (a string), e.g.
//!
//! ```text
//! Sockhost-Actions: "blocklist";kind=hook-redirect;detail="http://a.test/"
//! ```
//!
//! Strings keep only printable ASCII (anything else becomes `?`), so the
//! header never carries CR, LF or other control bytes; a detail is cut at
//! [`MAX_DETAIL`] characters and the header at about [`MAX_LEN`] bytes,
//! the actions left out then counted in a last item of kind `truncated`.
//! The request header is the proxy's: it is never forwarded. Sans-IO.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::extensions::PluginAction;

/// The request and response header.
pub const HEADER: HeaderName = HeaderName::from_static("sockhost-actions");
/// The most characters of an action's detail the header carries.
pub const MAX_DETAIL: usize = 120;
/// The longest the header grows before actions are left out.
pub const MAX_LEN: usize = 4096;

/// Whether the client asks for the actions; the header is removed either
/// way (it is addressed to the proxy).
pub fn take_request(headers: &mut HeaderMap) -> bool {
    let asked = headers
        .get_all(&HEADER)
        .iter()
        .any(|v| v.as_bytes().trim_ascii() == b"?1");
    headers.remove(&HEADER);
    asked
}

/// `actions` as the response header's value.
pub fn encode(actions: &[PluginAction]) -> HeaderValue {
    let mut out = String::new();
    for (i, action) in actions.iter().enumerate() {
        let item = format!(
            "{};kind={};detail={}",
            sf_string(&action.plugin, MAX_DETAIL),
            action.action.as_str(),
            sf_string(&action.detail, MAX_DETAIL),
        );
        // Room for the separator and the item saying how many were left.
        if out.len() + item.len() + 64 > MAX_LEN {
            let left = actions.len() - i;
            push(
                &mut out,
                &format!("\"sockhost\";kind=truncated;detail=\"{left} more\""),
            );
            break;
        }
        push(&mut out, &item);
    }
    // Only printable ASCII went in.
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn push(out: &mut String, item: &str) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    out.push_str(item);
}

/// `text` as a structured-field string of at most `max` characters.
fn sf_string(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 2);
    out.push('"');
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::ActionKind;

    fn action(plugin: &str, kind: ActionKind, detail: &str) -> PluginAction {
        PluginAction {
            plugin: plugin.into(),
            action: kind,
            detail: detail.into(),
        }
    }

    #[test]
    fn the_client_asks_with_a_boolean_and_the_header_is_never_forwarded() {
        let mut h = HeaderMap::new();
        assert!(!take_request(&mut h));
        h.insert(HEADER, HeaderValue::from_static("?1"));
        assert!(take_request(&mut h));
        assert!(h.is_empty());
        h.insert(HEADER, HeaderValue::from_static("?0"));
        assert!(!take_request(&mut h));
        assert!(h.is_empty());
    }

    #[test]
    fn each_action_is_an_item_with_kind_and_detail() {
        let v = encode(&[
            action("blocklist", ActionKind::HookRedirect, "http://a.test/"),
            action("my \"ext\"", ActionKind::RuleBlock, "back\\slash"),
        ]);
        assert_eq!(
            v,
            "\"blocklist\";kind=hook-redirect;detail=\"http://a.test/\", \
             \"my \\\"ext\\\"\";kind=rule-block;detail=\"back\\\\slash\""
        );
        assert_eq!(encode(&[]), "");
    }

    #[test]
    fn control_bytes_and_length_are_contained() {
        let v = encode(&[action("x", ActionKind::Fault, "line\r\nInjected: 1\u{e9}")]);
        assert_eq!(v, "\"x\";kind=fault;detail=\"line??Injected: 1?\"");
        let long = "d".repeat(500);
        let v = encode(&[action("x", ActionKind::Fault, &long)]);
        assert_eq!(
            v.len(),
            "\"x\";kind=fault;detail=\"\"".len() + MAX_DETAIL + 3
        );
        let many: Vec<_> = (0..200)
            .map(|i| action(&format!("p{i}"), ActionKind::HookHeaders, &long))
            .collect();
        let v = encode(&many);
        assert!(v.len() <= MAX_LEN, "{}", v.len());
        let text = v.to_str().unwrap();
        assert!(text.ends_with(" more\""), "{text}");
        let shown = text.matches("kind=hook-headers").count();
        assert!(
            text.ends_with(&format!("detail=\"{} more\"", 200 - shown)),
            "{text}"
        );
    }
}
