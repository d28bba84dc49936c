//! The agent's configuration file (TOML). Unknown keys are errors; CLI flags override it.
//!
//! Every error names the file, the line and the key: syntax and type errors through toml's own
//! message, semantic ones (a ring size that is not a power of two, an unknown rule id, a bad
//! glob) by looking the key up again in a span-keeping parse of the same text.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use escapewatch_common::maps::{RING_CRITICAL_DEFAULT_BYTES, RING_LIFECYCLE_DEFAULT_BYTES};
use serde::Deserialize;

use crate::{
    detect::{
        self, Policy,
        policy::{PolicyError, RuleSettings},
    },
    safe_open::{self, Refused},
};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/escapewatch/config.toml";
/// Loopback by default: exposing the metrics is an explicit choice.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing config file {path}: {problem}")]
    Unsafe {
        path: PathBuf,
        problem: UnsafeConfig,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}{}: `{key}` {problem}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        problem: String,
    },
}

/// Largest config file read. Real ones are a few KiB; a bound means `/dev/zero` or a runaway
/// generated file is an error at once instead of memory read forever.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a config file is not read at all. The config is the detector's policy (allowlists
/// switch alerts off), so only its owner may be able to change it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeConfig {
    #[error(
        "it is a symbolic link (not followed: whoever can change the link chooses the policy); give the file it points to"
    )]
    Symlink,
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is writable by every user (mode {mode:04o}): anyone could change the policy")]
    WorldWritable { mode: u32 },
    #[error("it is owned by uid {owner}; the agent (uid {agent}) reads only files owned by {}", if *agent == 0 { "root" } else { "itself or root" })]
    Owner { owner: u32, agent: u32 },
    #[error("it is larger than the {max}-byte limit ({size} bytes)")]
    TooLarge { size: u64, max: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub logs: Logs,
    pub ring_buffers: RingBuffers,
    pub metrics: Metrics,
    pub hooks: Hooks,
    pub node: Node,
    /// Where the container runtimes are asked for workload metadata.
    pub workload: crate::enrich::workload::RuntimePaths,
    /// Output sinks fed by the fan-out: webhooks, syslog/journald.
    pub sinks: crate::sink::SinksConfig,
    pub alerts: Alerts,
    /// Runtime and orchestrator API endpoints watched for connects from containers.
    pub runtime_api: RuntimeApi,
    /// Per-rule settings, keyed by rule id: `[rules.namespace-join-host]`.
    pub rules: BTreeMap<String, RuleSettings>,
    /// The files this config was merged from: the main file, then its `config.d/*.toml`
    /// drop-ins in name order.
    #[serde(skip)]
    pub sources: Vec<PathBuf>,
    /// For each rule, the file each of its allowlist entries came from (in entry order).
    #[serde(skip)]
    pub allow_sources: BTreeMap<String, Vec<PathBuf>>,
}

/// `<dir of main>/config.d`: drop-in files platform teams ship beside the main config.
pub fn dropin_dir(main: &Path) -> PathBuf {
    main.parent().unwrap_or(Path::new(".")).join("config.d")
}

/// The `*.toml` files of `dir` in name order (none when it does not exist).
fn dropin_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// `over` into `base`: tables merge key by key, arrays are appended (allowlists, disabled
/// hooks), any other value of a later file replaces the earlier one.
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (Some(toml::Value::Array(b)), toml::Value::Array(o)) => b.extend(o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// Serve /metrics, /healthz and /readyz.
    pub enabled: bool,
    /// Address to listen on. Loopback by default; `0.0.0.0:9464` exposes it to the network.
    pub listen: SocketAddr,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            listen: DEFAULT_METRICS_ADDR.parse().expect("valid default address"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Logs {
    /// Where enriched events are recorded (JSON Lines). None: not recorded.
    pub event_log: Option<PathBuf>,
    /// Where alerts go (JSON Lines). None: standard output.
    pub alert_log: Option<PathBuf>,
    /// The event log is rotated when it reaches this size (bytes); rotated segments are
    /// zstd-compressed.
    pub event_log_max_bytes: u64,
    /// Rotated event-log segments kept; older ones are deleted.
    pub event_log_keep: u32,
    /// Format of new event-log segments: `binary` (default; checksummed blocks, the cheap
    /// one to write and to replay) or `jsonl` (JSON Lines). Replay reads both.
    pub event_log_format: crate::eventlog::LogFormat,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            event_log: None,
            alert_log: None,
            event_log_max_bytes: 100 * 1024 * 1024,
            event_log_keep: 10,
            event_log_format: crate::eventlog::LogFormat::Binary,
        }
    }
}

