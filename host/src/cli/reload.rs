//! `sockhost reload`: the daemon reads its config again, all or nothing.

use sockhost::control::status::ReloadStatus;

use super::control::{block_on, ControlArgs};
use super::table::clean;

/// Asks for a reload and prints what it did; a reload that changed
/// nothing is an error (exit 1) with the daemon's reason.
pub fn run(args: &ControlArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    let done = block_on(async { Ok(client.reload().await?) })?;
    let line = render(&done);
    if !done.ok {
        anyhow::bail!("{line}");
    }
    println!("{line}");
    Ok(())
}

/// One line: `reloaded: generation 4: MESSAGE` or `reload failed
/// (generation 3 still in effect): MESSAGE`.
pub fn render(r: &ReloadStatus) -> String {
    match r.ok {
        true => format!(
            "reloaded: generation {}: {}",
            r.generation,
            clean(&r.message)
        ),
        false => format!(
            "reload failed (generation {} still in effect): {}",
            r.generation,
            clean(&r.message)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_is_one_line_either_way() {
        let mut r = ReloadStatus {
            at_unix_ms: 0,
            ok: true,
            message: "plugins: blocklist replaced".into(),
            generation: 4,
        };
        assert_eq!(
            render(&r),
            "reloaded: generation 4: plugins: blocklist replaced"
        );
        r.ok = false;
        r.generation = 3;
        r.message = "sockhost.toml: [[extension]] 2: no such file\nplugin.toml".into();
        assert_eq!(
            render(&r),
            "reload failed (generation 3 still in effect): sockhost.toml: [[extension]] 2: no such file\\nplugin.toml"
        );
    }
}
