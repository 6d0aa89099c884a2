//! `sockhost status`: the running daemon's status document, as tables a
//! person reads (like `squidclient mgr:info`) or as the JSON it came as.

use sockhost::control::page::pool_rows;
use sockhost::control::status::{CrashesStatus, PluginState, PluginStatus, Status};
use sockhost::units::{human_count, human_micros, human_size, human_uptime, relative, utc};

use super::control::{block_on, ControlArgs};
use super::table::{clean, Text};

/// Prints the status: tables, or with `json` the document as received.
pub fn run(args: &ControlArgs, json: bool) -> anyhow::Result<()> {
    let client = args.client()?;
    if json {
        let text = block_on(async { Ok(client.status_text().await?) })?;
        println!("{}", text.trim_end());
        return Ok(());
    }
    let status = block_on(async { Ok(client.status().await?) })?;
    print!("{}", render(&status));
    Ok(())
}

/// The status as text: sections Process, Listeners, Clients, Pool, DNS,
/// Alt-Svc, Telemetry, Memory, Plugins, Crashes.
pub fn render(s: &Status) -> String {
    let now = s.filled_unix_ms();
    let when = |ms: u64| format!("{} ({})", utc(ms), relative(ms, now));
    let mut t = Text::new();
    let p = &s.process;
    t.section("Process");
    let reload = match &p.last_reload {
        None => "none since start".to_owned(),
        Some(r) => format!(
            "{} at {}, generation {}: {}",
            if r.ok { "ok" } else { "FAILED" },
            when(r.at_unix_ms),
            r.generation,
            clean(&r.message)
        ),
    };
    t.pairs(&[
        ("version", clean(&p.version)),
        ("pid", p.pid.to_string()),
        ("started", when(p.started_unix_ms)),
        ("uptime", human_uptime(p.uptime_secs)),
        (
            "config",
            p.config
                .as_deref()
                .map_or("the embedded defaults".into(), clean),
        ),
        ("generation", p.generation.to_string()),
        ("last reload", reload),
    ]);

    t.section("Listeners");
    if s.listeners.is_empty() {
        t.line("none");
    }
    for l in &s.listeners {
        t.line(&clean(l));
    }

    let c = &s.clients;
    t.section("Clients");
    t.pairs(&[
        ("connections open", human_count(c.connections)),
        ("requests in flight", human_count(c.requests_in_flight)),
        ("requests since start", human_count(c.requests_total)),
        ("CONNECT tunnels open", human_count(c.tunnels)),
    ]);

    t.section(&format!(
        "Pool ({} origins, {} requests waiting)",
        s.pool.len(),
        human_count(s.pool_waiting)
    ));
    let rows: Vec<Vec<String>> = pool_rows(&s.pool)
        .into_iter()
        .map(|r| {
            vec![
                if r.queued.is_some() {
                    clean(r.origin)
                } else {
                    String::new()
                },
                clean(r.protocol),
                r.busy.to_string(),
                r.idle.to_string(),
                r.requests.to_string(),
                r.queued.map_or(String::new(), human_count),
                clean(&r.congestion),
            ]
        })
        .collect();
    match rows.is_empty() {
        true => t.line("no pooled connections"),
        false => t.table(
            &[
                "origin",
                "protocol",
                "busy",
                "idle",
                "requests",
                "queued",
                "congestion",
            ],
            &[2, 3, 4, 5],
            &rows,
        ),
    }

    let d = &s.dns;
    t.section("DNS");
    let share = match d.lookups {
        0 => String::new(),
        n => format!(" ({:.0}%)", d.cache_hits as f64 * 100.0 / n as f64),
    };
    t.pairs(&[
        ("cache entries", human_count(d.cache_entries)),
        ("lookups since start", human_count(d.lookups)),
        (
            "answered from the cache",
            format!("{}{share}", human_count(d.cache_hits)),
        ),
    ]);

    t.section("Alt-Svc");
    let mut rows = Vec::new();
    for n in &s.alt_svc {
        if n.entries.is_empty() {
            rows.push(vec![clean(&n.network), "(none)".into(), String::new()]);
        }
        for (i, e) in n.entries.iter().enumerate() {
            rows.push(vec![
                if i == 0 {
                    clean(&n.network)
                } else {
                    String::new()
                },
                format!(
                    "{} -> {}",
                    clean(&e.origin),
                    clean(&e.alternatives.join(", "))
                ),
                when(e.expires_unix_ms),
            ]);
        }
    }
    match rows.is_empty() {
        true => t.line("no network has alternatives"),
        false => t.table(&["network", "alternatives", "expires"], &[], &rows),
    }

    let tm = &s.telemetry;
    t.section("Telemetry");
    t.pairs(&[
        ("probes", tm.probes.to_string()),
        ("events published", human_count(tm.published)),
        ("events dropped", human_count(tm.dropped)),
    ]);

    let m = &s.memory;
    t.section("Memory");
    t.pairs(&[
        (
            "resident",
            format!(
                "{} (peak {})",
                human_size(m.rss_bytes),
                human_size(m.peak_rss_bytes)
            ),
        ),
        ("WebAssembly", human_size(m.wasm_bytes)),
    ]);
    let rows: Vec<Vec<String>> = s
        .plugins
        .iter()
        .map(|p| {
            let each: Vec<String> = p.memory_bytes.iter().map(|&b| human_size(b)).collect();
            vec![
                clean(&p.name),
                if each.is_empty() {
                    "-".into()
                } else {
                    each.join(", ")
                },
                human_size(p.memory_limit_bytes),
                human_size(p.memory_peak_bytes),
            ]
        })
        .collect();
    if !rows.is_empty() {
        t.table(&["plugin", "per instance", "limit", "peak"], &[2, 3], &rows);
    }

    t.section("Plugins");
    plugins_table(&mut t, &s.plugins, now);

    t.section("Crashes");
    crashes(&mut t, &p.crashes, now);
    t.finish()
}

