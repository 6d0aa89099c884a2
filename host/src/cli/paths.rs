//! Where sockhost keeps its files by default (XDG base directories).

use std::path::{Path, PathBuf};

use anyhow::Context;

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))
}

/// `$XDG_CACHE_HOME/sockhost/wasm`: compiled plugin code.
pub fn cache_dir() -> Option<PathBuf> {
    xdg("XDG_CACHE_HOME", ".cache").map(|d| d.join("sockhost").join("wasm"))
}

/// `$XDG_DATA_HOME/sockhost`: plugin storage and other state.
pub fn data_dir() -> Option<PathBuf> {
    xdg("XDG_DATA_HOME", ".local/share").map(|d| d.join("sockhost"))
}

/// The compile cache `plugin check` and `plugin compile` use: `explicit`
/// when given, else the default; created if missing. `None` when neither
/// is known (no `HOME`).
pub fn compile_cache(explicit: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = explicit.or_else(cache_dir) else {
        return Ok(None);
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
    Ok(Some(dir))
}

/// A scratch directory for the plugin storage a check or a compile must
/// not leave behind; removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `<tmp>/sockhost-<what>-<pid>`, not created: plugins granted storage
    /// create their folder in it.
    pub fn new(what: &str) -> Self {
        Self(std::env::temp_dir().join(format!("sockhost-{what}-{}", std::process::id())))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
