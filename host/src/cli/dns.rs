//! `sockhost dns HOST`: what the running daemon's resolver answers (A,
//! AAAA and HTTPS records), from its cache or fresh, and how long it took.

use sockhost::control::status::DnsAnswer;
use sockhost::units::human_micros;

use super::control::{block_on, ControlArgs};
use super::table::{clean, Text};

/// Looks `host` up through the daemon and prints the answer (as JSON with
/// `json`).
pub fn run(args: &ControlArgs, host: &str, json: bool) -> anyhow::Result<()> {
    let client = args.client()?;
    let answer = block_on(async { Ok(client.dns(host).await?) })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", render(&answer));
    }
    Ok(())
}

/// The answer: a title line with its source and timing, then one row per
/// record, then the errors per record type.
pub fn render(a: &DnsAnswer) -> String {
    let mut t = Text::new();
    t.section(&format!(
        "{} ({}, {})",
        clean(&a.host),
        if a.cached { "from the cache" } else { "fresh" },
        human_micros(a.elapsed_us)
    ));
    let rows: Vec<Vec<String>> = [("A", &a.a), ("AAAA", &a.aaaa), ("HTTPS", &a.https)]
        .into_iter()
        .flat_map(|(kind, values)| values.iter().map(move |v| vec![kind.to_owned(), clean(v)]))
        .collect();
    match rows.is_empty() {
        true => t.line("no records"),
        false => t.table(&["type", "answer"], &[], &rows),
    }
    for e in &a.errors {
        t.line(&format!("error: {}", clean(e)));
    }
    for o in &a.overrides {
        t.line(&format!(
            "answered by the override {} (--resolve), not by DNS",
            clean(o)
        ));
    }
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_type_with_source_and_timing() {
        let a = DnsAnswer {
            host: "www.site.test".into(),
            a: vec!["127.0.0.1".into(), "127.0.0.2".into()],
            aaaa: vec![],
            https: vec!["1 . alpn=\"h3,h2\"".into()],
            cached: true,
            elapsed_us: 41,
            errors: vec!["AAAA: no records".into()],
            overrides: vec![],
        };
        assert_eq!(
            render(&a),
            "www.site.test (from the cache, 41.0 µs)\n  TYPE   ANSWER\n  A      127.0.0.1\n  A      127.0.0.2\n  HTTPS  1 . alpn=\"h3,h2\"\n  error: AAAA: no records\n"
        );
        let none = DnsAnswer {
            host: "nx.test".into(),
            elapsed_us: 12_345,
            ..DnsAnswer::default()
        };
        assert_eq!(render(&none), "nx.test (fresh, 12.3 ms)\n  no records\n");
    }
}
