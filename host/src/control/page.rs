//! The status page (`GET /` on the control listener), Firefox's
//! about:networking for the daemon: one self-contained HTML document (inline
//! CSS, no script, no external asset) drawn from the [`Status`] document.
//! Sans-IO: a function from the document to text.
//!
//! Every string from the daemon or a plugin is escaped: a plugin is
//! third-party code, and its name, panic message and backtrace are whatever
//! it chose them to be.

use std::fmt::{self, Display, Write};

use super::status::{
    AltSvcNetworkStatus, CrashesStatus, DnsAnswer, FaultStatus, OriginStatus, PluginState,
    PluginStatus, ReloadStatus, Status,
};
use crate::units::{human_count, human_micros, human_size, human_uptime, relative, utc};

/// How often the live page reloads itself, in seconds.
pub const REFRESH_SECS: u32 = 5;

/// The page. `dns` is the answer to the lookup form's name and
/// `dns_error` why that lookup failed; while either is shown the page does
/// not refresh itself (a refresh would ask again and replace the answer
/// being read).
pub fn render(status: &Status, dns: Option<&DnsAnswer>, dns_error: Option<&str>) -> String {
    let live = dns.is_none() && dns_error.is_none();
    let mut out = String::with_capacity(16 << 10);
    // Writing into a String cannot fail.
    let _ = page(&mut out, status, dns, dns_error, live);
    out
}

/// `s` with HTML's special characters escaped, for text and for attribute
/// values in double quotes.
#[derive(Debug, Clone, Copy)]
struct Esc<'a>(&'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

