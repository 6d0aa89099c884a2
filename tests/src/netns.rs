//! Network namespaces for fault tests: a server runs in a namespace of its
//! own, behind a veth pair, and the client in the root namespace reaches it
//! over a real (virtual) link whose path the test can break with nftables
//! rules inside the namespace (drop UDP to a port, drop IPv6 TCP, …).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); [`available`] says
//! whether this machine has them.
//!
//! Names and addresses come from the process id `pid` and a process-wide
//! counter `n`, so that parallel tests in one process and test processes
//! running at once do not share a namespace, a link or a subnet:
//!
//! - namespace `sh-<pid>-<n>` (under `/run/netns`), root-side veth
//!   `sh<pid>-<n>` (at most 15 bytes, the kernel's limit: n ≤ 99999 with
//!   7-digit pids), namespace-side veth [`Namespace::LINK`];
//! - IPv4: 10.0.0.0/8 cut into /30s, the /30 numbered
//!   `(pid mod 32768) · 128 + (n mod 128)`; `.1` of it is the root side,
//!   `.2` the namespace side. As that wraps, a /30 that overlaps any route
//!   of the root namespace (another live namespace, or a real 10.x network
//!   of the machine) is skipped for the next `n`;
//! - IPv6: ULA `fd5e:<pid high 16 bits>:<pid low 16 bits>:<n mod 65536>::/64`,
//!   `::1` the root side, `::2` the namespace side, added `nodad` (no
//!   duplicate address detection, so usable at once instead of after a
//!   tentative second or two; the links' own `fe80::` addresses do go
//!   through it, and nothing here waits for them).
//!
//! Namespaces of a test process that was killed (`sh-<pid>-*` whose `pid`
//! is gone) are deleted before the first namespace of a new process is
//! made.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The next `n` of this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth pair to the root namespace; deleted
/// (with the pair) when dropped. Sockets still open in it keep the
/// namespace itself alive, unnamed and unreachable, until they close.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    host_link: String,
    /// The root namespace's end of the link (where the client is).
    pub host_v4: Ipv4Addr,
    /// The namespace's end of the link (where servers listen).
    pub ns_v4: Ipv4Addr,
    /// The root namespace's end of the link (where the client is).
    pub host_v6: Ipv6Addr,
    /// The namespace's end of the link (where servers listen).
    pub ns_v6: Ipv6Addr,
}

/// Whether a test that needs namespaces should run: they work here, or
/// the developer said to skip (`SOCKHOST_SKIP_NETNS`); anything else fails
/// the test, naming the reason (CI runs as root with iproute2 and
/// nftables: scripts/setup.sh).
pub fn netns() -> bool {
    match available() {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var_os("SOCKHOST_SKIP_NETNS").is_some(),
                "network namespaces are not available: {why} \
                 (run as root after scripts/setup.sh, or set SOCKHOST_SKIP_NETNS=1)"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Drops what `rule` (an nft match, e.g. `udp dport 443`) matches on its
/// way into `ns`.
pub fn drop_input(ns: &Namespace, rule: &str) {
    // nft 1.0 wants a newline (or `;`) after a chain's closing brace.
    ns.nft(&format!(
        "table inet faults {{\n chain input {{ type filter hook input priority 0; {rule} drop; }}\n}}\n"
    ))
    .unwrap();
}

/// A fresh namespace with an origin in it on `::` (both of its addresses)
/// naming `names`, serving HTTP/3 too when `h3`, and with `drop` (an nft
/// match, `{port}` standing for the origin's port) dropped on input.
pub fn origin_behind(
    names: &[&str],
    h3: bool,
    drop: Option<&str>,
) -> (Namespace, crate::origin::TestOrigin) {
    use crate::origin::{OriginOptions, TestOrigin};
    let ns = Namespace::create().expect("a network namespace");
    let origin = TestOrigin::start_in(
        &ns,
        OriginOptions {
            names: names.iter().map(|n| n.to_string()).collect(),
            listen: Ipv6Addr::UNSPECIFIED.into(),
            h3,
            ..OriginOptions::default()
        },
    );
    if let Some(rule) = drop {
        drop_input(
            &ns,
            &rule.replace("{port}", &origin.addr.port().to_string()),
        );
    }
    (ns, origin)
}

/// Whether namespaces can be made here (root, `ip`, `nft`, and the kernel
/// lets us), with the reason if not. Checked once per process, by making
/// one.
pub fn available() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let euid = rustix::process::geteuid();
            if !euid.is_root() {
                return Err(format!(
                    "network namespaces need root (euid is {})",
                    euid.as_raw()
                ));
            }
            for (tool, version, package) in
                [("ip", "-V", "iproute2"), ("nft", "--version", "nftables")]
            {
                command(tool, &[version], None)
                    .map_err(|e| format!("{e} (install {package}: scripts/setup.sh)"))?;
            }
            let probe =
                Namespace::create().map_err(|e| format!("cannot make a network namespace: {e}"))?;
            probe
                .nft("table inet sockhost_probe {}")
                .map_err(|e| format!("nftables does not work in a namespace: {e}"))
        })
        .clone()
}

