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
    /// Work with plugin files, without a daemon: check, compile. (`sockhost
    /// plugins`, plural, steers a running daemon's plugins.)
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// The local CA the daemon signs interception certificates with.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// The running daemon's status: process, listeners, clients, pool,
    /// DNS, Alt-Svc, telemetry, memory, plugins and crashes, as tables.
    #[command(after_help = cli::control::EXIT_CODES)]
    Status {
        /// Print the status document as the daemon sent it (JSON, the
        /// schema of GET /v1/status).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        control: cli::control::ControlArgs,
    },
    /// Have the running daemon read its config again, as SIGHUP does: all
    /// or nothing; a config that does not load changes nothing and the
    /// reason names the file and the field.
    #[command(after_help = cli::control::EXIT_CODES)]
    Reload {
        #[command(flatten)]
        control: cli::control::ControlArgs,
    },
    /// Steer the running daemon's plugins: list, enable, disable. A
    /// separate command from `sockhost plugin` (singular), which works on
    /// plugin files and needs no daemon.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// What the running daemon's resolver answers for HOST: A, AAAA and
    /// HTTPS records, from its cache or fresh, and how long it took.
    #[command(after_help = cli::control::EXIT_CODES)]
    Dns {
        /// The host name (or address).
        host: String,
        /// Print the answer as JSON (the schema of GET /v1/dns).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        control: cli::control::ControlArgs,
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
enum PluginsCommand {
    /// Each plugin: world, version, state, instances, calls, call time,
    /// restarts, faults (the Plugins table of `sockhost status`).
    #[command(after_help = cli::control::EXIT_CODES)]
    List {
        #[command(flatten)]
        control: cli::control::ControlArgs,
    },
    /// Enable a plugin (also one disabled after faults, or backing off).
    #[command(after_help = cli::control::EXIT_CODES)]
    Enable {
        /// The plugin's name (as `sockhost plugins list` shows it).
        name: String,
        #[command(flatten)]
        control: cli::control::ControlArgs,
    },
    /// Disable a plugin until it is enabled again or the config reloaded:
    /// calls skip it.
    #[command(after_help = cli::control::EXIT_CODES)]
    Disable {
        /// The plugin's name.
        name: String,
        #[command(flatten)]
        control: cli::control::ControlArgs,
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
        Command::Status { json, control } => cli::status::run(&control, json),
        Command::Reload { control } => cli::reload::run(&control),
        Command::Plugins {
            command: PluginsCommand::List { control },
        } => cli::plugins::list(&control),
        Command::Plugins {
            command: PluginsCommand::Enable { name, control },
        } => cli::plugins::set(&control, &name, true),
        Command::Plugins {
            command: PluginsCommand::Disable { name, control },
        } => cli::plugins::set(&control, &name, false),
        Command::Dns {
            host,
            json,
            control,
        } => cli::dns::run(&control, &host, json),
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
            // No daemon is a state, not a failure: said as such, with an
            // exit code of its own.
            let control = e.downcast_ref::<sockhost::control::client::ControlError>();
            if let Some(ce) = control.filter(|ce| ce.is_not_running()) {
                eprintln!("{ce}");
                return ExitCode::from(cli::control::NOT_RUNNING_EXIT);
            }
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
