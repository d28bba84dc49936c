//! The agent's configuration file (TOML). Unknown keys are errors; CLI flags override it.

use std::path::{Path, PathBuf};

use escapewatch_common::maps::{RING_CRITICAL_DEFAULT_BYTES, RING_LIFECYCLE_DEFAULT_BYTES};
use serde::Deserialize;

use crate::loader::RingSizes;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/escapewatch/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub logs: Logs,
    pub ring_buffers: RingBuffers,
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
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            event_log: None,
            alert_log: None,
            event_log_max_bytes: 100 * 1024 * 1024,
            event_log_keep: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

impl RingBuffers {
    pub fn sizes(&self) -> RingSizes {
        RingSizes {
            critical: self.critical_bytes,
            lifecycle: self.lifecycle_bytes,
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
        config.validate(path)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
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

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
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
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    key,
                    problem: format!("must be a power of two of at least 4096, not {v}"),
                });
            }
        }
        Ok(())
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
        assert_eq!(c.ring_buffers.sizes().critical, 65536);
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

    #[test]
    fn unreadable_file_is_a_clear_error() {
        let e = Config::load(Path::new("/nonexistent/escapewatch.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/escapewatch.toml"), "{e}");
    }
}