impl Namespace {
    /// The namespace side of the veth pair, inside the namespace (for
    /// rules and qdiscs on it, e.g. `tc qdisc add dev veth0 … netem`).
    pub const LINK: &'static str = "veth0";

    /// Makes a namespace with a veth pair to the root namespace, both ends
    /// up with their IPv4 and IPv6 addresses, `lo` up inside, and returns
    /// once a datagram went there and back over each family.
    pub fn create() -> Result<Namespace, String> {
        static SWEPT: Once = Once::new();
        SWEPT.call_once(remove_stale);
        let pid = std::process::id();
        let (n, subnet) = free_subnet(pid)?;
        let name = format!("sh-{pid}-{n}");
        let host_link = format!("sh{pid}-{n}");
        if host_link.len() > 15 {
            return Err(format!("link name {host_link} is longer than 15 bytes"));
        }
        let base = u32::from(subnet);
        let v6 = |host: u16| {
            Ipv6Addr::new(
                0xfd5e,
                (pid >> 16) as u16,
                pid as u16,
                n as u16,
                0,
                0,
                0,
                host,
            )
        };
        {
            // Serialized within the process: the first `ip netns add` makes
            // /run/netns a shared mount point, and two doing that at once
            // can stack mounts or fail.
            static ADD: Mutex<()> = Mutex::new(());
            let _one = ADD.lock().unwrap_or_else(|e| e.into_inner());
            ip(&["netns", "add", &name])?;
        }
        // From here on, dropping `ns` (on an error too) deletes it all.
        let ns = Namespace {
            name,
            host_link,
            host_v4: Ipv4Addr::from(base + 1),
            ns_v4: Ipv4Addr::from(base + 2),
            host_v6: v6(1),
            ns_v6: v6(2),
        };
        let (name, host) = (ns.name.as_str(), ns.host_link.as_str());
        let v4 = |a: Ipv4Addr| format!("{a}/30");
        let v6 = |a: Ipv6Addr| format!("{a}/64");
        // The peer is made directly inside the namespace, so a process
        // killed half-way leaves no veth in the root namespace.
        ip(&[
            "link",
            "add",
            host,
            "type",
            "veth",
            "peer",
            "name",
            Self::LINK,
            "netns",
            name,
        ])?;
        ip(&["addr", "add", &v4(ns.host_v4), "dev", host])?;
        ip(&["-6", "addr", "add", &v6(ns.host_v6), "dev", host, "nodad"])?;
        ip(&["link", "set", host, "up"])?;
        ip(&["-n", name, "addr", "add", &v4(ns.ns_v4), "dev", Self::LINK])?;
        ip(&[
            "-n",
            name,
            "-6",
            "addr",
            "add",
            &v6(ns.ns_v6),
            "dev",
            Self::LINK,
            "nodad",
        ])?;
        ip(&["-n", name, "link", "set", Self::LINK, "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ns.wait_until_reachable()?;
        Ok(ns)
    }

    /// The namespace's name (`ip netns exec <name> …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a fresh thread that first moved itself into the
    /// namespace, and returns what it returns. Sockets made in `f` belong
    /// to the namespace for good, whichever thread uses them later; so do
    /// sockets made by threads `f` spawns (a runtime's workers), as a new
    /// thread starts in its parent's namespace. A panic in `f` is resumed
    /// here.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        let handle = File::open(&path)
            .unwrap_or_else(|e| panic!("opening namespace {}: {e}", path.display()));
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    handle.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap_or_else(|e| panic!("setns into {}: {e}", path.display()));
                f()
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Applies an nftables ruleset inside the namespace (`nft -f -`), e.g.
    /// `table inet t { chain c { type filter hook input priority 0;
    /// udp dport 443 drop; }; }` (nft 1.0 wants the `;` or a newline after
    /// the chain's brace).
    pub fn nft(&self, ruleset: &str) -> Result<(), String> {
        command(
            "ip",
            &["netns", "exec", &self.name, "nft", "-f", "-"],
            Some(ruleset),
        )
        .map(drop)
    }

    /// Runs `program args…` inside the namespace (`ip netns exec`) and
    /// returns its standard output.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        command("ip", &all, None)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// Waits until neither end's IPv6 address is tentative and a UDP
    /// datagram crosses the link and comes back, over each family.
    fn wait_until_reachable(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        // `nodad` means never tentative; checked anyway, as a kernel or
        // `ip` that ignored it would give EADDRNOTAVAIL on bind below.
        // Only our addresses: the links' own fe80:: ones stay tentative
        // for a second or two, and nothing here needs them.
        let (host_v6, ns_v6) = (self.host_v6.to_string(), self.ns_v6.to_string());
        loop {
            let host = ip(&[
                "-6",
                "addr",
                "show",
                "dev",
                &self.host_link,
                "to",
                &host_v6,
                "tentative",
            ])?;
            let inside = ip(&[
                "-n",
                &self.name,
                "-6",
                "addr",
                "show",
                "dev",
                Self::LINK,
                "to",
                &ns_v6,
                "tentative",
            ])?;
            if host.trim().is_empty() && inside.trim().is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "IPv6 addresses of {} still tentative after 5 s",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.round_trip(self.host_v4.into(), self.ns_v4.into(), deadline)?;
        self.round_trip(self.host_v6.into(), self.ns_v6.into(), deadline)
    }

    /// Sends a datagram from `from` (root side) to `to` (inside) until the
    /// echo comes back, or `deadline`.
    fn round_trip(&self, from: IpAddr, to: IpAddr, deadline: Instant) -> Result<(), String> {
        let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", self.name);
        let echo = self
            .run(|| UdpSocket::bind(SocketAddr::new(to, 0)))
            .map_err(|e| fail(&format!("bind {to} inside"), e))?;
        let to = echo.local_addr().map_err(|e| fail("local_addr", e))?;
        let client = UdpSocket::bind(SocketAddr::new(from, 0))
            .map_err(|e| fail(&format!("bind {from}"), e))?;
        let tick = Some(Duration::from_millis(20));
        echo.set_read_timeout(tick)
            .and_then(|()| client.set_read_timeout(tick))
            .map_err(|e| fail("set_read_timeout", e))?;
        let mut buf = [0u8; 16];
        loop {
            // Errors (no neighbour yet) are retried like losses.
            let _ = client.send_to(b"probe", to);
            if let Ok((_, asker)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(b"echo", asker);
            }
            if client.recv(&mut buf).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: no UDP round trip {from} -> {to} over the veth pair",
                    self.name
                ));
            }
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the link first frees the addresses at once: the
        // namespace itself lives on while sockets made in it are open.
        let _ = ip(&["link", "delete", &self.host_link]);
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!("netns: {e}");
        }
    }
}

