//! The hint a slow cold compile gets at start-up: a daemon or fetch that
//! loads a large component must not hide a multi-second compile, and the fix
//! (`sockhost plugin compile`) should be named where the delay shows.

use std::path::Path;
use std::time::Duration;

/// A compile that did not come from the cache and took at least this long is
/// logged with the hint to compile ahead of time: start-up should not hide a
/// multi-second compile (a Python component takes over 10 s on 2 cores).
pub const SLOW_COMPILE: Duration = Duration::from_secs(1);

/// The hint logged when compiling a component did not come from the cache
/// and took [`SLOW_COMPILE`] or longer; `None` when it was quick or cached.
pub fn slow_compile_hint(
    plugin: &str,
    manifest_path: Option<&Path>,
    took: Duration,
    cached: bool,
    has_cache: bool,
) -> Option<String> {
    if cached || took < SLOW_COMPILE {
        return None;
    }
    let manifest =
        manifest_path.map_or_else(|| "its plugin.toml".to_owned(), |p| p.display().to_string());
    let tail = if has_cache {
        "it is in the compile cache now; a changed component or sockhost \
         version compiles again"
    } else {
        "there is no compile cache (set XDG_CACHE_HOME or HOME), so it compiles \
         at every start"
    };
    Some(format!(
        "plugin {plugin}: compiling took {:.1} s at start-up; run `sockhost plugin \
         compile {manifest}` ahead of time so start-up loads it from the cache ({tail})",
        took.as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_or_cached_compiles_get_no_hint() {
        let m = Some(Path::new("p/plugin.toml"));
        assert_eq!(
            slow_compile_hint("p", m, Duration::from_millis(999), false, true),
            None
        );
        assert_eq!(
            slow_compile_hint("p", m, Duration::from_secs(12), true, true),
            None
        );
    }

    #[test]
    fn a_slow_cold_compile_names_the_command_and_the_manifest() {
        let m = Some(Path::new("examples/py/plugin.toml"));
        let hint = slow_compile_hint("py", m, Duration::from_millis(12_300), false, true).unwrap();
        assert!(hint.contains("plugin py: compiling took 12.3 s"), "{hint}");
        assert!(
            hint.contains("`sockhost plugin compile examples/py/plugin.toml`"),
            "{hint}"
        );
        assert!(hint.contains("in the compile cache now"), "{hint}");
        let hint = slow_compile_hint("py", None, SLOW_COMPILE, false, false).unwrap();
        assert!(hint.contains("compile its plugin.toml`"), "{hint}");
        assert!(hint.contains("no compile cache"), "{hint}");
    }
}
