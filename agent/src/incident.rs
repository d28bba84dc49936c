//! The command line of `escapewatch replay` and `escapewatch timeline` (binary only): parse,
//! call the library, print.

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use escapewatch::{
    config::Config,
    detect::{Engine, Severity, policy::Policy},
    eventlog::LogFormat,
    replay::{self, AlertFilter, ReplayOptions},
    sink::{AlertTable, JsonLines},
    timeline::{self, TimelineQuery},
};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReplayFormat {
    /// JSON Lines, exactly as the live alert log.
    Json,
    /// One row per alert, for a terminal.
    Table,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Event logs (binary or JSON Lines, plain or .zst; `-` = standard input), read in order.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Only alerts at or after this time (RFC 3339, or 2026-11-23T01:02:03 / 2026-11-23 in UTC).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<OffsetDateTime>,
    /// Only alerts at or before this time.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<OffsetDateTime>,
    /// Only alerts of this container (id or id prefix; `host` = outside containers). Repeatable.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    container: Vec<String>,
    /// Only alerts of this rule id. Repeatable or comma-separated.
    #[arg(long, value_name = "RULE", value_delimiter = ',')]
    rule: Vec<String>,
    /// Only alerts of at least this severity (low, medium, high, critical).
    #[arg(long, value_name = "LEVEL", value_parser = severity_arg)]
    severity: Option<Severity>,
    #[arg(long, value_enum, default_value = "json")]
    format: ReplayFormat,
    /// Re-run with the rules and allowlists of this config file (today's policy) instead of
    /// the built-in defaults.
    #[arg(long, value_name = "CONFIG")]
    rules_from: Option<PathBuf>,
    /// Make damaged lines and unreadable or empty files fatal instead of warnings.
    #[arg(long)]
    strict: bool,
}

fn time_arg(s: &str) -> Result<OffsetDateTime, String> {
    replay::parse_time_arg(s).map_err(|e| e.to_string())
}

fn severity_arg(s: &str) -> Result<Severity, String> {
    replay::parse_severity(s)
}

/// Longest window side: a century is more than any log covers, and far from the end of the
/// dates `time` represents (year 9999), so no window arithmetic can overflow because of it.
const MAX_WINDOW_DAYS: i64 = 36_525;

/// `90`, `90s`, `5m`, `2h`, `1d`; at most [`MAX_WINDOW_DAYS`].
fn duration_arg(s: &str) -> Result<time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (90s, 5m, 2h, 1d)"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    match n.checked_mul(secs) {
        Some(total) if total <= MAX_WINDOW_DAYS * 86400 => Ok(time::Duration::seconds(total)),
        _ => Err(format!(
            "{s:?} is out of range: at most {MAX_WINDOW_DAYS}d (a century)"
        )),
    }
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let policy = match &args.rules_from {
        Some(path) => Config::load(path)?
            .policy()
            .with_context(|| format!("the rules of {}", path.display()))?,
        None => Policy::default(),
    };
    let new_engine = move || Engine::with_policy(policy.clone());
    let opts = ReplayOptions {
        strict: args.strict,
        filter: AlertFilter {
            since: args.since,
            until: args.until,
            containers: args.container,
            rules: args.rule,
            severity: args.severity,
        },
        new_engine: &new_engine,
    };
    let stats = match args.format {
        ReplayFormat::Json => {
            let mut out = JsonLines::open(None)?;
            let stats = replay::replay_with(&args.paths, &opts, |a| out.write(a))?;
            out.flush()?;
            stats
        }
        ReplayFormat::Table => {
            let mut out = AlertTable::stdout()?;
            let stats = replay::replay_with(&args.paths, &opts, |a| out.write(a))?;
            out.flush()?;
            stats
        }
    };
    tracing::info!(
        files = stats.read.files,
        events = stats.events,
        alerts = stats.alerts,
        printed = stats.printed,
        sessions = stats.sessions,
        skipped = stats.read.warnings,
        damaged_blocks = stats.read.damaged_blocks,
        "replay done"
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Event logs (binary or JSON Lines, plain or .zst; `-` = standard input), read in order.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Make damaged lines or blocks and unreadable or empty files fatal instead of warnings.
    #[arg(long)]
    strict: bool,
    /// Output format: jsonl (JSON Lines, for people and other tools) or binary (one binary
    /// log: convert a JSON Lines log, or join segments).
    #[arg(long, value_name = "FORMAT", default_value = "jsonl", value_parser = log_format_arg)]
    to: LogFormat,
}

fn log_format_arg(s: &str) -> Result<LogFormat, String> {
    match s {
        "binary" => Ok(LogFormat::Binary),
        "jsonl" => Ok(LogFormat::Jsonl),
        _ => Err(format!("{s:?} is not an event-log format (binary, jsonl)")),
    }
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    let stats = replay::export(&args.paths, args.strict, args.to, &mut out)?;
    tracing::info!(
        files = stats.read.files,
        headers = stats.headers,
        events = stats.events,
        skipped = stats.read.warnings,
        damaged_blocks = stats.read.damaged_blocks,
        "export done"
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TimelineFormat {
    /// Tables for a terminal (coloured when it is one and NO_COLOR is unset).
    Text,
    /// One self-contained HTML page.
    Html,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("subject").required(true).multiple(true).args(["container", "alert_event_ids", "rule"]))]
pub struct TimelineArgs {
    /// Event logs (plain or .zst; `-` = standard input).
    #[arg(required = true, value_name = "LOG")]
    logs: Vec<PathBuf>,
    /// Show this container's events (id or id prefix; `host` = processes outside containers).
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    container: Vec<String>,
    /// Center on the alerts citing these event ids (the `event_ids` of an alert).
    #[arg(long, value_name = "N,N", value_delimiter = ',')]
    alert_event_ids: Vec<u64>,
    /// Center on the alerts of this rule.
    #[arg(long, value_name = "RULE", value_delimiter = ',')]
    rule: Vec<String>,
    /// How much before the first alert to show (90s, 5m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration_arg)]
    before: time::Duration,
    /// How much after the last alert to show.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = duration_arg)]
    after: time::Duration,
    /// Nothing before this time.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<OffsetDateTime>,
    /// Nothing after this time.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<OffsetDateTime>,
    #[arg(long, value_enum, default_value = "text")]
    format: TimelineFormat,
    /// Write to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Keep at most this many events, and at most this many alerts named by the query and
    /// this many others (the rest is counted and reported). Bounds the memory used.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    max_events: usize,
    /// Make damaged lines and unreadable or empty files fatal instead of warnings.
    #[arg(long)]
    strict: bool,
}

pub fn timeline(args: TimelineArgs) -> anyhow::Result<()> {
    let q = TimelineQuery {
        containers: args.container,
        alert_event_ids: args.alert_event_ids,
        rules: args.rule,
        before: args.before,
        after: args.after,
        since: args.since,
        until: args.until,
        max_events: args.max_events,
        strict: args.strict,
    };
    let tl = timeline::build(&args.logs, &q)?;
    let color = args.output.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let text = match args.format {
        TimelineFormat::Text => timeline::text::render(&tl, color),
        TimelineFormat::Html => timeline::html::render(&tl),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the timeline to {}", path.display()))?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("cannot write the timeline to standard output")?,
    }
    tracing::info!(
        events = tl.events_read,
        shown = tl.rows.len(),
        alerts = tl.alerts.len(),
        events_not_shown = tl.omitted,
        alerts_not_kept = tl.alerts_omitted,
        "timeline done"
    );
    Ok(())
}
