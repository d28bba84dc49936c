//! A webhook: every alert POSTed as JSON (the alert line, or Falco's payload for
//! falcosidekick) to a URL, over TLS (rustls, the Mozilla roots) for `https://`. A failed
//! POST (no connection, a timeout, a 5xx or 429) is retried with exponential backoff; a 4xx is
//! final. Runs in its sink thread: the pipeline never waits for it.

use std::time::Duration;

use serde::Deserialize;

use super::fanout::{Output, OutputError, SinkCounts};
use crate::detect::Alert;

/// Which JSON the webhook gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The alert line, as the alert log has it.
    #[default]
    Alert,
    /// Falco's JSON output (for falcosidekick and its targets).
    Falco,
}

/// `[[sinks.webhook]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    pub format: Format,
    /// Alerts waiting for this webhook; more are dropped and counted.
    pub queue: usize,
    /// Per-request time bound, ms.
    pub timeout_ms: u64,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff, ms; doubled each retry, at most 30 s.
    pub backoff_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            format: Format::Alert,
            queue: 1024,
            timeout_ms: 5000,
            retries: 5,
            backoff_ms: 200,
        }
    }
}

pub struct Webhook {
    config: WebhookConfig,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn new(config: WebhookConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .http_status_as_error(false)
            .user_agent(concat!("escapewatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Webhook { config, agent }
    }

    fn body(&self, alert: &Alert) -> Vec<u8> {
        let v = match self.config.format {
            Format::Alert => serde_json::to_vec(alert),
            Format::Falco => serde_json::to_vec(&super::falco::payload(alert)),
        };
        v.unwrap_or_default()
    }

    /// One POST: Ok, a failure worth retrying, or a final one.
    fn post(&self, body: &[u8]) -> Result<(), (bool, String)> {
        match self
            .agent
            .post(&self.config.url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(resp) => {
                let s = resp.status().as_u16();
                match s {
                    200..=299 => Ok(()),
                    429 | 500..=599 => Err((true, format!("HTTP {s}"))),
                    _ => Err((false, format!("HTTP {s}"))),
                }
            }
            Err(e) => Err((true, e.to_string())),
        }
    }
}

impl Output for Webhook {
    fn send(&mut self, alert: &Alert, counts: &SinkCounts) -> Result<(), OutputError> {
        let body = self.body(alert);
        let mut backoff = Duration::from_millis(self.config.backoff_ms);
        let mut attempt = 0;
        loop {
            match self.post(&body) {
                Ok(()) => return Ok(()),
                Err((retry, message)) if !retry || attempt >= self.config.retries => {
                    return Err(OutputError::Failed {
                        what: format!("POST {}", self.config.url),
                        message: format!("{message} (after {} attempts)", attempt + 1),
                    });
                }
                Err(_) => {
                    counts.inc("retried");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
            }
        }
    }
}