const STYLE: &str = r#"
:root { --fg:#1d2329; --muted:#5f6b76; --line:#d8dee4; --bg:#f6f8fa; --ok:#2e8540;
        --warn:#b7791f; --bad:#c53030; --accent:#1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: #fff; }
header { background: #1f2a36; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header .facts { color: #c9d3dd; margin-top: 2px; }
header .refresh { float: right; color: #c9d3dd; font-size: 12px; margin-top: 4px; }
header .refresh a { color: #9cc8ff; }
nav { background: var(--bg); border-bottom: 1px solid var(--line); padding: 6px 24px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
main { max-width: 1240px; padding: 8px 24px 32px; }
section { margin-top: 18px; }
h2 { font-size: 16px; margin: 0 0 6px; padding-bottom: 3px; border-bottom: 2px solid var(--line); }
h3 { font-size: 14px; margin: 10px 0 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv { width: auto; }
table.kv th { background: none; color: var(--muted); font-weight: normal; }
code, pre { font: 12.5px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: var(--bg); border: 1px solid var(--line); padding: 8px; margin: 6px 0 0;
      white-space: pre-wrap; word-break: break-all; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
         color: #fff; white-space: nowrap; }
.badge.ok { background: var(--ok); } .badge.warn { background: var(--warn); }
.badge.bad { background: var(--bad); } .badge.off { background: #6b7785; }
.cols { display: flex; gap: 24px; flex-wrap: wrap; }
.cols > div { flex: 1 1 300px; }
.mem { display: flex; align-items: center; gap: 8px; white-space: nowrap; margin: 1px 0; }
.bar { position: relative; width: 180px; height: 12px; background: #e7ebef;
       border: 1px solid #c3ccd5; border-radius: 2px; overflow: hidden; flex: none; }
.bar .fill { position: absolute; left: 0; top: 0; bottom: 0; }
.fill.ok { background: #4c9f5d; } .fill.warn { background: #d69e2e; } .fill.bad { background: #d64545; }
.bar .peak { position: absolute; top: 0; bottom: 0; width: 2px; background: #1d2329; }
td.name { white-space: nowrap; }
.mem .lbl { font-size: 12px; font-variant-numeric: tabular-nums; }
details { border: 1px solid var(--line); border-radius: 3px; padding: 6px 10px; margin: 6px 0; }
details summary { cursor: pointer; }
.alert { border-left: 4px solid var(--bad); background: #fdf2f2; padding: 6px 10px; margin: 6px 0; }
.note { border-left: 4px solid var(--accent); background: #eef5fc; padding: 6px 10px; margin: 6px 0; }
form input[type=text] { width: 320px; padding: 4px 6px; font: inherit; }
form button { padding: 4px 12px; font: inherit; }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
footer a { color: var(--accent); }
"#;

fn page(
    out: &mut String,
    s: &Status,
    dns: Option<&DnsAnswer>,
    dns_error: Option<&str>,
    live: bool,
) -> fmt::Result {
    let p = &s.process;
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    if live {
        writeln!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">"
        )?;
    }
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width\">\n<title>sockhost {} · status</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        esc(&p.version)
    )?;
    writeln!(out, "<header>")?;
    if live {
        writeln!(
            out,
            "<div class=\"refresh\">refreshes every {REFRESH_SECS} s</div>"
        )?;
    } else {
        writeln!(
            out,
            "<div class=\"refresh\">not refreshing while a lookup is shown · <a href=\"/\">back to the live page</a></div>"
        )?;
    }
    writeln!(
        out,
        "<h1>sockhost</h1>\n<div class=\"facts\">version {} · pid {} · up {} · config generation {}</div>\n</header>",
        esc(&p.version),
        p.pid,
        human_uptime(p.uptime_secs),
        p.generation
    )?;
    writeln!(
        out,
        "<nav><a href=\"#process\">Process</a><a href=\"#lookup\">DNS lookup</a><a href=\"#clients\">Listeners &amp; clients</a><a href=\"#pool\">Pool</a><a href=\"#caches\">DNS &amp; Alt-Svc</a><a href=\"#plugins\">Plugins</a><a href=\"#faults\">Faults</a><a href=\"#memory\">Memory &amp; telemetry</a></nav>\n<main>"
    )?;
    let now = s.filled_unix_ms();
    // An answer asked for is what the reader looks at: first.
    if live {
        process(out, s, now)?;
        lookup(out, dns, dns_error)?;
    } else {
        lookup(out, dns, dns_error)?;
        process(out, s, now)?;
    }
    clients(out, s)?;
    pool(out, &s.pool, s.pool_waiting)?;
    caches(out, s, now)?;
    plugins(out, &s.plugins, now)?;
    faults(out, &s.plugins, now)?;
    memory(out, s)?;
    writeln!(
        out,
        "<footer>The same figures as data: <a href=\"/v1/status\">/v1/status</a> (JSON) · <a href=\"/metrics\">/metrics</a> (Prometheus) · <a href=\"/v1/faults\">/v1/faults</a> · drawn {}</footer>\n</main>\n</body>\n</html>",
        utc(now)
    )
}

/// A time as `2026-12-01 07:16:59 UTC (3m 05s ago)`.
fn when(unix_ms: u64, now: u64) -> String {
    format!("{} ({})", utc(unix_ms), relative(unix_ms, now))
}

fn process(out: &mut String, s: &Status, now: u64) -> fmt::Result {
    let p = &s.process;
    writeln!(
        out,
        "<section id=\"process\"><h2>Process</h2>\n<div class=\"cols\"><div><table class=\"kv\">"
    )?;
    kv(out, "version", &esc(&p.version))?;
    kv(out, "pid", &p.pid)?;
    kv(out, "started", &when(p.started_unix_ms, now))?;
    kv(out, "uptime", &human_uptime(p.uptime_secs))?;
    match &p.config {
        Some(path) => kv(out, "config", &format_args!("<code>{}</code>", esc(path)))?,
        None => kv(
            out,
            "config",
            &"<span class=\"muted\">the embedded defaults</span>",
        )?,
    }
    kv(out, "generation", &p.generation)?;
    match &p.last_reload {
        Some(r) => kv(out, "last reload", &reload(r, now))?,
        None => kv(
            out,
            "last reload",
            &"<span class=\"muted\">none since start</span>",
        )?,
    }
    writeln!(out, "</table></div>\n<div>")?;
    crashes(out, &p.crashes, now)?;
    writeln!(out, "</div></div></section>")
}

fn reload(r: &ReloadStatus, now: u64) -> String {
    let (class, word) = if r.ok {
        ("ok", "ok")
    } else {
        ("bad", "failed")
    };
    format!(
        "<span class=\"badge {class}\">{word}</span> {} · generation {} · {}",
        when(r.at_unix_ms, now),
        r.generation,
        esc(&r.message)
    )
}

fn crashes(out: &mut String, c: &CrashesStatus, now: u64) -> fmt::Result {
    writeln!(out, "<h3>Crashes</h3>")?;
    if c.total == 0 && c.latest.is_none() {
        writeln!(out, "<p class=\"muted\">No crash reports.</p>")?;
    } else {
        let class = if c.since_last_start > 0 {
            "bad"
        } else {
            "warn"
        };
        writeln!(
            out,
            "<p><span class=\"badge {class}\">{} since the last start</span> {} kept in all</p>",
            c.since_last_start, c.total
        )?;
    }
    if let Some(l) = &c.latest {
        writeln!(out, "<table class=\"kv\">")?;
        kv(out, "latest", &when(l.at_unix_ms, now))?;
        kv(
            out,
            "message",
            &format_args!("<code>{}</code>", esc(&l.message)),
        )?;
        kv(out, "thread", &esc(&l.thread))?;
        kv(
            out,
            "version",
            &format_args!("{} (generation {})", esc(&l.version), l.generation),
        )?;
        kv(
            out,
            "report",
            &format_args!("<code>{}</code>", esc(&l.path)),
        )?;
        writeln!(out, "</table>")?;
    }
    if let Some(dir) = &c.directory {
        writeln!(
            out,
            "<p class=\"muted\">Reports are written to <code>{}</code>.</p>",
            esc(dir)
        )?;
    }
    Ok(())
}

fn kv(out: &mut String, key: &str, value: &dyn Display) -> fmt::Result {
    writeln!(out, "<tr><th>{key}</th><td>{value}</td></tr>")
}

fn lookup(out: &mut String, dns: Option<&DnsAnswer>, error: Option<&str>) -> fmt::Result {
    let asked = dns.map_or("", |a| a.host.as_str());
    writeln!(
        out,
        "<section id=\"lookup\"><h2>DNS lookup</h2>\n<form method=\"get\" action=\"/\"><input type=\"text\" name=\"dns\" value=\"{}\" placeholder=\"example.com\" required maxlength=\"253\" aria-label=\"host name\"> <button type=\"submit\">Look up</button> <span class=\"muted\">A, AAAA and HTTPS records, as the daemon's resolver answers</span></form>",
        esc(asked)
    )?;
    if let Some(e) = error {
        writeln!(
            out,
            "<div class=\"alert\">The lookup failed: {}</div>",
            esc(e)
        )?;
    }
    if let Some(a) = dns {
        let source = if a.cached {
            "<span class=\"badge ok\">from the cache</span>"
        } else {
            "<span class=\"badge warn\">fresh</span>"
        };
        writeln!(
            out,
            "<div class=\"note\"><b>{}</b> {source} in {}</div>",
            esc(&a.host),
            human_micros(a.elapsed_us)
        )?;
        writeln!(
            out,
            "<table id=\"dns-answer\"><tr><th style=\"width:90px\">Type</th><th>Answer</th></tr>"
        )?;
        let rows = [("A", &a.a), ("AAAA", &a.aaaa), ("HTTPS", &a.https)];
        for (kind, values) in rows {
            for v in values {
                writeln!(
                    out,
                    "<tr><td>{kind}</td><td><code>{}</code></td></tr>",
                    esc(v)
                )?;
            }
        }
        if rows.iter().all(|(_, v)| v.is_empty()) {
            writeln!(
                out,
                "<tr><td colspan=\"2\" class=\"muted\">No records.</td></tr>"
            )?;
        }
        writeln!(out, "</table>")?;
        for e in &a.errors {
            writeln!(out, "<div class=\"alert\">{}</div>", esc(e))?;
        }
        for o in &a.overrides {
            writeln!(
                out,
                "<div class=\"note\">answered by the override <code>{}</code> (--resolve), not by DNS</div>",
                esc(o)
            )?;
        }
    }
    writeln!(out, "</section>")
}

fn clients(out: &mut String, s: &Status) -> fmt::Result {
    writeln!(
        out,
        "<section id=\"clients\"><h2>Listeners &amp; clients</h2>\n<div class=\"cols\"><div><h3>Listeners</h3><table>"
    )?;
    for l in &s.listeners {
        let (kind, at) = listener_kind(l);
        writeln!(
            out,
            "<tr><td>{kind}</td><td><code>{}</code></td></tr>",
            esc(at)
        )?;
    }
    if s.listeners.is_empty() {
        writeln!(out, "<tr><td class=\"muted\">none</td></tr>")?;
    }
    writeln!(
        out,
        "</table></div><div><h3>Clients</h3><table class=\"kv\">"
    )?;
    let c = &s.clients;
    kv(out, "connections open", &human_count(c.connections))?;
    kv(
        out,
        "requests in flight",
        &human_count(c.requests_in_flight),
    )?;
    kv(out, "requests since start", &human_count(c.requests_total))?;
    kv(out, "CONNECT tunnels open", &human_count(c.tunnels))?;
    writeln!(out, "</table></div></div></section>")
}

/// What a listener is for, and where: `control+unix:PATH` is the control
/// plane on a Unix socket.
fn listener_kind(l: &str) -> (&'static str, &str) {
    if let Some(path) = l.strip_prefix("control+unix:") {
        ("control, Unix socket", path)
    } else if let Some(addr) = l.strip_prefix("control+") {
        ("control, TCP", addr)
    } else if let Some(path) = l.strip_prefix("unix:") {
        ("proxy, Unix socket", path)
    } else {
        ("proxy, TCP", l)
    }
}

/// One origin's connections of one protocol, summed.
#[derive(Debug, Default)]
pub struct PoolRow<'a> {
    /// The origin.
    pub origin: &'a str,
    /// `http/1.1`, `h2` or `h3`.
    pub protocol: &'a str,
    /// Connections carrying requests now.
    pub busy: u64,
    /// Connections without a request.
    pub idle: u64,
    /// Requests on them.
    pub requests: u64,
    /// The origin's queued requests (on its first row only).
    pub queued: Option<u64>,
    /// Their congestion controllers, `, `-separated (QUIC only).
    pub congestion: String,
    /// Their peers, `, `-separated.
    pub peers: String,
}

/// The pool as rows: per origin, per protocol, in the order seen. An
/// origin without connections (its requests all queued) is one row.
pub fn pool_rows(pool: &[OriginStatus]) -> Vec<PoolRow<'_>> {
    let mut rows = Vec::new();
    for o in pool {
        let first = rows.len();
        for c in &o.connections {
            let at = rows[first..]
                .iter()
                .position(|r: &PoolRow| r.protocol == c.protocol);
            let row = match at {
                Some(i) => &mut rows[first + i],
                None => {
                    rows.push(PoolRow {
                        origin: &o.origin,
                        protocol: &c.protocol,
                        ..PoolRow::default()
                    });
                    rows.last_mut().expect("just pushed")
                }
            };
            if c.active > 0 {
                row.busy += 1;
            } else {
                row.idle += 1;
            }
            row.requests += c.active;
            if let Some(cc) = &c.congestion {
                join_unique(&mut row.congestion, cc);
            }
            join_unique(&mut row.peers, &c.peer);
        }
        if rows.len() == first {
            rows.push(PoolRow {
                origin: &o.origin,
                protocol: "",
                ..PoolRow::default()
            });
        }
        rows[first].queued = Some(o.queued);
    }
    rows
}

fn join_unique(list: &mut String, item: &str) {
    if !list.split(", ").any(|x| x == item) {
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(item);
    }
}

fn pool(out: &mut String, pool: &[OriginStatus], waiting: u64) -> fmt::Result {
    writeln!(
        out,
        "<section id=\"pool\"><h2>Pool</h2>\n<p class=\"muted\">{} origins · {} requests waiting for a connection</p>",
        pool.len(),
        human_count(waiting)
    )?;
    if pool.is_empty() {
        return writeln!(
            out,
            "<p class=\"muted\">No pooled connections.</p></section>"
        );
    }
    writeln!(
        out,
        "<table id=\"pool-table\"><tr><th>Origin</th><th>Protocol</th><th class=\"num\">Busy</th><th class=\"num\">Idle</th><th class=\"num\">Requests</th><th class=\"num\">Queued</th><th>Congestion</th><th>Peers</th></tr>"
    )?;
    for r in pool_rows(pool) {
        let origin = match r.queued {
            Some(_) => format!("<code>{}</code>", esc(r.origin)),
            None => String::new(),
        };
        let queued = r.queued.map_or(String::new(), human_count);
        writeln!(
            out,
            "<tr><td>{origin}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{queued}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(r.protocol),
            r.busy,
            r.idle,
            r.requests,
            esc(&r.congestion),
            esc(&r.peers)
        )?;
    }
    writeln!(out, "</table></section>")
}

fn caches(out: &mut String, s: &Status, now: u64) -> fmt::Result {
    let d = &s.dns;
    writeln!(
        out,
        "<section id=\"caches\"><h2>DNS &amp; Alt-Svc</h2>\n<div class=\"cols\"><div><h3>DNS cache</h3><table class=\"kv\">"
    )?;
    kv(out, "entries", &human_count(d.cache_entries))?;
    kv(out, "lookups since start", &human_count(d.lookups))?;
    kv(
        out,
        "answered from the cache",
        &format_args!(
            "{}{}",
            human_count(d.cache_hits),
            percent(d.cache_hits, d.lookups)
        ),
    )?;
    writeln!(
        out,
        "</table></div><div style=\"flex-grow:2\"><h3>Alt-Svc, per network</h3>"
    )?;
    if s.alt_svc.is_empty() {
        writeln!(out, "<p class=\"muted\">No network has alternatives.</p>")?;
    }
    for n in &s.alt_svc {
        alt_svc(out, n, now)?;
    }
    writeln!(out, "</div></div></section>")
}

/// ` (70%)` of `total`, or nothing when there is no total.
fn percent(part: u64, total: u64) -> String {
    match total {
        0 => String::new(),
        t => format!(" ({:.0}%)", part as f64 * 100.0 / t as f64),
    }
}

fn alt_svc(out: &mut String, n: &AltSvcNetworkStatus, now: u64) -> fmt::Result {
    writeln!(out, "<p><b>{}</b>", esc(&n.network))?;
    if n.entries.is_empty() {
        return writeln!(out, " <span class=\"muted\">no alternatives</span></p>");
    }
    writeln!(
        out,
        "</p><table><tr><th>Origin</th><th>Alternatives</th><th>Expires</th></tr>"
    )?;
    for e in &n.entries {
        let alts: Vec<String> = e.alternatives.iter().map(|a| esc(a).to_string()).collect();
        writeln!(
            out,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&e.origin),
            alts.join("<br>"),
            when(e.expires_unix_ms, now)
        )?;
    }
    writeln!(out, "</table>")
}

fn plugins(out: &mut String, plugins: &[PluginStatus], now: u64) -> fmt::Result {
    writeln!(out, "<section id=\"plugins\"><h2>Plugins</h2>")?;
    if plugins.is_empty() {
        return writeln!(
            out,
            "<p class=\"muted\">No plugins are plugged in.</p></section>"
        );
    }
    writeln!(
        out,
        "<table id=\"plugins-table\"><tr><th>Plugin</th><th>World</th><th>State</th><th class=\"num\">Instances</th><th class=\"num\">Calls</th><th class=\"num\">Call time<br><span class=\"muted\">total · p99 · max</span></th><th>Faults</th><th class=\"num\">Restarts</th><th>Memory per instance <span class=\"muted\">(▮ peak)</span></th></tr>"
    )?;
    for p in plugins {
        let ct = &p.call_time;
        let call_time = match p.calls {
            0 => "<span class=\"muted\">no calls</span>".to_owned(),
            _ => format!(
                "{}<br><span class=\"muted\">{} · {}</span>",
                human_micros(ct.total_us),
                human_micros(ct.p99_us),
                human_micros(ct.max_us)
            ),
        };
        writeln!(
            out,
            "<tr id=\"plugin-{}\"><td class=\"name\"><b>{}</b> {}<br><code class=\"muted\" title=\"sha256 {}\">{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td><td class=\"num\">{call_time}</td><td>{}</td><td class=\"num\">{}{}</td><td>",
            esc(&p.name),
            esc(&p.name),
            esc(&p.version),
            esc(&p.sha256),
            esc(p.sha256.get(..12).unwrap_or(&p.sha256)),
            esc(&p.world),
            state(&p.state, now),
            p.instances,
            p.max_instances,
            human_count(p.calls),
            fault_counts(p),
            p.restarts,
            if p.recycles > 0 {
                format!("<br><span class=\"muted\">{} recycled</span>", p.recycles)
            } else {
                String::new()
            },
        )?;
        memory_bars(out, p)?;
        writeln!(out, "</td></tr>")?;
    }
    writeln!(out, "</table></section>")
}

fn state(s: &PluginState, now: u64) -> String {
    match s {
        PluginState::Active => "<span class=\"badge ok\">active</span>".into(),
        PluginState::BackingOff { until_unix_ms } => format!(
            "<span class=\"badge warn\">backing off</span><br><span class=\"muted\">until {} ({})</span>",
            &utc(*until_unix_ms)[11..],
            relative(*until_unix_ms, now)
        ),
        PluginState::Disabled { by } => format!(
            "<span class=\"badge off\">disabled</span><br><span class=\"muted\">by {}</span>",
            esc(by)
        ),
    }
}

fn fault_counts(p: &PluginStatus) -> String {
    let counted: Vec<String> = p
        .faults
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("<span class=\"badge bad\">{} {n}</span>", esc(kind)))
        .collect();
    match counted.is_empty() {
        true => "<span class=\"muted\">none</span>".into(),
        false => counted.join(" "),
    }
}

/// The share of `limit` that `bytes` is, in percent, at most 100.
fn share(bytes: u64, limit: u64) -> f64 {
    (bytes as f64 * 100.0 / limit as f64).min(100.0)
}

/// One bar per live instance, filled to its share of the limit, with a
/// mark at the plugin's peak: green below half, amber below three
/// quarters (where instances get recycled), red above.
fn memory_bars(out: &mut String, p: &PluginStatus) -> fmt::Result {
    if p.memory_bytes.is_empty() {
        return write!(
            out,
            "<span class=\"muted\">no live instance · limit {} · peak {}</span>",
            human_size(p.memory_limit_bytes),
            human_size(p.memory_peak_bytes)
        );
    }
    for (i, &bytes) in p.memory_bytes.iter().enumerate() {
        if p.memory_limit_bytes == 0 {
            writeln!(
                out,
                "<div class=\"mem\"><span class=\"lbl\">#{} {} (no limit)</span></div>",
                i + 1,
                human_size(bytes)
            )?;
            continue;
        }
        let used = share(bytes, p.memory_limit_bytes);
        let class = match used {
            u if u < 50.0 => "ok",
            u if u < 75.0 => "warn",
            _ => "bad",
        };
        let peak = share(p.memory_peak_bytes, p.memory_limit_bytes);
        writeln!(
            out,
            "<div class=\"mem\"><div class=\"bar\" title=\"{bytes} of {} bytes\"><span class=\"fill {class}\" style=\"width:{used:.1}%\"></span><span class=\"peak\" style=\"left:calc({peak:.1}% - 2px)\"></span></div><span class=\"lbl\">#{} {} of {} ({used:.0}%)</span></div>",
            p.memory_limit_bytes,
            i + 1,
            human_size(bytes),
            human_size(p.memory_limit_bytes)
        )?;
    }
    write!(
        out,
        "<span class=\"muted\">peak {}</span>",
        human_size(p.memory_peak_bytes)
    )
}

fn faults(out: &mut String, plugins: &[PluginStatus], now: u64) -> fmt::Result {
    writeln!(
        out,
        "<section id=\"faults\"><h2>Faults</h2>\n<p class=\"muted\">Each plugin's latest fault, newest first; <a href=\"/v1/faults\">/v1/faults</a> keeps the recent ones.</p>"
    )?;
    let mut latest: Vec<&FaultStatus> = plugins
        .iter()
        .filter_map(|p| p.last_fault.as_ref())
        .collect();
    latest.sort_by_key(|f| std::cmp::Reverse(f.at_unix_ms));
    if latest.is_empty() {
        writeln!(out, "<p class=\"muted\">No plugin has faulted.</p>")?;
    }
    for (i, f) in latest.into_iter().enumerate() {
        // The newest is open: it is usually the one being looked for.
        let open = if i == 0 { " open" } else { "" };
        writeln!(
            out,
            "<details{open}><summary><span class=\"badge bad\">{}</span> <b>{}</b> in <code>{}</code> ({}) · {} · {}</summary>\n<p><code>{}</code></p>",
            esc(&f.kind),
            esc(&f.plugin),
            esc(&f.function),
            esc(&f.world),
            esc(&f.action),
            when(f.at_unix_ms, now),
            esc(&f.message)
        )?;
        match &f.backtrace {
            Some(bt) => writeln!(out, "<pre>{}</pre>", esc(bt))?,
            None => writeln!(out, "<p class=\"muted\">No WebAssembly backtrace.</p>")?,
        }
        writeln!(out, "</details>")?;
    }
    writeln!(out, "</section>")
}

fn memory(out: &mut String, s: &Status) -> fmt::Result {
    let (m, t) = (&s.memory, &s.telemetry);
    writeln!(
        out,
        "<section id=\"memory\"><h2>Memory &amp; telemetry</h2>\n<div class=\"cols\"><div><table class=\"kv\">"
    )?;
    kv(out, "resident (RSS)", &human_size(m.rss_bytes))?;
    kv(out, "peak resident", &human_size(m.peak_rss_bytes))?;
    kv(out, "WebAssembly linear memory", &human_size(m.wasm_bytes))?;
    writeln!(out, "</table></div><div><table class=\"kv\">")?;
    kv(out, "probes on the bus", &t.probes)?;
    kv(out, "events published", &human_count(t.published))?;
    let dropped = match t.dropped {
        0 => "0".to_owned(),
        n => format!(
            "<span class=\"badge warn\">{}</span> (a probe's queue was full)",
            human_count(n)
        ),
    };
    kv(out, "events dropped", &dropped)?;
    writeln!(out, "</table></div></div></section>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        serde_json::from_str(include_str!("testdata/status.json")).expect("the sample parses")
    }

    #[test]
    fn the_page_shows_every_section_of_a_rich_status() {
        let html = render(&sample(), None, None);
        for id in [
            "process", "lookup", "clients", "pool", "caches", "plugins", "faults", "memory",
        ] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        for text in [
            "version 0.1.0 · pid 4242 · up 1h 02m · config generation 3",
            "<code>/home/ada/.config/sockhost/sockhost.toml</code>",
            "<span class=\"badge ok\">ok</span> 2026-12-01 07:10:00 UTC (7m 00s ago) · generation 3",
            "<span class=\"badge bad\">1 since the last start</span> 2 kept in all",
            "called `Option::unwrap()` on a `None` value",
            "<td>control, Unix socket</td><td><code>/run/user/1000/sockhost/control.sock</code>",
            "<th>requests since start</th><td>12,345</td>",
            "<code>https://quic.site.test:443</code></td><td>h3</td><td class=\"num\">1</td><td class=\"num\">0</td><td class=\"num\">1</td><td class=\"num\">2</td><td>cubic (native)</td>",
            "2 requests waiting for a connection",
            "<th>answered from the cache</th><td>28 (70%)</td>",
            "<p><b>office-wifi</b>\n <span class=\"muted\">no alternatives</span>",
            "<code>h3=&quot;:443&quot;; ma=86400</code>",
            "<b>blocklist</b> 1.2.0",
            "<td class=\"num\">2 / 4</td><td class=\"num\">12,000</td><td class=\"num\">1.83 s<br><span class=\"muted\">420.0 µs · 2.1 ms</span>",
            "<span class=\"badge warn\">backing off</span><br><span class=\"muted\">until 07:17:30 UTC (in 30s)</span>",
            "<span class=\"badge off\">disabled</span><br><span class=\"muted\">by operator</span>",
            "<span class=\"badge bad\">deadline 1</span> <span class=\"badge bad\">panic 3</span>",
            "<th>events dropped</th><td><span class=\"badge warn\">7</span>",
            "<th>resident (RSS)</th><td>45.2 MiB</td>",
            "<a href=\"/v1/status\">/v1/status</a>",
        ] {
            assert!(html.contains(text), "missing {text:?} in\n{html}");
        }
    }

    #[test]
    fn the_pool_sums_connections_per_origin_and_protocol() {
        let s = sample();
        let rows = pool_rows(&s.pool);
        assert_eq!(rows.len(), 3);
        let h2 = &rows[0];
        assert_eq!(
            (h2.origin, h2.protocol),
            ("https://www.site.test:443", "h2")
        );
        assert_eq!(
            (h2.busy, h2.idle, h2.requests, h2.queued),
            (1, 1, 2, Some(0))
        );
        assert_eq!(h2.peers, "127.0.0.1:443", "one peer, named once");
        let queued_only = OriginStatus {
            origin: "https://slow.test:443".into(),
            connections: vec![],
            queued: 5,
        };
        let rows = pool_rows(std::slice::from_ref(&queued_only));
        assert_eq!((rows.len(), rows[0].queued), (1, Some(5)));
    }

    #[test]
    fn memory_is_one_bar_per_instance_against_the_limit() {
        let html = render(&sample(), None, None);
        // blocklist: 1.125 MiB and 1.1875 MiB of 4 MiB, peak 1.25 MiB.
        assert!(html.contains("<span class=\"fill ok\" style=\"width:28.1%\"></span><span class=\"peak\" style=\"left:calc(31.2% - 2px)\"></span></div><span class=\"lbl\">#1 1.1 MiB of 4.0 MiB (28%)</span>"), "{html}");
        assert!(html.contains("#2 1.2 MiB of 4.0 MiB (30%)"));
        // The hostile plugin is near its limit: red.
        assert!(html.contains("<span class=\"fill bad\" style=\"width:93.8%\">"));
        // No instance, no bar.
        assert!(html.contains("no live instance · limit 1.0 MiB · peak 0 B"));
        let bars = html.matches("<div class=\"bar\"").count();
        assert_eq!(bars, 4, "2 + 1 + 1 live instances");
        // Over the limit (the limit was lowered by a reload): a full bar.
        let mut s = sample();
        s.plugins[0].memory_bytes = vec![8 << 20];
        let html = render(&s, None, None);
        assert!(html.contains("style=\"width:100.0%\""));
    }

    #[test]
    fn a_plugins_words_are_escaped_wherever_they_appear() {
        let html = render(&sample(), None, None);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("evil<b>"));
        assert!(html.contains(
            "<p><code>&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; more</code></p>"
        ));
        assert!(html.contains("<b>evil&lt;b&gt;</b>"));
        assert!(html.contains("<tr id=\"plugin-evil&lt;b&gt;\">"));
        // The backtrace, in its <details>.
        assert!(html.contains("<pre>error while executing at wasm backtrace:\n    0:  0x1a2b - evil::on_request&lt;script&gt;\n    1:  0x0c3d - &lt;unknown&gt;!__rust_start_panic</pre>\n</details>"));
        // An attribute cannot be closed from inside.
        let answer = DnsAnswer {
            host: "\"><script>x</script>".into(),
            a: vec!["<img src=x onerror=alert(1)>".into()],
            ..DnsAnswer::default()
        };
        let html = render(&sample(), Some(&answer), Some("<i>failed</i>"));
        assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<i>"));
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
    }

    #[test]
    fn the_live_page_refreshes_itself_but_not_while_an_answer_is_read() {
        let s = sample();
        let refresh = "<meta http-equiv=\"refresh\" content=\"5\">";
        let live = render(&s, None, None);
        assert!(live.contains(refresh));
        assert!(live.contains(
            "<form method=\"get\" action=\"/\"><input type=\"text\" name=\"dns\" value=\"\""
        ));
        let answer = DnsAnswer {
            host: "www.site.test".into(),
            a: vec!["127.0.0.1".into()],
            aaaa: vec![],
            https: vec!["1 . alpn=\"h3,h2\"".into()],
            cached: false,
            elapsed_us: 12_300,
            errors: vec!["AAAA: no records".into()],
            overrides: vec![],
        };
        let html = render(&s, Some(&answer), None);
        assert!(!html.contains(refresh));
        assert!(html.contains("<a href=\"/\">back to the live page</a>"));
        assert!(html.contains("name=\"dns\" value=\"www.site.test\""));
        assert!(html
            .contains("<b>www.site.test</b> <span class=\"badge warn\">fresh</span> in 12.3 ms"));
        assert!(html.contains("<tr><td>A</td><td><code>127.0.0.1</code></td></tr>"));
        assert!(html
            .contains("<tr><td>HTTPS</td><td><code>1 . alpn=&quot;h3,h2&quot;</code></td></tr>"));
        assert!(html.contains("<div class=\"alert\">AAAA: no records</div>"));
        let failed = render(&s, None, Some("no name server answered"));
        assert!(!failed.contains(refresh));
        assert!(failed.contains("The lookup failed: no name server answered"));
    }

    #[test]
    fn an_empty_status_renders_with_its_empty_states() {
        let html = render(&Status::default(), None, None);
        for text in [
            "the embedded defaults",
            "none since start",
            "No crash reports.",
            "No pooled connections.",
            "No network has alternatives.",
            "No plugins are plugged in.",
            "No plugin has faulted.",
        ] {
            assert!(html.contains(text), "{text}");
        }
        assert!(html.ends_with("</html>\n"));
    }
}
