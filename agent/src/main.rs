//! The `escapewatch` command: parse arguments, call the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use escapewatch::{
    config::{Config, DEFAULT_CONFIG_PATH},
    daemon::{self, RunOptions},
    detect::rules,
};

mod incident;

/// Runtime container-escape detector for Linux hosts (eBPF).
///
/// Kernel programs watch the ways a process can leave its container; the agent attributes every
/// event to a container and raises alerts with stable rule ids. Start with `escapewatch run` (as
/// root); read past activity with `escapewatch replay EVENT-LOG`.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the detector in the foreground (needs root or CAP_BPF+CAP_PERFMON).
    ///
    /// Alerts are written as JSON Lines to --alert-log (default: standard output); with
    /// --event-log every enriched kernel event is recorded for later replay. SIGTERM or SIGINT
    /// detaches, drains the kernel buffers, flushes both logs and exits 0. Logs go to stderr
    /// (level from RUST_LOG, default info).
    Run {
        /// Config file (TOML). Default: /etc/escapewatch/config.toml if it exists.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Record enriched events (JSON Lines, appended) to PATH. Overrides logs.event_log.
        #[arg(long, value_name = "PATH")]
        event_log: Option<PathBuf>,
        /// Write alerts (JSON Lines, appended) to PATH instead of stdout. Overrides logs.alert_log.
        #[arg(long, value_name = "PATH")]
        alert_log: Option<PathBuf>,
        /// Kernel BTF file to resolve struct offsets from, for kernels without
        /// /sys/kernel/btf/vmlinux (e.g. a file from btfhub for this exact kernel).
        #[arg(long, value_name = "FILE")]
        btf: Option<PathBuf>,
    },
    /// Run recorded event logs through the detection engine and print the alerts.
    ///
    /// The same engine as `run`: for the same rules the output equals the live alert log byte
    /// for byte. Plain and zstd logs, `-` for standard input; the rotated segments of a log
    /// are read oldest first whatever order they are given in (`events.jsonl*` works).
    /// Damaged lines are reported with file:line and skipped (`--strict`: fatal).
    Replay(incident::ReplayArgs),
    /// Show what happened around an alert: the process tree and the ordered events of a
    /// container (or of an alerted host process tree), in the terminal or as one HTML page.
    Timeline(incident::TimelineArgs),
    /// List the detection rules: id, severity, MITRE ATT&CK technique and explanation.
    Rules,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(
    config: Option<PathBuf>,
    event_log: Option<PathBuf>,
    alert_log: Option<PathBuf>,
    btf: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = Config::load_or_default(config.as_deref())
        .with_context(|| format!("loading the configuration (default {DEFAULT_CONFIG_PATH})"))?;
    let opts = RunOptions {
        event_log: event_log.or_else(|| config.logs.event_log.clone()),
        alert_log: alert_log.or_else(|| config.logs.alert_log.clone()),
        btf,
        config,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(daemon::run(opts))?;
    Ok(())
}

fn print_rules() {
    for info in rules::infos() {
        println!("{}", info.id);
        println!("  severity: {}", info.severity.as_str());
        println!("  mitre:    {}", info.mitre);
        println!("  title:    {}", info.title);
        println!("  events:   {}", info.event_kinds.join(", "));
        println!("  {}\n", info.explanation);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run {
            config,
            event_log,
            alert_log,
            btf,
        } => run(config, event_log, alert_log, btf),
        Command::Replay(args) => incident::replay(args),
        Command::Timeline(args) => incident::timeline(args),
        Command::Rules => {
            print_rules();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("escapewatch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
