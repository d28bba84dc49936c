//! syslog / journald: every alert as one datagram to the local syslog socket (`/dev/log`,
//! which journald serves too), `<PRI>escapewatch[PID]: JSON`, facility authpriv, the syslog
//! severity from the alert's. journald keeps the priority, so `journalctl -p crit` finds the
//! critical ones.

use std::{os::unix::net::UnixDatagram, path::PathBuf};

use serde::Deserialize;

use super::fanout::{Output, OutputError, SinkCounts};
use crate::detect::{Alert, Severity};

/// `[sinks.syslog]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogConfig {
    pub enabled: bool,
    pub socket: PathBuf,
    pub queue: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            enabled: false,
            socket: PathBuf::from("/dev/log"),
            queue: 1024,
        }
    }
}

/// LOG_AUTHPRIV.
const FACILITY: u8 = 10;

pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
    }
}

/// The datagram of `alert`.
pub fn message(alert: &Alert) -> Vec<u8> {
    let pri = FACILITY * 8 + syslog_severity(alert.severity);
    let mut m = format!("<{pri}>escapewatch[{}]: ", std::process::id()).into_bytes();
    let _ = serde_json::to_writer(&mut m, alert);
    m
}

pub struct Syslog {
    socket: PathBuf,
    sock: Option<UnixDatagram>,
}

impl Syslog {
    pub fn new(socket: PathBuf) -> Self {
        Syslog { socket, sock: None }
    }
}

impl Output for Syslog {
    fn send(&mut self, alert: &Alert, _: &SinkCounts) -> Result<(), OutputError> {
        let fail = |e: std::io::Error| OutputError::Failed {
            what: format!("syslog {}", self.socket.display()),
            message: e.to_string(),
        };
        let m = message(alert);
        // Reconnect once: syslog daemons restart.
        for _ in 0..2 {
            if self.sock.is_none() {
                let s = UnixDatagram::unbound().map_err(fail)?;
                s.connect(&self.socket).map_err(fail)?;
                self.sock = Some(s);
            }
            match self.sock.as_ref().map(|s| s.send(&m)) {
                Some(Ok(_)) => return Ok(()),
                _ => self.sock = None,
            }
        }
        Err(fail(std::io::Error::other(
            "send failed after reconnecting",
        )))
    }
}
