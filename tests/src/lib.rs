//! Shared helpers for the end-to-end tests: where the repository's plugins
//! and fixtures are, and how to build runtimes and requests for them.

pub mod aioquic;
pub mod chromium;
pub mod congestion_trace;
pub mod daemon;
pub mod dns;
pub mod dns_relay;
pub mod netns;
pub mod nginx;
pub mod origin;
pub mod probed_proxy;
pub mod prometheus;
pub mod udp_relay;
pub mod unix_relay;

use std::path::{Path, PathBuf};

use sockhost::plugins::extension::{Header, Request, ResourceType};
use sockhost::plugins::{EngineOptions, PluginRuntime, RuntimeOptions};
use sockhost_policy::Manifest;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The manifest of first-party plugin `name`.
pub fn plugin(name: &str) -> PathBuf {
    repo().join("plugins").join(name).join("plugin.toml")
}

/// The manifest of hostile fixture `name`.
pub fn fixture(name: &str) -> PathBuf {
    repo()
        .join("plugins")
        .join("fixtures")
        .join(name)
        .join("plugin.toml")
}

/// A runtime with the on-demand allocator (many tests run in parallel; the
/// pooling allocator reserves address space per runtime) and a private data
/// directory.
pub fn runtime() -> (PluginRuntime, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let rt = PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            pooling: false,
            cache_dir: None,
        },
        data_dir: Some(data.path().to_owned()),
    })
    .expect("runtime");
    (rt, data)
}

/// The manifest at `path` with `edit` applied to its text, parsed as if it
/// were still at `path` (so its component path resolves the same).
pub fn manifest_with(path: &Path, edit: impl FnOnce(String) -> String) -> Manifest {
    let text = std::fs::read_to_string(path).expect("manifest readable");
    Manifest::parse(&edit(text), path).expect("edited manifest valid")
}

/// Replaces the value of `key = ...` in the TOML table `[table]` of a
/// manifest's text, adding the key if it is missing.
pub fn set_key(text: String, table: &str, key: &str, value: &str) -> String {
    let header = format!("[{table}]");
    let mut out = Vec::new();
    let mut in_table = false;
    let mut done = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if in_table && !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            in_table = trimmed.starts_with(&header);
        }
        if in_table && !done && trimmed.split('=').next().map(str::trim) == Some(key) {
            out.push(format!("{key} = {value}"));
            done = true;
            continue;
        }
        out.push(line.to_owned());
    }
    if !done {
        if !in_table {
            out.push(header);
        }
        out.push(format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// A runtime with two workers for a test's async part.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A host builder that reaches `origin` as `www.test` and trusts only its
/// CA.
pub fn origin_host(origin: &origin::TestOrigin) -> sockhost::host::HostBuilder {
    resolved_host("www.test", origin.addr.port(), &origin.ca_file)
}

/// A host builder that reaches `name:port` on 127.0.0.1 and trusts only
/// `ca_file`.
pub fn resolved_host(name: &str, port: u16, ca_file: &Path) -> sockhost::host::HostBuilder {
    sockhost::host::Host::builder()
        .resolve(
            format!("{name}:{port}:127.0.0.1")
                .parse::<sockhost::net::dns::ResolveOverride>()
                .expect("a valid override"),
        )
        .ca_file(ca_file.to_owned())
        .no_platform_roots()
}

/// A GET request for `url` with a few ordinary headers and a cookie.
pub fn request(id: u64, url: &str) -> Request {
    let h = |n: &str, v: &str| Header {
        name: n.into(),
        value: v.as_bytes().to_vec(),
    };
    Request {
        id,
        url: url.into(),
        method: "GET".into(),
        headers: vec![
            h("user-agent", "sockhost-tests"),
            h("accept", "*/*"),
            h("cookie", "session=secret"),
        ],
        resource_type: ResourceType::Other,
    }
}

/// The `sockhost` binary, built on first use (the tests of this crate run
/// the CLI, which lives in another package), or `SOCKHOST_BIN` when set
/// (a copy that a shared target directory cannot replace under the tests).
pub fn sockhost_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("SOCKHOST_BIN") {
                return PathBuf::from(bin);
            }
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "sockhost", "--bin", "sockhost"])
                .current_dir(repo())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the sockhost binary failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo().join("target"));
            target.join("debug").join("sockhost")
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::set_key;

    #[test]
    fn set_key_replaces_or_adds() {
        let t = "[plugin]\nname = \"x\"\n[limits]\nmemory = \"1 MiB\"\n".to_owned();
        let t2 = set_key(t.clone(), "limits", "memory", "\"2 MiB\"");
        assert!(t2.contains("memory = \"2 MiB\"") && !t2.contains("1 MiB"));
        let t3 = set_key(t.clone(), "plugin", "version", "\"1.0.0\"");
        assert!(t3.contains("[plugin]\nname = \"x\"\nversion = \"1.0.0\"\n[limits]"));
        let t4 = set_key(t, "capabilities", "storage-quota", "\"1 KiB\"");
        assert!(t4.ends_with("[capabilities]\nstorage-quota = \"1 KiB\"\n"));
    }
}
