//! The two text formats `/metrics` speaks, and the pieces of them that
//! `prometheus-client` leaves to its caller.
//!
//! `prometheus-client` encodes OpenMetrics 1.0 only: a counter's family is
//! named without `_total` (`# TYPE x counter`, samples `x_total`), units get
//! a `# UNIT` line and the exposition ends with `# EOF`. Prometheus asks
//! for OpenMetrics first, but `curl`, older scrapers and `promtool check
//! metrics` read the Prometheus text format 0.0.4, in which a counter's
//! `HELP` and `TYPE` lines name the sample itself (`x_total`): read as
//! 0.0.4, an OpenMetrics counter's samples have no help and no type.
//! [`to_text`] rewrites an OpenMetrics exposition into 0.0.4, so both
//! formats come from the one registry encoding.
//!
//! The crate also writes label values and help texts as given; they go
//! through [`LabelValue`] and [`help`], which escape them.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write;

/// A text format of the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, ending with `# EOF`.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

/// OpenMetrics' media type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format's media type.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Format {
    /// The format a scraper's `Accept` header asks for: OpenMetrics when it
    /// names `application/openmetrics-text` (Prometheus does, with a higher
    /// weight than text), the 0.0.4 text otherwise (`curl`, no header).
    pub fn from_accept(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut params = range.split(';').map(str::trim);
                let media = params.next().unwrap_or_default();
                let refused = params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// `openmetrics` (as `prometheus-client` writes it) in the 0.0.4 text
/// format: a counter's `HELP` and `TYPE` name its `_total` sample, `# UNIT`
/// and `# EOF` go, and `\"` in help becomes `"` (0.0.4 escapes only `\\`
/// and `\n` there). Samples are the same in both formats.
pub fn to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    // A family's HELP comes before its TYPE, which says whether it names a
    // counter: held until then.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take(), "");
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let suffix = if kind == "counter" { "_total" } else { "" };
            match help.take() {
                Some((h, text)) if h == name => flush_help(&mut out, Some((h, text)), suffix),
                other => flush_help(&mut out, other, ""),
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {}", text_type(kind));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
        } else {
            flush_help(&mut out, help.take(), "");
            out.push_str(line);
            out.push('\n');
        }
    }
    flush_help(&mut out, help, "");
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>, suffix: &str) {
    if let Some((name, text)) = help {
        let _ = write!(out, "# HELP {name}{suffix} ");
        // 0.0.4 has no `\"` in help: unescaped, the other escapes kept.
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('"') => out.push('"'),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
        }
        out.push('\n');
    }
}

/// OpenMetrics' types that 0.0.4 names otherwise.
fn text_type(kind: &str) -> &str {
    match kind {
        "unknown" => "untyped",
        other => other,
    }
}

/// A help text as both formats take it: one line, `\` and `"` escaped.
pub fn help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A label value, escaped as both formats want it (`\\`, `\"`, `\n`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelValue(pub String);

impl From<&str> for LabelValue {
    fn from(s: &str) -> Self {
        LabelValue(s.to_owned())
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `name` as a metric or label name: `[a-zA-Z_][a-zA-Z0-9_]*`, anything
/// else replaced by `_`.
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_and_curl_gets_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(Format::from_accept(None), Format::Text);
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text; q=0")),
            Format::Text
        );
        assert_eq!(Format::Text.content_type(), TEXT_CONTENT_TYPE);
    }

    #[test]
    fn counters_are_named_by_their_sample_in_text() {
        let om = "# HELP a_bytes Bytes \\\"in\\\".\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\na_bytes_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n# TYPE u unknown\nu 1\n# EOF\n";
        assert_eq!(
            to_text(om),
            "# HELP a_bytes_total Bytes \"in\".\n# TYPE a_bytes_total counter\na_bytes_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n# TYPE u untyped\nu 1\n"
        );
    }

    #[test]
    fn an_escaped_backslash_before_a_quote_stays_escaped_in_text() {
        let om = format!("# HELP h {}\n# TYPE h gauge\nh 1\n", help("a\\\"b"));
        assert_eq!(to_text(&om), "# HELP h a\\\\\"b\n# TYPE h gauge\nh 1\n");
    }

    #[test]
    fn help_and_names_are_made_safe() {
        assert_eq!(help("a \"b\"\\\nc"), "a \\\"b\\\"\\\\\\nc");
        assert_eq!(sanitize_name("request-stats.v2"), "request_stats_v2");
        assert_eq!(sanitize_name("9lives"), "_9lives");
        assert_eq!(sanitize_name(""), "_");
    }
}
