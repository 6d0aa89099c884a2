//! Proxy authentication, for a daemon that takes remote clients
//! (`allow-remote = true`): every request, `CONNECT` included, carries
//! `Proxy-Authorization: Basic …` with a user and password from the
//! credentials file, or gets 407 with `Proxy-Authenticate`. The file holds
//! one `user:password` per line (`#` starts a comment) and must not be
//! readable by group or others, as ssh requires of a private key.
//! Checking is sans-IO; only [`Credentials::load`] reads a file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use http::header::{self, HeaderMap, HeaderValue};

/// The challenge a 407 carries.
pub const CHALLENGE: HeaderValue = HeaderValue::from_static("Basic realm=\"sockhost\"");

/// The users allowed, with their passwords.
#[derive(Clone)]
pub struct Credentials {
    /// `user:password`, as a client's Basic credentials decode.
    pairs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords, not even in a debug log.
        write!(f, "Credentials({} users)", self.pairs.len())
    }
}

/// Why a credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// It could not be read.
    #[error("{path}: cannot read the credentials file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error("{path}: the credentials file is readable by group or others (mode {mode:03o}): chmod 600 it")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `user:password`.
    #[error("{path}:{line}: not user:password (both non-empty; the user without ':')")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// No user at all.
    #[error("{path}: the credentials file names no user:password")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Why a request is not authenticated; the reason a 407 gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `Proxy-Authorization`.
    #[error("proxy authentication required (Proxy-Authorization: Basic)")]
    Missing,
    /// Another scheme than Basic, or not base64 `user:password`.
    #[error("Proxy-Authorization is not Basic base64(user:password)")]
    Malformed,
    /// No such user and password.
    #[error("wrong user or password")]
    Wrong,
}

impl Credentials {
    /// Reads `path`, which only its owner may read.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = read_owner_only(path).map_err(|e| match e {
            OwnerOnly::Read(source) => CredentialsError::Read {
                path: path.to_owned(),
                source,
            },
            OwnerOnly::TooOpen(mode) => CredentialsError::TooOpen {
                path: path.to_owned(),
                mode,
            },
        })?;
        Credentials::parse(&text, path)
    }

    /// Parses a credentials file's `text`, as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Credentials, CredentialsError> {
        let mut pairs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    pairs.push(line.as_bytes().to_vec())
                }
                _ => {
                    return Err(CredentialsError::Malformed {
                        path: path.to_owned(),
                        line: i + 1,
                    })
                }
            }
        }
        if pairs.is_empty() {
            return Err(CredentialsError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Credentials { pairs })
    }

    /// Whether a request with `headers` authenticates as one of the
    /// users. Every pair is compared in constant time, all of them every
    /// time, so the time taken says nothing of which bytes matched.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let value = headers
            .get(header::PROXY_AUTHORIZATION)
            .ok_or(Denied::Missing)?;
        let value = value.to_str().map_err(|_| Denied::Malformed)?.trim();
        let (scheme, token) = value.split_once(' ').ok_or(Denied::Malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Denied::Malformed);
        }
        let given = base64_decode(token.trim()).ok_or(Denied::Malformed)?;
        let matched = self
            .pairs
            .iter()
            .fold(false, |found, pair| found | same(pair, &given));
        if matched {
            Ok(())
        } else {
            Err(Denied::Wrong)
        }
    }
}

/// Why a secret file (credentials, a token) was not read.
#[derive(Debug)]
pub(crate) enum OwnerOnly {
    /// It could not be read.
    Read(std::io::Error),
    /// Group or others may read it: these permission bits.
    TooOpen(u32),
}

/// The text of a secret file, which only its owner may read: one that
/// group or others may read is refused before it is read.
pub(crate) fn read_owner_only(path: &Path) -> Result<String, OwnerOnly> {
    let mode = std::fs::metadata(path)
        .map_err(OwnerOnly::Read)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(OwnerOnly::TooOpen(mode));
    }
    std::fs::read_to_string(path).map_err(OwnerOnly::Read)
}

/// `expected == given`, in time that depends only on `expected`'s length.
pub(crate) fn same(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(!e);
    }
    std::hint::black_box(diff) == 0
}

/// Standard base64 (RFC 4648 §4), padding optional.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone sixth of a byte left over is no encoding of anything.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::parse(
            "# users\nalice:s3cret\n\n  bob:pa:ss:word  \n",
            Path::new("users"),
        )
        .unwrap()
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn base64_decodes_with_or_without_padding() {
        assert_eq!(base64_decode("YWxpY2U6czNjcmV0").unwrap(), b"alice:s3cret");
        assert_eq!(
            base64_decode("Ym9iOnBhOnNzOndvcmQ=").unwrap(),
            b"bob:pa:ss:word"
        );
        assert_eq!(
            base64_decode("Ym9iOnBhOnNzOndvcmQ").unwrap(),
            b"bob:pa:ss:word"
        );
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("YW*j").is_none());
    }

    #[test]
    fn only_a_listed_user_and_password_pass() {
        let c = creds();
        assert_eq!(c.check(&with("Basic YWxpY2U6czNjcmV0")), Ok(()));
        // The scheme is case-insensitive; the password may hold colons.
        assert_eq!(c.check(&with("basic Ym9iOnBhOnNzOndvcmQ=")), Ok(()));
        assert_eq!(c.check(&HeaderMap::new()), Err(Denied::Missing));
        // alice:s3cre, alice:s3cretX, bob:s3cret
        for wrong in [
            "YWxpY2U6czNjcmU=",
            "YWxpY2U6czNjcmV0WA==",
            "Ym9iOnMzY3JldA==",
        ] {
            assert_eq!(
                c.check(&with(&format!("Basic {wrong}"))),
                Err(Denied::Wrong)
            );
        }
        for malformed in ["Bearer YWxpY2U6czNjcmV0", "Basic", "Basic !!!"] {
            assert_eq!(
                c.check(&with(malformed)),
                Err(Denied::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(format!("{c:?}"), "Credentials(2 users)");
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"ab", b"abc"));
        assert!(!same(b"", b"a"));
        assert!(same(b"", b""));
    }

    #[test]
    fn a_bad_file_is_a_one_line_error() {
        let e = Credentials::parse("alice:x\nnocolon\n", Path::new("u")).unwrap_err();
        assert_eq!(e.to_string().lines().count(), 1);
        assert!(
            matches!(e, CredentialsError::Malformed { line: 2, .. }),
            "{e}"
        );
        for bad in [":x", "alice:"] {
            assert!(Credentials::parse(bad, Path::new("u")).is_err(), "{bad}");
        }
        let e = Credentials::parse("# nobody\n", Path::new("u")).unwrap_err();
        assert!(matches!(e, CredentialsError::Empty { .. }), "{e}");
    }

    #[test]
    fn a_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "alice:s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = Credentials::load(&path).unwrap_err();
        assert!(
            matches!(e, CredentialsError::TooOpen { mode: 0o640, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Credentials::load(&path).is_ok());
        let e = Credentials::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, CredentialsError::Read { .. }), "{e}");
    }
}
