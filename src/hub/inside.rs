//! Asking a single-user server what runs inside it (`--activity=server`):
//! jupyter-server's own REST API, reached through the hub's proxy with the
//! culler's token (which needs `access:servers`).
//!
//! The hub's `last_activity` misses a kernel busy with no browser attached
//! and counts an open tab whose kernels sit idle; the server itself knows
//! both. Only a server the hub's timestamps would cull is asked, and a
//! server that cannot be asked is judged by those timestamps: a failed
//! look is never a reason to cull (the pure judgement is
//! [`crate::policy::judge_inside`]).

use super::time::Timestamp;
use super::{HubClient, Method};
use serde::Deserialize;
use std::fmt;

/// What a server said about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inside {
    /// Its kernels (`GET api/kernels`).
    pub kernels: Vec<Kernel>,
    /// Its terminals (`GET api/terminals`); empty where the server has no
    /// terminals extension.
    pub terminals: Vec<Terminal>,
    /// Open connections to the server's kernels (`GET api/status`): a
    /// browser tab, or a client that attached and went away without
    /// closing.
    pub connections: u64,
}

/// One kernel as jupyter-server lists it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Kernel {
    /// `starting`, `idle` or `busy` (a kernel no client attached to may
    /// stay `starting`).
    #[serde(default)]
    pub execution_state: Option<String>,
    /// The kernel's last message or state change.
    #[serde(default)]
    pub last_activity: Option<Timestamp>,
}

impl Kernel {
    /// Whether it is running code now.
    pub fn busy(&self) -> bool {
        self.execution_state.as_deref() == Some("busy")
    }
}

/// One terminal as jupyter-server-terminals lists it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Terminal {
    /// The terminal's last output or input.
    #[serde(default)]
    pub last_activity: Option<Timestamp>,
}

/// `GET api/status`: only the fields the culler reads. `started` is how a
/// jupyter-server is told from another application that answers JSON.
#[derive(Deserialize)]
struct Status {
    #[serde(rename = "started")]
    _started: Timestamp,
    #[serde(default)]
    connections: u64,
}

/// Why a server could not be asked; its WARN line and its metric's label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookError {
    /// No proxy URL is configured (`--proxy-url`).
    NoProxy,
    /// The hub lists no URL for the server.
    NoUrl,
    /// The proxy could not be reached.
    Unreachable {
        /// The request, as `GET url`.
        request: String,
        /// What the connector said.
        detail: String,
    },
    /// No whole answer within the look's timeout (a hung server).
    Timeout {
        /// The request, as `GET url`.
        request: String,
        /// The limit.
        limit: std::time::Duration,
    },
    /// 403 (the token lacks `access:servers`) or 401.
    Forbidden {
        /// The request, as `GET url`.
        request: String,
    },
    /// Another status: 404 or 503 from the proxy for a server that is
    /// gone, 302 to the hub's login for a route the proxy does not have.
    Status {
        /// The request, as `GET url`.
        request: String,
        /// The status.
        status: u16,
    },
    /// An answer that is not jupyter-server's (an HTML page, another
    /// application).
    NotJupyter {
        /// The request, as `GET url`.
        request: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl LookError {
    /// The `outcome` label of the probes metric.
    pub fn label(&self) -> &'static str {
        match self {
            LookError::NoProxy | LookError::NoUrl => "no_url",
            LookError::Unreachable { .. } => "unreachable",
            LookError::Timeout { .. } => "timeout",
            LookError::Forbidden { .. } => "forbidden",
            LookError::Status { .. } => "status",
            LookError::NotJupyter { .. } => "not_jupyter",
        }
    }
}

impl fmt::Display for LookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookError::NoProxy => f.write_str("no --proxy-url to reach it through"),
            LookError::NoUrl => f.write_str("the hub gives no URL for it"),
            LookError::Unreachable { request, detail } => {
                write!(
                    f,
                    "{request}: the proxy cannot be reached ({detail}); is --proxy-url right?"
                )
            }
            LookError::Timeout { request, limit } => {
                write!(f, "{request}: no answer within {} s", limit.as_secs_f64())
            }
            LookError::Forbidden { request } => write!(
                f,
                "{request}: refused; the culler's role needs the access:servers scope"
            ),
            LookError::Status { request, status } => {
                write!(f, "{request}: answered {status}, not jupyter-server's API")
            }
            LookError::NotJupyter { request, detail } => {
                write!(f, "{request}: not jupyter-server's API ({detail})")
            }
        }
    }
}

impl HubClient {
    /// Asks the server at `server_url` (the hub's `url` for it, such as
    /// `/user/ada/lab/`) for its status, kernels and terminals, through
    /// the proxy. One attempt, within the look's own timeout; the pool
    /// sends it, so it counts against `--concurrency`.
    pub async fn look_inside(&self, server_url: Option<&str>) -> Result<Inside, LookError> {
        let proxy = self.proxy.as_ref().ok_or(LookError::NoProxy)?;
        let path = server_url
            .filter(|url| !url.is_empty())
            .ok_or(LookError::NoUrl)?;
        let base = format!(
            "{}/{}/",
            proxy.url.trim_end_matches('/'),
            path.trim_matches('/')
        );
        let look = async {
            let status: Status = self.read(&format!("{base}api/status")).await?;
            let kernels: Vec<Kernel> = self.read(&format!("{base}api/kernels")).await?;
            let terminals = match self.read(&format!("{base}api/terminals")).await {
                Ok(terminals) => terminals,
                // No terminals extension, or terminals turned off.
                Err(LookError::Status { status: 404, .. }) => Vec::new(),
                Err(err) => return Err(err),
            };
            Ok(Inside {
                kernels,
                terminals,
                connections: status.connections,
            })
        };
        let url = format!("{base}api/status");
        actix_rt::time::timeout(proxy.timeout, look)
            .await
            .unwrap_or_else(|_| {
                Err(LookError::Timeout {
                    request: format!("GET {url}"),
                    limit: proxy.timeout,
                })
            })
    }

    /// One `GET` of the server's API, read as `T`.
    async fn read<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, LookError> {
        let request = || format!("GET {url}");
        let answer = self
            .attempt(Method::Get { paginated: false }, url)
            .await
            .map_err(|err| match err {
                super::HubError::Timeout { .. } => LookError::Timeout {
                    request: request(),
                    limit: self.timeout,
                },
                other => LookError::Unreachable {
                    request: request(),
                    detail: other.to_string(),
                },
            })?;
        match answer.status.as_u16() {
            200 => serde_json::from_slice(&answer.body).map_err(|err| LookError::NotJupyter {
                request: request(),
                detail: err.to_string(),
            }),
            401 | 403 => Err(LookError::Forbidden { request: request() }),
            status => Err(LookError::Status {
                request: request(),
                status,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