/// What happens to alerts before they go out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    /// Identical alerts (rule, container, executable, details) within this many ms of the
    /// first become one summary with a count; 0: off.
    pub coalesce_window_ms: u64,
}

/// The runtime and orchestrator APIs a container must not reach.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeApi {
    /// TCP ports whose IPv4/IPv6 connects the kernel reports (the address is judged in
    /// userspace: loopback in the host's network namespace, or an address of the node).
    pub ports: Vec<u16>,
    /// Host paths of runtime API Unix sockets: a connect that reaches one of them (same
    /// device and inode), under whatever name the container used, is reported.
    pub sockets: Vec<PathBuf>,
}

/// Docker (plain and TLS), the kubelet (API, read-only, healthz) and kube-proxy's metrics.
pub const DEFAULT_RUNTIME_API_PORTS: [u16; 5] = [2375, 2376, 10250, 10255, 10248];

/// The runtimes' API sockets at their usual places.
pub const DEFAULT_RUNTIME_SOCKETS: [&str; 8] = [
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/podman/podman.sock",
    "/run/cri-dockerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/dockershim.sock",
];

impl Default for RuntimeApi {
    fn default() -> Self {
        RuntimeApi {
            ports: DEFAULT_RUNTIME_API_PORTS.to_vec(),
            sockets: DEFAULT_RUNTIME_SOCKETS.iter().map(PathBuf::from).collect(),
        }
    }
}

impl RuntimeApi {
    /// What is wrong with it, as `(key, problem)`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let max = escapewatch_common::maps::WATCHED_PORTS_ENTRIES as usize;
        if self.ports.len() > max {
            return Some((
                "runtime_api.ports",
                format!(
                    "holds {} ports; the kernel map takes at most {max}",
                    self.ports.len()
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for &p in &self.ports {
            if p == 0 {
                return Some(("runtime_api.ports", "port 0 is not a port".into()));
            }
            if !seen.insert(p) {
                return Some(("runtime_api.ports", format!("port {p} is listed twice")));
            }
        }
        self.sockets.iter().find(|s| !s.is_absolute()).map(|s| {
            (
                "runtime_api.sockets",
                format!("{} is not an absolute host path", s.display()),
            )
        })
    }
}

/// How alerts name the node they come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    /// The node's name in alerts. Unset: `NODE_NAME` from the environment (the DaemonSet
    /// sets it from the downward API), else the hostname.
    pub name: Option<String>,
    /// The cluster's name in alerts; unset: none.
    pub cluster: Option<String>,
}

/// Which kernel hooks the agent may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hooks {
    /// Precision hook types not to use even where the kernel offers them: their rules are then
    /// served by the next alternative or the tracepoint fallback. For a kernel whose fentry
    /// trampolines or BPF LSM misbehave, or to check the fallbacks on a kernel that has both.
    pub disable: Vec<PrecisionHook>,
}

/// The hook types every program of which has a fallback (the only ones that can be disabled
/// without leaving a rule blind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionHook {
    /// fentry (BPF trampolines, kernel 5.5+ with BTF).
    Fentry,
    /// kprobe (the precision hook's next choice where fentry is refused).
    Kprobe,
    /// BPF LSM (needs `bpf` in the active LSM list).
    Lsm,
}

