//! URL patterns of declarative rules (adblock syntax, as documented in the
//! WIT): `*` matches any run of characters, `|` at the start or end anchors
//! to the URL's start or end, `||` at the start anchors to a domain
//! boundary of the host, `^` matches a separator (anything but a letter,
//! digit, `_`, `-`, `.`, `%`) or the end. Matching ignores ASCII case.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    anchor: Anchor,
    end_anchor: bool,
    /// Lowercase, anchors removed.
    body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    None,
    Start,
    Domain,
}

fn is_separator(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'%'))
}

impl UrlPattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> UrlPattern {
        let mut p = pattern.as_bytes();
        let anchor = if let Some(rest) = p.strip_prefix(b"||") {
            p = rest;
            Anchor::Domain
        } else if let Some(rest) = p.strip_prefix(b"|") {
            p = rest;
            Anchor::Start
        } else {
            Anchor::None
        };
        let end_anchor = if let Some(rest) = p.strip_suffix(b"|") {
            p = rest;
            true
        } else {
            false
        };
        UrlPattern {
            anchor,
            end_anchor,
            body: p.to_ascii_lowercase(),
        }
    }

    /// The longest run of plain characters (no `*` or `^`), lowercase: what
    /// a URL must contain for the pattern to match, used to index rules.
    pub fn literal(&self) -> &[u8] {
        self.body
            .split(|b| *b == b'*' || *b == b'^')
            .max_by_key(|s| s.len())
            .unwrap_or(&[])
    }

    /// Whether `url` (lowercase) matches; `host_start..host_end` is the
    /// host's span in it, for `||`.
    pub fn matches(&self, url: &[u8], host_start: usize, host_end: usize) -> bool {
        match self.anchor {
            Anchor::Start => self.match_at(url, 0),
            Anchor::None => (0..=url.len()).any(|i| self.match_at(url, i)),
            Anchor::Domain => {
                // At the host's start or after any dot inside the host.
                (host_start..host_end)
                    .filter(|&i| i == host_start || url[i - 1] == b'.')
                    .any(|i| self.match_at(url, i))
            }
        }
    }

    fn match_at(&self, url: &[u8], start: usize) -> bool {
        glob(&self.body, &url[start..], self.end_anchor)
    }
}

/// Matches `p` against a prefix of `s` (all of `s` if `to_end`).
fn glob(p: &[u8], s: &[u8], to_end: bool) -> bool {
    // Iterative wildcard matching with one backtrack point per `*`, the
    // classic linear-space algorithm: patterns are short and URLs bounded.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi == p.len() {
            if !to_end || si == s.len() {
                return true;
            }
        } else {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'^' => {
                    if si == s.len() {
                        // `^` also matches the end of the URL.
                        pi += 1;
                        continue;
                    }
                    if is_separator(s[si]) {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c => {
                    if si < s.len() && s[si] == c {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                star = Some((sp, ss + 1));
                pi = sp + 1;
                si = ss + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, url: &str) -> bool {
        let url = url.to_ascii_lowercase();
        let host_start = url.find("://").map_or(0, |i| i + 3);
        let host_end = url[host_start..]
            .find(['/', ':', '?', '#'])
            .map_or(url.len(), |i| host_start + i);
        UrlPattern::new(pattern).matches(url.as_bytes(), host_start, host_end)
    }

    #[test]
    fn adblock_syntax() {
        for (pattern, url, want) in [
            ("/banner/", "https://a.test/img/banner/1.gif", true),
            ("/banner/*.gif", "https://a.test/banner/x/y.gif", true),
            ("/banner/*.gif", "https://a.test/banner/x/y.png", false),
            ("||ads.test^", "https://ads.test/x", true),
            ("||ads.test^", "https://sub.ads.test/x", true),
            ("||ads.test^", "https://badads.test/x", false),
            ("||ads.test^", "https://ads.test.evil/x", false),
            ("||ads.test^", "https://ads.test", true),
            ("||ads.test/p/*", "https://ads.test/p/q", true),
            ("|https://a.test/", "https://a.test/x", true),
            ("|https://a.test/", "http://x.test/?https://a.test/", false),
            (".gif|", "https://a.test/x.gif", true),
            (".gif|", "https://a.test/x.gif?v=1", false),
            ("track^", "https://a.test/track?id=1", true),
            ("track^", "https://a.test/tracker", false),
            ("TRACK", "https://a.test/track", true),
            ("a*b*c", "https://x.test/aXXbYYc", true),
            ("a*b*c", "https://x.test/aXXcYYb", false),
        ] {
            assert_eq!(m(pattern, url), want, "{pattern} vs {url}");
        }
    }

    #[test]
    fn literals_index_the_longest_plain_run() {
        assert_eq!(UrlPattern::new("||ads.test^").literal(), b"ads.test");
        assert_eq!(UrlPattern::new("/a/*/banner/").literal(), b"/banner/");
        assert_eq!(UrlPattern::new("*").literal(), b"");
    }
}
