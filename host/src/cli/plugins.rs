//! `sockhost plugins`: the running daemon's plugins, listed, enabled or
//! disabled by name. (`sockhost plugin`, singular, works on plugin files
//! without a daemon.)

use sockhost::control::status::{PluginState, PluginStatus};
use sockhost::units::{relative, utc};

use super::control::{block_on, ControlArgs};
use super::status::plugins_table;
use super::table::{clean, Text};

/// Prints the plugins table of `sockhost status`.
pub fn list(args: &ControlArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    let status = block_on(async { Ok(client.status().await?) })?;
    let mut t = Text::new();
    t.section("Plugins");
    plugins_table(&mut t, &status.plugins, status.filled_unix_ms());
    print!("{}", t.finish());
    Ok(())
}

/// Enables or disables plugin `name` and prints its state afterwards.
pub fn set(args: &ControlArgs, name: &str, enable: bool) -> anyhow::Result<()> {
    let client = args.client()?;
    let plugin = block_on(async { Ok(client.set_plugin(name, enable).await?) })?;
    println!("{}", render(&plugin, now()));
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `NAME: STATE (N instances)`.
pub fn render(p: &PluginStatus, now: u64) -> String {
    format!(
        "{}: {} ({} of {} instances live)",
        clean(&p.name),
        state(&p.state, now),
        p.instances,
        p.max_instances
    )
}

/// A plugin's state in words: `active`, `backing off until 07:17:30 UTC
/// (in 30s)`, `disabled by operator`.
pub fn state(s: &PluginState, now: u64) -> String {
    match s {
        PluginState::Active => "active".into(),
        PluginState::BackingOff { until_unix_ms } => format!(
            "backing off until {} ({})",
            &utc(*until_unix_ms)[11..],
            relative(*until_unix_ms, now)
        ),
        PluginState::Disabled { by } => format!("disabled by {}", clean(by)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugins_state_in_one_line() {
        let mut p = PluginStatus {
            name: "blocklist".into(),
            instances: 0,
            max_instances: 4,
            state: PluginState::Disabled {
                by: "operator".into(),
            },
            ..PluginStatus::default()
        };
        assert_eq!(
            render(&p, 0),
            "blocklist: disabled by operator (0 of 4 instances live)"
        );
        p.state = PluginState::BackingOff {
            until_unix_ms: 1_796_109_450_000,
        };
        assert_eq!(
            render(&p, 1_796_109_420_000),
            "blocklist: backing off until 07:17:30 UTC (in 30s) (0 of 4 instances live)"
        );
    }
}