impl PrecisionHook {
    /// `fentry,lsm` as the CLI and ESCAPEWATCH_DISABLE_HOOKS give it; empty: none.
    pub fn parse_list(list: &str) -> Result<Vec<PrecisionHook>, String> {
        use clap::ValueEnum as _;
        list.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                PrecisionHook::from_str(t, true)
                    .map_err(|_| format!("{t:?} is not one of fentry, kprobe, lsm"))
            })
            .collect()
    }

    /// As [`escapewatch_common::programs::Hook::kind_name`] spells it.
    pub fn kind_name(self) -> &'static str {
        match self {
            PrecisionHook::Fentry => "fentry",
            PrecisionHook::Kprobe => "kprobe",
            PrecisionHook::Lsm => "lsm",
        }
    }
}

/// Also what the loader sizes the kernel's ring buffers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RingBuffers {
    /// Bytes of the buffer for namespace and escape-primitive events (power of two, ≥ 4096).
    pub critical_bytes: u32,
    /// Bytes of the buffer for process lifecycle events (power of two, ≥ 4096).
    pub lifecycle_bytes: u32,
}

impl Default for RingBuffers {
    fn default() -> Self {
        RingBuffers {
            critical_bytes: RING_CRITICAL_DEFAULT_BYTES,
            lifecycle_bytes: RING_LIFECYCLE_DEFAULT_BYTES,
        }
    }
}

impl Config {
    /// Parse and validate `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            // toml's message names the line, column and key.
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(text, path)?;
        Ok(config)
    }

    /// Parse the bytes of a config file read from `path` (they must be UTF-8).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        Self::parse(text, path)
    }

    /// Read, check and parse `path`. Refused before a byte is read: a link, anything but a
    /// regular file (a FIFO would block a SIGHUP reload forever), a file everyone can write,
    /// one owned by neither root nor the agent's user, one over [`MAX_CONFIG_BYTES`].
    ///
    /// Then the drop-ins of `config.d/` beside it, in name order, each read with the same
    /// checks and validated on its own (its errors name it, its line and key), merged over
    /// the main file: tables key by key, arrays (allowlists) appended, other values replaced.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = read_config_file(path)?;
        let mut config = Self::from_bytes(&bytes, path)?;
        config.note_source(path);
        let dropins = dropin_files(&dropin_dir(path))?;
        if dropins.is_empty() {
            return Ok(config);
        }
        let table = |bytes: &[u8], p: &Path| -> Result<toml::Table, ConfigError> {
            let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Read {
                path: p.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: p.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })
        };
        let mut merged = table(&bytes, path)?;
        let mut sources = std::mem::take(&mut config.allow_sources);
        let mut files = vec![path.to_owned()];
        for f in dropins {
            let bytes = read_config_file(&f)?;
            let mut one = Self::from_bytes(&bytes, &f)?;
            one.note_source(&f);
            for (rule, list) in one.allow_sources {
                sources.entry(rule).or_default().extend(list);
            }
            merge_tables(&mut merged, table(&bytes, &f)?);
            files.push(f);
        }
        let mut config: Config =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: format!("merged with config.d: {}", e.to_string().trim_end()),
                })?;
        // Each file was valid alone; what only their merge gives is reported against the main.
        config.validate("", path)?;
        config.sources = files;
        config.allow_sources = sources;
        Ok(config)
    }

    fn note_source(&mut self, path: &Path) {
        self.sources = vec![path.to_owned()];
        self.allow_sources = self
            .rules
            .iter()
            .filter(|(_, s)| !s.allow.is_empty())
            .map(|(r, s)| (r.clone(), vec![path.to_owned(); s.allow.len()]))
            .collect();
    }

    /// The file given, else the default file if it exists, else the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Self::load(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Ok(Config::default()),
        }
    }

    /// The compiled rule policy (validated when the file was loaded).
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        Policy::new(&self.rules, &detect::all_rule_infos())
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            line: line_of(text, &key),
            key,
            problem,
        };
        for (key, v) in [
            (
                "ring_buffers.critical_bytes",
                self.ring_buffers.critical_bytes,
            ),
            (
                "ring_buffers.lifecycle_bytes",
                self.ring_buffers.lifecycle_bytes,
            ),
        ] {
            if !v.is_power_of_two() || v < 4096 {
                return Err(invalid(
                    key.to_owned(),
                    format!("must be a power of two of at least 4096, not {v}"),
                ));
            }
        }
        if self.logs.event_log_keep == 0 {
            return Err(invalid(
                "logs.event_log_keep".into(),
                "must be at least 1".into(),
            ));
        }
        if self.logs.event_log_max_bytes < 1 << 20 {
            return Err(invalid(
                "logs.event_log_max_bytes".into(),
                format!(
                    "must be at least 1048576 (1 MiB), not {}",
                    self.logs.event_log_max_bytes
                ),
            ));
        }
        if let Some((key, problem)) = self.runtime_api.problem() {
            return Err(invalid(key.into(), problem));
        }
        self.policy().map_err(|e| {
            let (rule, index, field) = e.key();
            let mut key = format!("rules.{rule}");
            if let Some(i) = index {
                key += &format!(".allow[{i}]");
            }
            if let Some(f) = field {
                key += &format!(".{f}");
            }
            invalid(key, e.to_string())
        })?;
        Ok(())
    }
}

