//! The health verdict `/health` answers with: healthy while passes
//! succeed, failing after `--health-failures` failed passes in a row.

use std::time::SystemTime;

/// Whether the culler is doing its job, for `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// No pass has succeeded or failed yet: healthy, it has just started.
    Starting,
    /// Fewer than `max_failures` passes failed in a row.
    Ok,
    /// At least `max_failures` passes failed in a row.
    Failing,
}

impl HealthStatus {
    /// The `status` field of `/health`'s JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Ok => "ok",
            HealthStatus::Failing => "failing",
        }
    }
}

/// The answer to "is the culler healthy, and why (not)?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Passes failed in a row since the last success (or since the start).
    pub consecutive_failed_passes: u64,
    /// The limit the verdict was made with (at least 1).
    pub max_failures: u32,
    /// When the last successful pass finished.
    pub last_success: Option<SystemTime>,
}

impl Health {
    /// Whether to answer 200 (starting or ok) rather than 503.
    pub fn is_healthy(&self) -> bool {
        self.status != HealthStatus::Failing
    }

    /// One sentence for an operator reading a probe's failure.
    pub fn reason(&self) -> String {
        let last = match self.last_success {
            Some(at) => format!("the last successful pass finished at {}", rfc3339(at)),
            None => "no pass has succeeded since the culler started".to_owned(),
        };
        let failed = match self.consecutive_failed_passes {
            1 => "1 pass in a row failed".to_owned(),
            n => format!("{n} passes in a row failed"),
        };
        match self.status {
            HealthStatus::Starting => "no pass has finished yet".to_owned(),
            HealthStatus::Ok if self.consecutive_failed_passes == 0 => {
                format!("the last pass succeeded; {last}")
            }
            HealthStatus::Ok => format!("{failed} (unhealthy at {}); {last}", self.max_failures),
            HealthStatus::Failing => format!(
                "{failed} (unhealthy at {}); {last}; see the culler's log for why",
                self.max_failures
            ),
        }
    }

    /// The `/health` body: `{"status": ..., "consecutive_failed_passes": ...,
    /// "last_success": RFC 3339 or null, "max_failures": ..., "reason": ...}`.
    pub fn to_json(&self) -> String {
        /// The body's fields, in the order a reader wants them.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            status: &'a str,
            consecutive_failed_passes: u64,
            last_success: Option<String>,
            max_failures: u32,
            reason: String,
        }
        let body = Body {
            status: self.status.as_str(),
            consecutive_failed_passes: self.consecutive_failed_passes,
            last_success: self.last_success.map(rfc3339),
            max_failures: self.max_failures,
            reason: self.reason(),
        };
        // Plain strings and numbers: serializing cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// A time as `2026-05-01T12:00:00Z`.
fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
