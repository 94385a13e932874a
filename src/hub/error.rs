//! What can go wrong talking to the hub, each with enough context for an
//! operator to act on it from one log line.

use std::fmt;

/// The scopes the culler's role needs; named in every "forbidden" error.
pub const REQUIRED_SCOPES: &str =
    "list:users, read:users:activity, read:servers, delete:servers (and admin:users with --cull-users)";

/// A failed request to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// No connection could be made (hub down, wrong URL, TLS refused).
    Unreachable {
        /// The request, as `METHOD url`.
        request: String,
        /// What the connector said.
        detail: String,
    },
    /// No answer within `JUPYTERHUB_REQUEST_TIMEOUT`.
    Timeout {
        /// The request, as `METHOD url`.
        request: String,
        /// The limit that ran out, in seconds.
        seconds: u64,
    },
    /// The token was rejected or lacks a scope (403, or 401 on old hubs).
    Forbidden {
        /// The request, as `METHOD url`.
        request: String,
        /// The hub's message, which names the missing scope.
        message: String,
    },
    /// Any other non-success status.
    Status {
        /// The request, as `METHOD url`.
        request: String,
        /// The HTTP status code.
        status: u16,
        /// The hub's message, or the start of the body.
        message: String,
    },
    /// A success status with a body we could not read.
    BadBody {
        /// The request, as `METHOD url`.
        request: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl HubError {
    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HubError::Forbidden { .. } => Some(403),
            HubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::Unreachable { request, detail } if detail.contains("certificate") => write!(
                f,
                "{request}: the hub's TLS certificate was not accepted ({detail}); \
                 install its CA in the system bundle or point SSL_CERT_FILE at it, \
                 or use --ssl-enabled for JupyterHub's internal_ssl"
            ),
            HubError::Unreachable { request, detail } => write!(
                f,
                "{request}: cannot reach the hub ({detail}); check --url / JUPYTERHUB_API_URL and that the hub is running"
            ),
            HubError::Timeout { request, seconds } => write!(
                f,
                "{request}: no answer within {seconds} s; the hub is overloaded or unreachable (raise JUPYTERHUB_REQUEST_TIMEOUT if it is just slow)"
            ),
            HubError::Forbidden { request, message } => {
                write!(f, "{request}: refused by the hub: {message}; ")?;
                if message.to_ascii_lowercase().contains("credentials") {
                    write!(f, "check that JUPYTERHUB_API_TOKEN is the culler service's token")
                } else {
                    write!(f, "give the culler's role the scopes {REQUIRED_SCOPES}")
                }
            }
            HubError::Status {
                request,
                status,
                message,
            } => write!(f, "{request}: the hub answered {status}: {message}"),
            HubError::BadBody { request, detail } => {
                write!(f, "{request}: the hub's answer is not what JupyterHub sends: {detail}")
            }
        }
    }
}

impl std::error::Error for HubError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_failures_point_at_the_ca_not_the_url() {
        let tls = HubError::Unreachable {
            request: "GET https://hub/hub/api/".into(),
            detail: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(tls.to_string().contains("SSL_CERT_FILE"), "{tls}");
        let refused = HubError::Unreachable {
            request: "GET http://hub/hub/api/".into(),
            detail: "Connection refused".into(),
        };
        assert!(refused.to_string().contains("--url"), "{refused}");
    }
}