/// The plugins, one row each, then each one's latest fault.
pub fn plugins_table(t: &mut Text, plugins: &[PluginStatus], now: u64) {
    if plugins.is_empty() {
        t.line("no plugins are plugged in");
        return;
    }
    let rows: Vec<Vec<String>> = plugins
        .iter()
        .map(|p| {
            let faults: Vec<String> = p
                .faults
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{} {n}", clean(k)))
                .collect();
            let ct = &p.call_time;
            let (total, p99, max) = match p.calls {
                0 => ("-".into(), "-".into(), "-".into()),
                _ => (
                    human_micros(ct.total_us),
                    human_micros(ct.p99_us),
                    human_micros(ct.max_us),
                ),
            };
            vec![
                clean(&p.name),
                clean(&p.world),
                clean(&p.version),
                short_state(&p.state, now),
                format!("{}/{}", p.instances, p.max_instances),
                human_count(p.calls),
                total,
                p99,
                max,
                p.restarts.to_string(),
                if faults.is_empty() {
                    "none".into()
                } else {
                    faults.join(", ")
                },
            ]
        })
        .collect();
    t.table(
        &[
            "name",
            "world",
            "version",
            "state",
            "instances",
            "calls",
            "call time",
            "p99",
            "max",
            "restarts",
            "faults",
        ],
        &[4, 5, 6, 7, 8, 9],
        &rows,
    );
    for p in plugins {
        if let Some(f) = &p.last_fault {
            t.line(&format!(
                "latest fault of {}: {} in {} at {} ({}): {}",
                clean(&f.plugin),
                clean(&f.kind),
                clean(&f.function),
                utc(f.at_unix_ms),
                clean(&f.action),
                clean(&f.message)
            ));
        }
    }
}

/// A plugin's state in a table cell: `active`, `backing off (in 30s)`,
/// `disabled (operator)`.
fn short_state(s: &PluginState, now: u64) -> String {
    match s {
        PluginState::BackingOff { until_unix_ms } => {
            format!("backing off ({})", relative(*until_unix_ms, now))
        }
        PluginState::Disabled { by } => format!("disabled ({})", clean(by)),
        PluginState::Active => "active".into(),
    }
}

