//! The bearer token of the control API's TCP listener. A local TCP port is
//! reachable by every user of the machine and by any web page's requests
//! (mitmweb's CVE-2025-23217), so nothing is served there without it. The
//! Unix socket needs none: its mode (0600) is the check.

use std::path::{Path, PathBuf};

use http::HeaderMap;

use crate::serve::auth::{read_owner_only, OwnerOnly};

/// The fewest characters a token may have: 128 bits of base64 or hex take
/// about this many, and a short one could be guessed.
pub const MIN_TOKEN_LEN: usize = 20;

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It could not be read.
    #[error("{path}: cannot read the control token: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error("{path}: the control token file is readable by group or others (mode {mode:03o}): chmod 600 it")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Too short, or not one line of printable ASCII.
    #[error("{path}: the control token must be one line of at least {MIN_TOKEN_LEN} printable ASCII characters without spaces")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// The cookie that carries the token for a browser, with its `=`.
const COOKIE_PREFIX: &[u8] = b"sockhost-control=";

/// A token requests must present as `Authorization: Bearer TOKEN`.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// Reads the token from `path`, which only its owner may read.
    pub fn load(path: &Path) -> Result<Token, TokenError> {
        let text = read_owner_only(path).map_err(|e| match e {
            OwnerOnly::Read(source) => TokenError::Read {
                path: path.to_owned(),
                source,
            },
            OwnerOnly::TooOpen(mode) => TokenError::TooOpen {
                path: path.to_owned(),
                mode,
            },
        })?;
        Token::parse(&text).ok_or_else(|| TokenError::Malformed {
            path: path.to_owned(),
        })
    }

    /// The token in `text` (one line; a final newline is allowed).
    pub fn parse(text: &str) -> Option<Token> {
        let token = text.strip_suffix('\n').unwrap_or(text);
        let ok = token.len() >= MIN_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Token(token.as_bytes().to_vec()))
    }

    /// The header value a client sends.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", String::from_utf8_lossy(&self.0))
    }

    /// Whether `headers` carry this token, as `Authorization: Bearer` or
    /// as the cookie a browser got from [`Token::admits_query`]; compared
    /// in constant time.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        if let Some(given) = bearer {
            return crate::serve::auth::same(&self.0, given);
        }
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .filter_map(|c| c.trim_ascii().strip_prefix(COOKIE_PREFIX))
            .any(|given| crate::serve::auth::same(&self.0, given))
    }

    /// Whether a query carries this token as `token=…`: how a browser,
    /// which cannot send the header, is let in once (the answer then sets
    /// [`Token::cookie`] and sends it back to the page without the token).
    pub fn admits_query(&self, query: &str) -> bool {
        query
            .split('&')
            .filter_map(|p| p.strip_prefix("token="))
            .any(|given| crate::serve::auth::same(&self.0, given.as_bytes()))
    }

    /// The `Set-Cookie` value that carries the token for a browser: not
    /// readable by scripts, and never sent with a request another site
    /// starts.
    pub fn cookie(&self) -> String {
        format!(
            "{}{}; HttpOnly; SameSite=Strict; Path=/",
            String::from_utf8_lossy(COOKIE_PREFIX),
            String::from_utf8_lossy(&self.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_token_is_admitted() {
        let t = Token::parse("0123456789abcdefghijkl\n").unwrap();
        assert!(t.admits(&with("Bearer 0123456789abcdefghijkl")));
        assert!(!t.admits(&with("Bearer 0123456789abcdefghijk")));
        assert!(!t.admits(&with("bearer 0123456789abcdefghijkl")));
        assert!(!t.admits(&with("Basic 0123456789abcdefghijkl")));
        assert!(!t.admits(&HeaderMap::new()));
        assert_eq!(format!("{t:?}"), "Token(…)");
    }

    #[test]
    fn a_browser_comes_in_once_by_the_query_then_by_its_cookie() {
        let t = Token::parse("0123456789abcdefghijkl").unwrap();
        assert!(t.admits_query("dns=x&token=0123456789abcdefghijkl"));
        assert!(!t.admits_query("token=0123456789abcdefghijk"));
        assert!(!t.admits_query("tokens=0123456789abcdefghijkl"));
        let cookie = t.cookie();
        assert_eq!(
            cookie,
            "sockhost-control=0123456789abcdefghijkl; HttpOnly; SameSite=Strict; Path=/"
        );
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=b; sockhost-control=0123456789abcdefghijkl"
                .parse()
                .unwrap(),
        );
        assert!(t.admits(&h));
        h.insert(
            http::header::COOKIE,
            "sockhost-control=wrong".parse().unwrap(),
        );
        assert!(!t.admits(&h));
        // A wrong bearer is not rescued by a right cookie.
        h.insert(
            http::header::COOKIE,
            "sockhost-control=0123456789abcdefghijkl".parse().unwrap(),
        );
        h.insert(http::header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(!t.admits(&h));
    }

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert!(Token::parse("short").is_none());
        assert!(Token::parse("0123456789 abcdefghijkl").is_none());
        assert!(Token::parse("0123456789abcdefghijkl\nmore").is_none());
    }

    #[test]
    fn a_file_others_may_read_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdefghijkl\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Token::load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::load(&path).is_ok());
        std::fs::write(&path, "x\n").unwrap();
        let e = Token::load(&path).unwrap_err();
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
    }
}
