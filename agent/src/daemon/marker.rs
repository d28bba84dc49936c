//! Did the previous run stop cleanly? A marker file beside the event log says.
//!
//! Written once the agent is ready, removed after a clean shutdown (SIGTERM/SIGINT, drained
//! and flushed). Found at start, it means the previous run ended without that: SIGKILL, a
//! crash, the OOM killer, or the host going down under it. A kill followed by a restart within
//! the AgentDown window of the Prometheus rules is otherwise invisible, and killing the agent
//! just for the escape is the cheapest way to blind it.
//!
//! A marker rather than the last event-log segment lacking a shutdown record: the segment may
//! have been rotated, compressed or deleted by retention, the log format belongs to the event
//! log, and a marker costs one small write per start. The marker is a hidden file
//! (`.events.jsonl.running`), so no event-log glob or retention pass ever touches it.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::model::Payload;

/// What a running agent leaves behind.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Running {
    pid: u32,
    /// Wall-clock time the agent became ready (RFC 3339).
    started: String,
    /// /proc/sys/kernel/random/boot_id of the host it ran on.
    boot_id: String,
}

pub struct RunMarker {
    path: PathBuf,
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl RunMarker {
    /// The marker of the agent writing `event_log`.
    pub fn beside(event_log: &Path) -> RunMarker {
        let name = event_log
            .file_name()
            .map_or_else(|| "events".into(), |n| n.to_string_lossy().into_owned());
        RunMarker {
            path: event_log.with_file_name(format!(".{name}.running")),
        }
    }

    /// The report of a previous run that did not stop cleanly, if the marker says so.
    pub fn previous_run(&self) -> Option<Payload> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot read the run marker; taking it as an unclean stop");
                String::new()
            }
        };
        // A marker cut short by the crash still says the run did not end cleanly.
        let prev: Running = serde_json::from_str(&text).unwrap_or_default();
        Some(Payload::AgentRestarted {
            previous_pid: prev.pid,
            previous_start: prev.started,
            host_rebooted: !prev.boot_id.is_empty() && prev.boot_id != boot_id(),
        })
    }

    /// Mark this run as running (replacing the previous marker).
    pub fn write(&self, started: String) {
        let me = Running {
            pid: std::process::id(),
            started,
            boot_id: boot_id(),
        };
        let tmp = self.path.with_extension("running.tmp");
        let result = serde_json::to_vec(&me)
            .map_err(io::Error::other)
            .and_then(|bytes| fs::write(&tmp, bytes))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            warn!(path = %self.path.display(), error = %e, "cannot write the run marker: a kill of this run will not be reported at the next start");
        }
    }

    /// A clean stop: the next start has nothing to report.
    pub fn remove(&self) {
        match fs::remove_file(&self.path) {
            Ok(()) => {
                info!(path = %self.path.display(), "clean stop recorded (run marker removed)");
            }
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot remove the run marker: the next start will report an unclean stop");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_left_behind_is_an_unclean_stop() {
        let dir = std::env::temp_dir().join(format!("ew-marker-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let m = RunMarker::beside(&dir.join("events.jsonl"));
        assert_eq!(m.path, dir.join(".events.jsonl.running"));
        assert_eq!(m.previous_run(), None, "first start ever");
        m.write("2026-01-01T00:00:00Z".into());
        match m.previous_run() {
            Some(Payload::AgentRestarted {
                previous_pid,
                previous_start,
                host_rebooted,
            }) => {
                assert_eq!(previous_pid, std::process::id());
                assert_eq!(previous_start, "2026-01-01T00:00:00Z");
                assert!(!host_rebooted);
            }
            other => panic!("{other:?}"),
        }
        m.remove();
        assert_eq!(m.previous_run(), None, "after a clean stop");
        fs::write(&m.path, "{\"pid\": 1").unwrap();
        assert!(
            m.previous_run().is_some(),
            "a torn marker is still a marker"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
