//! The `sockhost` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser, Debug)]
#[command(
    name = "sockhost",
    version,
    about = "The socket process: every socket in one native process, networking plugins as sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fetch a URL through the full stack (DNS with HTTPS records, the
    /// Happy Eyeballs race over TCP and QUIC, TLS, HTTP/1.1, HTTP/2 or
    /// HTTP/3, extensions and probes) and write the body to stdout.
    Fetch(Box<cli::fetch::FetchArgs>),
    /// Run the socket process as a daemon: an HTTP proxy on loopback TCP
    /// and a Unix socket; every request goes through the full stack.
    Serve(Box<cli::serve::ServeArgs>),
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// The local CA the daemon signs interception certificates with.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Print benchmark figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Validate a plugin against its manifest and the WIT contract: prints
    /// world, WIT version, imports and what the policy grants, size and
    /// compile time; exits non-zero with a one-line reason otherwise.
    Check {
        /// The plugin's manifest (plugin.toml).
        manifest: PathBuf,
        /// Cache compiled code here (default: $XDG_CACHE_HOME/sockhost/wasm).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Compile from scratch, without the on-disk cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Compile plugins into the on-disk compile cache ahead of time, so
    /// that `serve` and `fetch` start without compiling them (a large
    /// component takes seconds); prints where and how long.
    Compile {
        /// The plugins' manifests (plugin.toml).
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
        /// The cache directory (default: $XDG_CACHE_HOME/sockhost/wasm).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Print the CA certificate (PEM), to install in a trust store; creates
    /// the CA in $XDG_DATA_HOME/sockhost/ca/ if there is none.
    Export,
    /// Replace the CA with a new one (new key and certificate) and print
    /// the new certificate (PEM).
    Rotate,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// sockhost vs curl against the same server (see scripts/bench-http.sh),
    /// and the request path with default plugins vs none.
    Http(Box<cli::bench_http::BenchHttpArgs>),
    /// Declarative rule evaluation with a 10,000-rule list.
    Rules {
        /// Evaluations measured per figure.
        #[arg(long, default_value_t = 100_000)]
        iterations: u32,
    },
    /// Plugin costs: compile (cold and from the cache), instantiate with
    /// the pooling allocator, one on-request call, memory per instance; of
    /// the plugins given with --manifest, or of the first-party plugins
    /// followed by more detailed figures (pooling vs on-demand, each
    /// world's hot function).
    Plugins {
        /// A plugin's manifest (plugin.toml); repeat for several.
        #[arg(long = "manifest", value_name = "FILE")]
        manifests: Vec<PathBuf>,
        /// The folder holding the first-party plugins' manifests (used
        /// without --manifest).
        #[arg(long, default_value = "plugins")]
        plugins: PathBuf,
        /// Calls measured per figure.
        #[arg(long, default_value_t = 20_000)]
        iterations: u32,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SOCKHOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fetch(args) => cli::fetch::run(*args),
        Command::Serve(args) => cli::serve::run(*args),
        Command::Plugin {
            command:
                PluginCommand::Check {
                    manifest,
                    cache_dir,
                    no_cache,
                },
        } => cli::check::run(&manifest, cache_dir, no_cache),
        Command::Plugin {
            command:
                PluginCommand::Compile {
                    manifests,
                    cache_dir,
                },
        } => cli::compile::run(&manifests, cache_dir),
        Command::Ca {
            command: CaCommand::Export,
        } => cli::ca::export(),
        Command::Ca {
            command: CaCommand::Rotate,
        } => cli::ca::rotate(),
        Command::Bench {
            command: BenchCommand::Http(args),
        } => cli::bench_http::run(*args),
        Command::Bench {
            command: BenchCommand::Rules { iterations },
        } => cli::bench_rules::run(iterations.max(1)),
        Command::Bench {
            command:
                BenchCommand::Plugins {
                    manifests,
                    plugins,
                    iterations,
                },
        } => cli::bench::run(&plugins, &manifests, iterations),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the reason, with those of its causes that it does
            // not already say (many messages include their source's).
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !msg.contains(&cause) {
                    msg = format!("{msg}: {cause}");
                }
            }
            let msg = msg.replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