fn read_config_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::{io::Read as _, os::unix::fs::MetadataExt as _};
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let refuse = |problem| ConfigError::Unsafe {
        path: path.to_owned(),
        problem,
    };
    // O_NOFOLLOW | O_NONBLOCK, then fstat: the checks below are of the file that is read.
    let file = safe_open::open_read(path).map_err(|e| match safe_open::refusal(&e) {
        Some(Refused::Symlink) => refuse(UnsafeConfig::Symlink),
        Some(Refused::NotRegular(kind)) => refuse(UnsafeConfig::NotRegular(kind)),
        None => read_err(e),
    })?;
    let meta = file.metadata().map_err(read_err)?;
    if meta.mode() & 0o002 != 0 {
        return Err(refuse(UnsafeConfig::WorldWritable {
            mode: meta.mode() & 0o7777,
        }));
    }
    let agent = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != agent {
        return Err(refuse(UnsafeConfig::Owner {
            owner: meta.uid(),
            agent,
        }));
    }
    let too_large = |size| {
        refuse(UnsafeConfig::TooLarge {
            size,
            max: MAX_CONFIG_BYTES,
        })
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(meta.len()));
    }
    // The bound holds even for a file that grows while it is read.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// 1-based line of `key` (dotted, `[i]` for array entries) in `text`: the deepest part of the
/// key that is present, so a missing field points at its table.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let parts: Vec<&str> = key.split('.').collect();
    let span = find_span(doc.as_table(), &parts, None)?;
    Some(text[..span.start.min(text.len())].matches('\n').count() + 1)
}

type Span = Option<std::ops::Range<usize>>;