fn crashes(t: &mut Text, c: &CrashesStatus, now: u64) {
    let mut pairs = vec![
        ("since the last start", c.since_last_start.to_string()),
        ("kept", c.total.to_string()),
    ];
    if let Some(l) = &c.latest {
        pairs.push((
            "latest",
            format!(
                "{} ({}), version {}, generation {}, thread {}",
                utc(l.at_unix_ms),
                relative(l.at_unix_ms, now),
                clean(&l.version),
                l.generation,
                clean(&l.thread)
            ),
        ));
        pairs.push(("message", clean(&l.message)));
        pairs.push(("report", clean(&l.path)));
    }
    if let Some(dir) = &c.directory {
        pairs.push(("directory", clean(dir)));
    }
    t.pairs(&pairs);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        serde_json::from_str(include_str!("../control/testdata/status.json"))
            .expect("the sample parses")
    }

    #[test]
    fn every_section_in_order() {
        let text = render(&sample());
        let titles: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(' '))
            .collect();
        assert_eq!(
            titles,
            [
                "Process",
                "Listeners",
                "Clients",
                "Pool (3 origins, 2 requests waiting)",
                "DNS",
                "Alt-Svc",
                "Telemetry",
                "Memory",
                "Plugins",
                "Crashes"
            ]
        );
    }

    #[test]
    fn the_sample_reads_as_tables() {
        let text = render(&sample());
        print!("{text}");
        for line in [
            "  uptime       1h 02m",
            "  last reload  ok at 2026-12-01 07:10:00 UTC (7m 00s ago), generation 3: plugins: blocklist replaced, request-stats kept",
            "  control+unix:/run/user/1000/sockhost/control.sock",
            "  requests since start  12,345",
            "  ORIGIN                      PROTOCOL  BUSY  IDLE  REQUESTS  QUEUED  CONGESTION",
            "  https://www.site.test:443   h2           1     1         2       0",
            "  https://quic.site.test:443  h3           1     0         1       2  cubic (native)",
            "  answered from the cache  28 (70%)",
            "  default      https://quic.site.test:443 -> h3=\":443\"; ma=86400  2026-12-02 07:16:59 UTC (in 23h 59m)",
            "  office-wifi  (none)",
            "  events dropped    7",
            "  resident     45.2 MiB (peak 50.0 MiB)",
            "  blocklist      1.1 MiB, 1.2 MiB  4.0 MiB    1.2 MiB",
            "  bbr-lite       -                 1.0 MiB        0 B",
            "  latest fault of evil<b>: panic in on-request at 2026-12-01 07:16:40 UTC (disabled for 30s): <script>alert(\"pwned\")</script> & more",
            "  since the last start  1",
            "  message               called `Option::unwrap()` on a `None` value",
        ] {
            assert!(text.contains(&format!("{line}\n")), "missing {line:?} in\n{text}");
        }
        let blocklist = text
            .lines()
            .filter(|l| l.starts_with("  blocklist  "))
            .nth(1)
            .unwrap();
        assert_eq!(
            blocklist.split_whitespace().collect::<Vec<_>>(),
            [
                "blocklist",
                "extension",
                "1.2.0",
                "active",
                "2/4",
                "12,000",
                "1.83",
                "s",
                "420.0",
                "µs",
                "2.1",
                "ms",
                "0",
                "none"
            ]
        );
        assert!(text.contains("  backing off (in 30s)  "));
        assert!(text.contains("  disabled (operator)  "));
        assert!(text.contains("deadline 1, panic 3"));
    }

    #[test]
    fn an_empty_status_still_names_each_section() {
        let text = render(&Status::default());
        for line in [
            "  config       the embedded defaults",
            "  last reload  none since start",
            "  none",
            "  no pooled connections",
            "  no network has alternatives",
            "  no plugins are plugged in",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn a_plugin_cannot_write_escape_sequences_to_the_terminal() {
        let mut s = sample();
        s.plugins[2].last_fault.as_mut().unwrap().message = "\u{1b}[2Jgone\rback".into();
        let text = render(&s);
        assert!(!text.contains('\u{1b}') && !text.contains('\r'));
        assert!(text.contains("\\u{1b}[2Jgone\\rback"));
    }
}
