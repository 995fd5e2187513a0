//! The log sink: each transition as a structured log line (`alerts.log`) and, in the demo, as
//! one readable line on stdout.
//!
//! It has no queue or task of its own: writing a line takes no longer than queueing it would,
//! and doing it in the caller keeps the demo's lines in the order, and at the moment, the
//! transitions happen.

use tokio::time::Instant;

use super::{AlertSink, BoxFuture, Stopped};
use crate::alert::Alert;

pub const SINK: &str = "log";

pub struct LogSink {
    /// Structured, at info, target `overage::alerts`.
    log: bool,
    /// `Alert::to_line` on stdout.
    console: bool,
}

impl LogSink {
    pub fn new(log: bool, console: bool) -> LogSink {
        LogSink { log, console }
    }
}

impl AlertSink for LogSink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), Stopped>> {
        if self.log {
            tracing::info!(
                target: "overage::alerts",
                alert = %alert.alert,
                state = ?alert.state,
                client_id = %alert.client_id,
                severity = alert.severity.as_str(),
                ratio = alert.ratio,
                at = %crate::time::format_rfc3339(alert.at),
                fingerprint = %alert.fingerprint,
                "{}",
                alert.summary
            );
        }
        if self.console {
            println!("{}", alert.to_line());
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn flush(self: Box<Self>, _deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}
