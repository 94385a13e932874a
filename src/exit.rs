//! How the process ends, in one place, because operators and their
//! supervisors (JupyterHub, Kubernetes, cron) act on the exit code.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | `--once`: the pass succeeded; daemon: stopped by SIGINT or SIGTERM |
//! | 1 | `--once`: the pass had errors (some requests failed) |
//! | 2 | the command line or environment is unusable |
//! | 3 | actors kept failing (the restart budget ran out): restart the culler |
//! | 128 + N | `--once` interrupted by signal N (130 SIGINT, 143 SIGTERM) |

/// The signals that stop the culler gracefully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: how JupyterHub stops a managed service, and Ctrl-C.
    Interrupt,
    /// SIGTERM: how Kubernetes and most supervisors stop a process.
    Terminate,
}

impl Signal {
    /// The name operators know it by.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// Its number on Linux (and every other Unix).
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }
}

/// Why the process exits. Also the message that asks the Supervisor, the
/// one place that ends the process, to end it with this code (the first
/// asked wins): the actors that find the pipeline is done send it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub enum Exit {
    /// All went well (or a daemon was asked to stop).
    Clean,
    /// A `--once` pass had errors.
    PassFailed,
    /// Unusable flags or environment.
    Usage,
    /// The Supervisor's restart budget ran out.
    GaveUp,
    /// A `--once` pass was cut short by a signal.
    Interrupted(Signal),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Clean => 0,
            Exit::PassFailed => 1,
            Exit::Usage => 2,
            Exit::GaveUp => 3,
            Exit::Interrupted(signal) => 128 + signal.number(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_shell_conventions() {
        assert_eq!(Exit::Clean.code(), 0);
        assert_eq!(Exit::PassFailed.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::GaveUp.code(), 3);
        assert_eq!(Exit::Interrupted(Signal::Interrupt).code(), 130);
        assert_eq!(Exit::Interrupted(Signal::Terminate).code(), 143);
        assert_eq!(Signal::Terminate.name(), "SIGTERM");
    }
}
