//! Header names and which of them are sensitive.

/// Headers no plugin sees unless its manifest names them in
/// `capabilities.headers`: they carry credentials.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "set-cookie",
];

/// Whether `name` is a lowercase HTTP field-name token.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        for (name, ok) in [
            ("user-agent", true),
            ("x-custom_1", true),
            ("User-Agent", false),
            ("", false),
            ("has space", false),
            ("colon:", false),
        ] {
            assert_eq!(is_header_name(name), ok, "{name:?}");
        }
    }
}
