//! The `escapewatch` command: parse arguments, call the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use escapewatch::{
    config::{Config, DEFAULT_CONFIG_PATH, PrecisionHook},
    daemon::{self, RunOptions},
};

mod bench_floor;
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
    Run(RunArgs),
    /// Check a config file (TOML) and print the policy it gives; exit 1 naming the file, line
    /// and key of the first error.
    CheckConfig {
        #[arg(value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        path: PathBuf,
    },
    /// Run recorded event logs through the detection engine and print the alerts.
    ///
    /// The same engine as `run`: for the same rules the output equals the live alert log byte
    /// for byte. Binary and JSON Lines logs (told apart by content), plain or zstd, `-` for
    /// standard input; the rotated segments of a log are read oldest first whatever order
    /// they are given in (`events.jsonl*` works). Damaged lines are reported with file:line,
    /// damaged blocks of a binary log with file and byte offset, and skipped (`--strict`:
    /// fatal).
    Replay(incident::ReplayArgs),
    /// Write recorded event logs (binary or JSON Lines, plain or zstd, `-` for standard
    /// input) as JSON Lines on standard output: a header line per segment, then one event a
    /// line, the format of `--event-log-format jsonl`, which replay reads back (`--to
    /// binary`: as one binary log instead).
    ///
    /// Rotated segments are read oldest first, as replay does. Damaged lines or blocks are
    /// reported (file and line or byte offset) and skipped (`--strict`: fatal).
    Export(incident::ExportArgs),
    /// Show what happened around an alert: the process tree and the ordered events of a
    /// container (or of an alerted host process tree), in the terminal or as one HTML page.
    Timeline(incident::TimelineArgs),
    /// List the detection rules: id, severity, MITRE ATT&CK technique, explanation, the hooks
    /// that feed each on this kernel and whether it applies here.
    Rules {
        #[arg(long, value_enum, default_value_t = RulesFormat::Text)]
        format: RulesFormat,
    },
    /// Print the security posture of every running container (privileged, host namespaces,
    /// added capabilities, seccomp, AppArmor, sensitive host mounts) with the CIS Docker
    /// Benchmark item each finding maps to. Reads the runtimes' state (Docker's API,
    /// containerd's task bundles, runc/crun state directories, as config `[workload]`
    /// names them); needs no eBPF.
    Audit {
        /// Config file (TOML) whose `[workload]` names the runtimes' paths.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// One JSON object (`containers`, `problems`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// For `cargo xtask bench` only: attach the raw-syscall design floor (two raw tracepoints
    /// that drop every syscall after one map lookup), print `ready`, wait for SIGINT/SIGTERM.
    #[command(hide = true)]
    BenchFloor,
    /// Print the JSON Schema (draft 2020-12) of alert lines or of event-log lines (the same
    /// files as schema/*.schema.json in the source tree).
    Schema {
        #[arg(value_enum)]
        which: escapewatch::schema::Which,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RulesFormat {
    Text,
    /// An array of rules, for tools.
    Json,
    /// The README's rule table.
    Markdown,
}

/// `--disable-hooks` as one value (clap would take a bare `Vec` for repeated values).
#[derive(Debug, Clone)]
struct HookList(Vec<PrecisionHook>);

/// `escapewatch run` (see its help).
#[derive(Args)]
struct RunArgs {
    /// Config file (TOML). Default: /etc/escapewatch/config.toml if it exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Record enriched events (appended) to PATH, in --event-log-format. Overrides
    /// logs.event_log.
    #[arg(long, value_name = "PATH")]
    event_log: Option<PathBuf>,
    /// Format of new event-log segments: binary (default: checksummed blocks of
    /// length-prefixed records, the cheap one to write and fast to replay) or jsonl (JSON
    /// Lines). replay, timeline and export read both, told apart by content;
    /// `escapewatch export` turns a binary log into JSON Lines. Overrides
    /// logs.event_log_format.
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
    event_log_format: Option<escapewatch::eventlog::LogFormat>,
    /// Write alerts (JSON Lines, appended) to PATH instead of stdout. Overrides logs.alert_log.
    #[arg(long, value_name = "PATH")]
    alert_log: Option<PathBuf>,
    /// Kernel BTF file to resolve struct offsets from, for kernels without
    /// /sys/kernel/btf/vmlinux (e.g. a file from btfhub for this exact kernel).
    #[arg(long, value_name = "FILE")]
    btf: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on ADDR (default 127.0.0.1:9464, loopback;
    /// port 0 picks a free one). Overrides metrics.listen.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Precision hook types not to use even where the kernel offers them, comma-separated
    /// from fentry, kprobe, lsm (empty: none); their rules are served by the next
    /// alternative or the fallback tracepoints (the start-up log says which hook serves
    /// each rule). Overrides hooks.disable.
    #[arg(
        long,
        value_name = "TYPES",
        env = "ESCAPEWATCH_DISABLE_HOOKS",
        value_parser = |s: &str| PrecisionHook::parse_list(s).map(HookList)
    )]
    disable_hooks: Option<HookList>,
}

fn parse_log_format(s: &str) -> Result<escapewatch::eventlog::LogFormat, String> {
    use escapewatch::eventlog::LogFormat;
    match s {
        "binary" => Ok(LogFormat::Binary),
        "jsonl" => Ok(LogFormat::Jsonl),
        _ => Err(format!("{s:?} is not an event-log format (binary, jsonl)")),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let RunArgs {
        config,
        event_log,
        event_log_format,
        alert_log,
        btf,
        metrics_addr,
        disable_hooks,
    } = args;
    let config_path =
        config.or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()));
    let config = Config::load_or_default(config_path.as_deref())
        .with_context(|| format!("loading the configuration (default {DEFAULT_CONFIG_PATH})"))?;
    let opts = RunOptions {
        config,
        config_path,
        event_log,
        event_log_format,
        alert_log,
        metrics_addr,
        btf,
        disable_hooks: disable_hooks.map(|HookList(h)| h),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(daemon::run(opts))?;
    Ok(())
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!("{}: OK", path.display());
    for dropin in config.sources.iter().skip(1) {
        println!("  merged drop-in {}", dropin.display());
    }
    if !config.hooks.disable.is_empty() {
        let names: Vec<&str> = config.hooks.disable.iter().map(|h| h.kind_name()).collect();
        println!(
            "  hooks not used: {} (their rules go to the next hook or the fallback)",
            names.join(", ")
        );
    }
    let policy = config.policy()?;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    for info in escapewatch::detect::all_rule_infos() {
        let state = if policy.enabled(info.id) {
            "enabled"
        } else {
            "disabled"
        };
        let allow = config.rules.get(info.id).map_or(0, |r| r.allow.len());
        println!(
            "  {:<24} {state:<8} severity {:<8} allowlist entries: {allow}",
            info.id,
            policy.severity(info).as_str()
        );
        let Some(settings) = config.rules.get(info.id) else {
            continue;
        };
        let sources = config.allow_sources.get(info.id);
        for (i, a) in settings.allow.iter().enumerate() {
            let from = sources
                .and_then(|s| s.get(i))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            println!(
                "    allow[{i}] {}  (from {from})",
                describe_allow(a, &today)
            );
        }
    }
    Ok(())
}

/// An allowlist entry on one line: its terms, expiry and reason.
fn describe_allow(a: &escapewatch::detect::policy::AllowSettings, today: &str) -> String {
    let mut terms = Vec::new();
    let mut term = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            terms.push(format!("{k}={v:?}"));
        }
    };
    term("container_id", &a.container_id);
    term("runtime", &a.runtime.map(|r| r.as_str().to_owned()));
    term("cgroup", &a.cgroup);
    term("exe", &a.exe);
    term("k8s_namespace", &a.k8s_namespace);
    term("pod", &a.pod);
    term("image", &a.image);
    term("container_name", &a.container_name);
    for (k, v) in &a.labels {
        terms.push(format!("labels.{k}={v:?}"));
    }
    let expiry = match &a.expires {
        Some(d) if d.as_str() < today => format!(" expired {d} (matches only earlier events)"),
        Some(d) => format!(" until {d}"),
        None => String::new(),
    };
    format!("{}{expiry} reason={:?}", terms.join(" "), a.reason)
}

fn audit(config: Option<&std::path::Path>, json: bool) -> anyhow::Result<()> {
    let config = Config::load_or_default(config)?;
    let a = escapewatch::audit::audit(&config.workload);
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
    } else {
        print!("{}", escapewatch::audit::table(&a));
    }
    Ok(())
}

fn print_rules(format: RulesFormat) {
    use escapewatch::rules_report::{report, report_json, report_markdown};
    match format {
        RulesFormat::Text => print!("{}", report()),
        RulesFormat::Json => print!("{}", report_json()),
        RulesFormat::Markdown => print!("{}", report_markdown()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig { path } => check_config(&path),
        Command::Replay(args) => incident::replay(args),
        Command::Timeline(args) => incident::timeline(args),
        Command::Export(args) => incident::export(args),
        Command::Rules { format } => {
            print_rules(format);
            Ok(())
        }
        Command::Audit { config, json } => audit(config.as_deref(), json),
        Command::BenchFloor => bench_floor::run().map_err(anyhow::Error::from),
        Command::Schema { which } => {
            print!("{}", escapewatch::schema::schema_text(which));
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