/// The next `n` whose /30 overlaps no route of the root namespace, and
/// that /30's first address.
fn free_subnet(pid: u32) -> Result<(u32, Ipv4Addr), String> {
    for _ in 0..128 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let index = (pid % 32768) << 7 | (n % 128);
        let subnet = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) | index << 2);
        let prefix = format!("{subnet}/30");
        // Routes inside the /30, then routes containing it (but the
        // default route, which contains everything).
        let inside = ip(&["-4", "-o", "route", "show", "table", "all", "root", &prefix])?;
        let around = ip(&[
            "-4", "-o", "route", "show", "table", "all", "match", &prefix,
        ])?;
        let taken = !inside.trim().is_empty()
            || around
                .lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with("default"));
        if !taken {
            return Ok((n, subnet));
        }
    }
    Err(format!(
        "no free /30 in 10.0.0.0/8 for pid {pid}: 128 candidates overlap routes"
    ))
}

/// Deletes `sh-<pid>-<n>` namespaces whose process is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("sh-")
            .and_then(|rest| rest.split_once('-'))
            .filter(|(_, n)| n.parse::<u32>().is_ok())
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            // Another process may be sweeping the same one.
            let _ = ip(&["netns", "delete", &name]);
        }
    }
}

/// `ip args…`.
fn ip(args: &[&str]) -> Result<String, String> {
    command("ip", args, None)
}

/// Runs `program args…` with `input` on its standard input; its standard
/// output, or an error naming the command with its standard error.
fn command(program: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let shown = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{shown}` did not start: {e}"))?;
    // Written before waiting, and the pipe closed by the drop so the
    // program sees the end; a failed write still waits, leaving no zombie.
    let wrote = match (input, child.stdin.take()) {
        (Some(text), Some(mut stdin)) => stdin.write_all(text.as_bytes()),
        _ => Ok(()),
    };
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{shown}`: {e}"))?;
    if let Err(e) = wrote {
        return Err(format!(
            "`{shown}`: writing its input: {e} ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
