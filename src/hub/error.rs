//! What can go wrong talking to the hub, each with enough context for an
//! operator to act on it from one log line, and with the one fact the retry
//! policy needs: whether trying again can help.

use std::fmt;
use std::time::Duration;

/// The scopes the culler's role needs; named in every "forbidden" error.
pub const REQUIRED_SCOPES: &str =
    "list:users, read:users:activity, read:servers, delete:servers (and admin:users with --cull-users)";

/// A failed request to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// No connection could be made, or it broke before the whole answer
    /// arrived (hub down or restarting, a proxy dropping a kept-alive
    /// connection, a wrong URL).
    Unreachable {
        /// The request, as `METHOD url`.
        request: String,
        /// What the connector said.
        detail: String,
    },
    /// The hub's TLS certificate was refused: trying again cannot help.
    Untrusted {
        /// The request, as `METHOD url`.
        request: String,
        /// What the TLS layer said.
        detail: String,
    },
    /// No whole answer within `JUPYTERHUB_REQUEST_TIMEOUT`.
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
        /// What a `Retry-After` header asked for (429 and 503 carry it).
        retry_after: Option<Duration>,
    },
    /// A success status with a body we could not read.
    BadBody {
        /// The request, as `METHOD url`.
        request: String,
        /// What was wrong with it.
        detail: String,
        /// Which kind of wrong: only a body that is not JSON at all may
        /// read well on a second try.
        fault: BodyFault,
    },
}

/// What was wrong with a success answer's body. Only answers to `GET`s
/// have bodies the culler reads, and a `GET` may always be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Not JSON at all, or JSON cut short: a proxy's HTML error page served
    /// with 200, or a body truncated on the way. Another try may read well.
    Unparseable,
    /// Well-formed JSON that is not what JupyterHub sends (a wrong shape, a
    /// version that is not one): it would read the same on every try.
    Unexpected,
    /// Larger than the culler reads: it would be as large again.
    TooLarge,
}

impl BodyFault {
    /// How serde_json's error says the body failed: its syntax (or its
    /// end) is a transport accident, its data a hub that sends other
    /// things.
    pub fn of(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match err.classify() {
            Category::Syntax | Category::Eof | Category::Io => BodyFault::Unparseable,
            Category::Data => BodyFault::Unexpected,
        }
    }
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

    /// The request that failed, as `METHOD url`.
    pub fn request(&self) -> &str {
        match self {
            HubError::Unreachable { request, .. }
            | HubError::Untrusted { request, .. }
            | HubError::Timeout { request, .. }
            | HubError::Forbidden { request, .. }
            | HubError::Status { request, .. }
            | HubError::BadBody { request, .. } => request,
        }
    }

    /// Whether the same request may succeed if sent again: the connection
    /// failed or broke, no answer in time, the hub is overloaded (429) or
    /// failing (5xx, as a proxy answers while the hub restarts). Every
    /// request the culler makes is idempotent at the hub, so retrying these
    /// is always safe. So is a 200 whose body is not JSON at all (a proxy's
    /// error page, a body cut short): only `GET`s have bodies we read. A
    /// refusal, another 4xx, or a well-formed body of the wrong shape would
    /// only fail again.
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Unreachable { .. } | HubError::Timeout { .. } => true,
            HubError::Status { status, .. } => *status == 429 || (500..600).contains(status),
            HubError::BadBody { fault, .. } => *fault == BodyFault::Unparseable,
            HubError::Untrusted { .. } | HubError::Forbidden { .. } => false,
        }
    }

    /// Whether this says the hub as a whole cannot be reached (rather than
    /// that one request failed): once a request gives up for this reason the
    /// rest of the pass is not sent.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            HubError::Unreachable { .. } | HubError::Timeout { .. }
        )
    }

    /// How long the hub asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HubError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::Untrusted { request, detail } => write!(
                f,
                "{request}: the hub's TLS certificate was not accepted ({detail}); \
                 install its CA in the system bundle or point SSL_CERT_FILE at it, \
                 or use --ssl-enabled for JupyterHub's internal_ssl"
            ),
            HubError::Unreachable { request, detail } => write!(
                f,
                "{request}: no connection to the hub, or it broke ({detail}); if this lasts, check --url / JUPYTERHUB_API_URL and that the hub is running"
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
                ..
            } => write!(f, "{request}: the hub answered {status}: {message}"),
            HubError::BadBody {
                request, detail, ..
            } => {
                write!(f, "{request}: the hub's answer is not what JupyterHub sends: {detail}")
            }
        }
    }
}

impl std::error::Error for HubError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> HubError {
        HubError::Status {
            request: "DELETE u".into(),
            status: code,
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn certificate_failures_point_at_the_ca_not_the_url() {
        let tls = HubError::Untrusted {
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

    #[test]
    fn only_failures_that_can_pass_on_a_second_try_are_transient() {
        for code in [429, 500, 502, 503, 504] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 404, 405, 409, 422] {
            assert!(!status(code).is_transient(), "{code}");
        }
        let unreachable = HubError::Unreachable {
            request: "GET u".into(),
            detail: "reset".into(),
        };
        let timeout = HubError::Timeout {
            request: "GET u".into(),
            seconds: 1,
        };
        assert!(unreachable.is_transient() && unreachable.is_outage());
        assert!(timeout.is_transient() && timeout.is_outage());
        assert!(
            !status(503).is_outage(),
            "one 503 says nothing of the hub as a whole"
        );
        let refused = HubError::Forbidden {
            request: "GET u".into(),
            message: "requires any of [list:users]".into(),
        };
        let untrusted = HubError::Untrusted {
            request: "GET u".into(),
            detail: "certificate".into(),
        };
        let body = |fault| HubError::BadBody {
            request: "GET u".into(),
            detail: "expected value".into(),
            fault,
        };
        for err in [
            refused,
            untrusted,
            body(BodyFault::Unexpected),
            body(BodyFault::TooLarge),
        ] {
            assert!(!err.is_transient() && !err.is_outage(), "{err}");
        }
        // A proxy's HTML page or a body cut short may read well next time,
        // and says nothing of the hub as a whole.
        let cut = body(BodyFault::Unparseable);
        assert!(cut.is_transient() && !cut.is_outage(), "{cut}");
    }

    #[test]
    fn serde_errors_are_told_apart_by_whether_the_body_was_json() {
        let fault = |text: &str| {
            BodyFault::of(&serde_json::from_str::<Vec<u32>>(text).expect_err("an error"))
        };
        assert_eq!(
            fault("<html>502 Bad Gateway</html>"),
            BodyFault::Unparseable
        );
        assert_eq!(fault("[1, 2"), BodyFault::Unparseable);
        assert_eq!(fault(r#"{"items": []}"#), BodyFault::Unexpected);
        assert_eq!(fault(r#"["a"]"#), BodyFault::Unexpected);
    }

    #[test]
    fn every_error_names_its_request() {
        assert_eq!(status(500).request(), "DELETE u");
        assert_eq!(status(500).status(), Some(500));
        let refused = HubError::Forbidden {
            request: "GET x".into(),
            message: String::new(),
        };
        assert_eq!((refused.request(), refused.status()), ("GET x", Some(403)));
        let timeout = HubError::Timeout {
            request: "GET y".into(),
            seconds: 3,
        };
        assert_eq!((timeout.request(), timeout.status()), ("GET y", None));
    }
}
