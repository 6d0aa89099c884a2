//! Text tables for a terminal, as `sockhost status` prints them: sections
//! with a title, then aligned columns or `key  value` lines. Text from the
//! daemon or a plugin is cleaned of control characters, so that a plugin
//! cannot move the cursor or recolour the terminal.

use std::fmt::Write;

/// A section being written.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// An empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// A section title, after a blank line unless it is the first.
    pub fn section(&mut self, title: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(title);
        self.out.push('\n');
    }

    /// `key  value` lines, the values aligned.
    pub fn pairs(&mut self, pairs: &[(&str, String)]) {
        let width = pairs
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (k, v) in pairs {
            let _ = writeln!(self.out, "  {k:width$}  {v}");
        }
    }

    /// A line, indented.
    pub fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "  {text}");
    }

    /// Columns under upper-case headers, each as wide as its widest cell;
    /// `right` names the columns aligned to the right (numbers).
    pub fn table(&mut self, headers: &[&str], right: &[usize], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
        for row in std::iter::once(&header).chain(rows) {
            let mut line = String::from(" ");
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                let last = i + 1 == widths.len();
                match (right.contains(&i), last) {
                    (true, _) => {
                        let _ = write!(line, " {cell:>w$} ");
                    }
                    (false, true) => {
                        let _ = write!(line, " {cell}");
                    }
                    (false, false) => {
                        let _ = write!(line, " {cell:w$} ");
                    }
                }
            }
            self.out.push_str(line.trim_end());
            self.out.push('\n');
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `s` with control characters escaped (`\u{1b}`), printable otherwise.
pub fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() {
                Box::new(c.escape_default())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let mut t = Text::new();
        t.section("Pool");
        t.table(
            &["origin", "busy", "congestion"],
            &[1],
            &[
                vec!["https://a.test:443".into(), "12".into(), "cubic".into()],
                vec!["http://b.test:80".into(), "3".into(), String::new()],
            ],
        );
        t.section("DNS");
        t.pairs(&[("entries", "12".into()), ("cache hits", "3".into())]);
        assert_eq!(
            t.finish(),
            "Pool\n  ORIGIN              BUSY  CONGESTION\n  https://a.test:443    12  cubic\n  http://b.test:80       3\n\nDNS\n  entries     12\n  cache hits  3\n"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            clean("ok \u{1b}[2J\nnext · µs"),
            "ok \\u{1b}[2J\\nnext · µs"
        );
    }
}