fn find_span(table: &dyn toml_edit::TableLike, parts: &[&str], best: Span) -> Span {
    let Some((part, rest)) = parts.split_first() else {
        return best;
    };
    let (name, index) = match part.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
        None => (*part, None),
    };
    let Some((k, v)) = table.get_key_value(name) else {
        return best;
    };
    let best = k.span().or(best);
    match (index, v) {
        (None, v) => match v.as_table_like() {
            Some(t) if !rest.is_empty() => find_span(t, rest, best),
            _ => best,
        },
        (Some(i), toml_edit::Item::ArrayOfTables(a)) => match a.get(i) {
            Some(t) => find_span(t, rest, t.span().or(best)),
            None => best,
        },
        (Some(i), toml_edit::Item::Value(toml_edit::Value::Array(a))) => match a.get(i) {
            Some(toml_edit::Value::InlineTable(t)) => find_span(t, rest, t.span().or(best)),
            Some(v) => v.span().or(best),
            None => best,
        },
        _ => best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(
            Config::parse("", Path::new("c.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn reads_every_key() {
        let c = Config::parse(
            "[logs]\nevent_log = \"/var/log/e.jsonl\"\nalert_log = \"/var/log/a.jsonl\"\n[ring_buffers]\ncritical_bytes = 65536\nlifecycle_bytes = 131072\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(
            c.logs.event_log.as_deref(),
            Some(Path::new("/var/log/e.jsonl"))
        );
        assert_eq!(c.ring_buffers.critical_bytes, 65536);
    }

    #[test]
    fn hooks_can_be_disabled_by_type() {
        let c = Config::parse(
            "[hooks]\ndisable = [\"fentry\", \"lsm\"]\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.hooks.disable, [PrecisionHook::Fentry, PrecisionHook::Lsm]);
        // A hook type without a fallback cannot be disabled: the error names line and key.
        let e = Config::parse("[hooks]\ndisable = [\"tracepoint\"]\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("tracepoint") && e.contains("fentry"), "{e}");
    }

    #[test]
    fn hook_lists_from_the_command_line() {
        use PrecisionHook::*;
        assert_eq!(PrecisionHook::parse_list(""), Ok(vec![]));
        assert_eq!(
            PrecisionHook::parse_list("fentry, lsm"),
            Ok(vec![Fentry, Lsm])
        );
        assert_eq!(PrecisionHook::parse_list("kprobe"), Ok(vec![Kprobe]));
        let e = PrecisionHook::parse_list("fentry,raw_tracepoint").unwrap_err();
        assert!(e.contains("raw_tracepoint") && e.contains("kprobe"), "{e}");
    }

    /// The disable-able types are exactly the hook types of the programs that have a fallback.
    #[test]
    fn precision_hooks_are_the_ones_with_fallbacks() {
        use clap::ValueEnum as _;
        use escapewatch_common::programs::PROGRAMS;
        let with_fallback: std::collections::BTreeSet<&str> = PROGRAMS
            .iter()
            .filter(|p| !p.fallback.is_empty())
            .map(|p| p.hook.kind_name())
            .collect();
        let disable_able: std::collections::BTreeSet<&str> = PrecisionHook::value_variants()
            .iter()
            .map(|h| h.kind_name())
            .collect();
        assert_eq!(with_fallback, disable_able);
        for h in PrecisionHook::value_variants() {
            assert_eq!(
                h.to_possible_value().unwrap().get_name(),
                h.kind_name(),
                "CLI spelling"
            );
        }
    }

    #[test]
    fn runtime_api_ports_and_sockets_are_validated() {
        let c =
            Config::parse("[runtime_api]\nports = [2375, 8080]\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.runtime_api.ports, vec![2375, 8080]);
        assert_eq!(
            Config::default().runtime_api.ports,
            DEFAULT_RUNTIME_API_PORTS.to_vec()
        );
        for (text, want) in [
            ("[runtime_api]\nports = [0]\n", "port 0 is not a port"),
            (
                "[runtime_api]\nports = [2375, 2375]\n",
                "port 2375 is listed twice",
            ),
            ("[runtime_api]\nports = [70000]\n", "70000"),
            (
                "[runtime_api]\nsockets = [\"run/x.sock\"]\n",
                "not an absolute host path",
            ),
        ] {
            let e = Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
            // A number past u16 is toml's type error (file, line, column); the rest name the key.
            assert!(
                want == "70000" || e.contains("`runtime_api."),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = Config::parse("[logs]\nevent_logg = \"x\"\n", Path::new("/etc/e.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/e.toml"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("event_logg"), "{e}");
    }

    #[test]
    fn bad_ring_size_names_the_key() {
        let e = Config::parse(
            "[ring_buffers]\ncritical_bytes = 5000\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ring_buffers.critical_bytes"), "{e}");
        assert!(e.contains("5000"), "{e}");
    }

    /// Every error names the file, the line and the key.
    fn assert_names(text: &str, line: usize, key: &str) {
        let e = Config::parse(text, Path::new("/etc/escapewatch/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/escapewatch/x.toml"), "no file in: {e}");
        assert!(
            e.contains(&format!("line {line}")),
            "no line {line} in: {e}"
        );
        assert!(e.contains(key), "no key {key} in: {e}");
    }

    #[test]
    fn every_error_path_names_file_line_and_key() {
        // Syntax and types (toml's own message).
        assert_names("[logs]\nevent_log = \n", 2, "event_log");
        assert_names(
            "\n[ring_buffers]\ncritical_bytes = \"big\"\n",
            3,
            "critical_bytes",
        );
        assert_names("[metrics]\nlisten = \"localhost\"\n", 2, "listen");
        assert_names("[metrics]\nport = 1\n", 2, "port");
        assert_names(
            "[rules.namespace-join-host]\nseverity = \"urgent\"\n",
            2,
            "severity",
        );
        assert_names(
            "[[rules.namespace-join-host.allow]]\nruntime = \"lxc\"\nreason = \"x\"\n",
            2,
            "runtime",
        );
        assert_names(
            "[[rules.namespace-join-host.allow]]\npod_name = \"web\"\n",
            2,
            "pod_name",
        );
        // Semantics (looked up again in the text).
        assert_names(
            "[logs]\n\n[ring_buffers]\nlifecycle_bytes = 5000\n",
            4,
            "ring_buffers.lifecycle_bytes",
        );
        assert_names("[logs]\nevent_log_keep = 0\n", 2, "logs.event_log_keep");
        assert_names(
            "[rules.no-such-rule]\nenabled = false\n",
            1,
            "rules.no-such-rule",
        );
        assert_names(
            "[rules.namespace-join-host]\nseverity = \"high\"\n\n[[rules.namespace-join-host.allow]]\nexe = \"/bin/sh\"\nreason = \"a\"\n\n[[rules.namespace-join-host.allow]]\nexe = \"/usr/[\"\nreason = \"b\"\n",
            9,
            "rules.namespace-join-host.allow[1].exe",
        );
        assert_names(
            "[[rules.detector-overloaded.allow]]\ncgroup = \"/ci/*\"\n",
            1,
            "rules.detector-overloaded.allow[0].reason",
        );
        assert_names(
            "[[rules.namespace-join-host.allow]]\nreason = \"everything\"\n",
            1,
            "rules.namespace-join-host.allow[0]",
        );
    }

    #[test]
    fn policy_settings_are_read() {
        let c = Config::parse(
            "[metrics]\nlisten = \"0.0.0.0:9100\"\n[rules.namespace-join-host]\nseverity = \"high\"\n[[rules.namespace-join-host.allow]]\nruntime = \"docker\"\ncgroup = \"/system.slice/docker-*.scope\"\nreason = \"debug containers\"\n[rules.detector-overloaded]\nenabled = false\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.metrics.listen.port(), 9100);
        let p = c.policy().unwrap();
        assert!(!p.enabled("detector-overloaded"));
        assert!(p.enabled("namespace-join-host"));
        assert_eq!(
            p.severity(
                crate::detect::rules::infos()
                    .into_iter()
                    .find(|i| i.id == "namespace-join-host")
                    .unwrap()
            ),
            crate::detect::Severity::High
        );
    }

    #[test]
    fn shipped_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/config.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.metrics.listen.to_string(), DEFAULT_METRICS_ADDR);
    }

    #[test]
    fn unreadable_file_is_a_clear_error() {
        let e = Config::load(Path::new("/nonexistent/escapewatch.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/escapewatch.toml"), "{e}");
    }
}
