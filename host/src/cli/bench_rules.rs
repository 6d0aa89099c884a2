//! `sockhost bench rules`: the cost of evaluating a 10,000-rule list for
//! one request, natively (what keeps most requests out of WASM).

use std::hint::black_box;
use std::time::Instant;

use sockhost::plugins::extension::{ResourceType, Rule, RuleAction, RuleCondition};
use sockhost::rules::ruleset::{rule_request, RuleSet};

fn rule(id: u32, hosts: Vec<String>, pattern: Option<String>) -> Rule {
    Rule {
        id,
        priority: 1,
        condition: RuleCondition {
            host_suffixes: hosts,
            excluded_host_suffixes: vec![],
            url_pattern: pattern,
            methods: vec![],
            resource_types: vec![],
        },
        action: RuleAction::Block,
    }
}

/// Runs the benchmark.
pub fn run(iterations: u32) -> anyhow::Result<()> {
    // A list shaped like real ones: mostly host rules, some path patterns,
    // a few generic ones.
    let rules: Vec<Rule> = (0..10_000u32)
        .map(|i| match i % 10 {
            0..=6 => rule(i, vec![format!("tracker{i}.example")], None),
            7 | 8 => rule(i, vec![], Some(format!("/ads{i}/*"))),
            _ => rule(i, vec![], Some(format!("*banner{i}^"))),
        })
        .collect();
    let t = Instant::now();
    let set = RuleSet::new(&rules);
    let compile = t.elapsed();
    println!(
        "sockhost bench rules ({} rules, {iterations} evaluations per figure)",
        set.len()
    );
    println!(
        "  compile                 {:>10.2} ms",
        compile.as_secs_f64() * 1e3
    );
    let urls = [
        (
            "no match",
            "https://www.example.com/articles/2026/11/sockhost-release-notes.html?ref=home",
        ),
        ("host rule", "https://cdn.tracker4242.example/pixel.gif"),
        ("pattern rule", "https://www.example.com/ads7777/slot.js"),
    ];
    for (label, url) in urls {
        let url = url.to_ascii_lowercase();
        let mut blocked = 0u32;
        let t = Instant::now();
        for _ in 0..iterations {
            let req = rule_request(black_box(&url), "GET", ResourceType::Script)
                .ok_or_else(|| anyhow::anyhow!("bad URL {url}"))?;
            blocked += u32::from(set.evaluate(&req).verdict.is_some());
        }
        let per = t.elapsed() / iterations;
        println!(
            "  {label:22}  {:>10.2} µs  (matched {blocked}/{iterations})",
            per.as_secs_f64() * 1e6
        );
    }
    Ok(())
}
