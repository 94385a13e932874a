//! Log set-up and the logging calls the rest of the crate uses; the only
//! module that knows slog, so a move to `tracing` touches this file alone.
//!
//! Lines go to stderr through slog-term: `Nov 25 22:40:01.123 INFO message`.
//!
//! Three promises, each tested:
//! - **Logging never takes the culler down.** A line that cannot be written
//!   (stderr's reader went away: a log shipper restarting, `2>&1 | head`) is
//!   dropped and counted; culling and signal handling go on. (slog's usual
//!   `fuse()` would turn that write error into a panic in every log call.)
//! - **Secrets never reach a line.** Every line is scrubbed of the API token
//!   whatever put it there (an error body, a version string, a user name).
//! - **`--debug` works in release builds** (see the slog features in
//!   Cargo.toml: slog otherwise compiles debug lines out of them).

use slog::{o, Drain};
use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How much to log, in upstream's (Python logging's) vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Every decision, including servers kept.
    Debug,
    /// Culls, pass summaries, warnings and errors (the default).
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

impl FromStr for LogLevel {
    type Err = String;

    /// Accepts Python logging's names (any case) and numbers.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_uppercase().as_str() {
            "DEBUG" | "10" | "TRACE" => Ok(LogLevel::Debug),
            "INFO" | "20" => Ok(LogLevel::Info),
            "WARN" | "WARNING" | "30" => Ok(LogLevel::Warn),
            "ERROR" | "40" | "CRITICAL" | "FATAL" | "50" => Ok(LogLevel::Error),
            _ => Err(format!(
                "--log-level={text:?} is not a log level; use DEBUG, INFO, WARN, ERROR or CRITICAL"
            )),
        }
    }
}

/// A cheap-to-clone handle every actor logs through; `Send + Sync` so the
/// panic hook can hold one too.
#[derive(Clone)]
pub struct Log {
    logger: slog::Logger,
    /// Lines below this are not even formatted.
    level: LogLevel,
    /// Strings never to print (the API token), replaced by `<redacted>`.
    secrets: Arc<[String]>,
    /// Lines that could not be written.
    dropped: Arc<AtomicU64>,
}

impl Log {
    /// Logs to stderr at `level` and above, never printing any of `secrets`.
    pub fn stderr(level: LogLevel, secrets: Vec<String>) -> Self {
        Self::to_writer(io::stderr(), level, secrets)
    }

    /// Logs to any writer; stderr in the program, a failing or capturing
    /// writer in tests.
    pub fn to_writer<W: io::Write + Send + 'static>(
        writer: W,
        level: LogLevel,
        secrets: Vec<String>,
    ) -> Self {
        let dropped = Arc::new(AtomicU64::new(0));
        let decorator = slog_term::PlainSyncDecorator::new(writer);
        let format = slog_term::FullFormat::new(decorator).build();
        let drain = DropFailures {
            inner: format,
            dropped: Arc::clone(&dropped),
        };
        Log {
            logger: slog::Logger::root(drain, o!()),
            level,
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            dropped,
        }
    }

    /// Drops everything; for unit tests of code that logs.
    pub fn discard() -> Self {
        Log {
            logger: slog::Logger::root(slog::Discard, o!()),
            level: LogLevel::Error,
            secrets: Arc::from(Vec::new()),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writes one line; use the `debug!`, `info!`, `warning!` and `error!` macros.
    pub fn write(&self, level: LogLevel, message: fmt::Arguments<'_>) {
        if level < self.level {
            // Skipped before formatting: a hub's worth of "not culling"
            // lines costs nothing at the default level.
            return;
        }
        let mut text = message.to_string();
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        match level {
            LogLevel::Debug => slog::debug!(self.logger, "{}", text),
            LogLevel::Info => slog::info!(self.logger, "{}", text),
            LogLevel::Warn => slog::warn!(self.logger, "{}", text),
            LogLevel::Error => slog::error!(self.logger, "{}", text),
        }
    }

    /// How many lines could not be written so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Routes panic reports through this log (scrubbed, and never failing on
    /// a closed stderr), replacing Rust's default message. The actor that
    /// panicked logs which actor it was and that it is being restarted.
    pub fn install_panic_hook(&self) {
        let log = self.clone();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "an unknown place".to_owned());
            log.write(
                LogLevel::Error,
                format_args!("Bug: panic at {location}: {}", panic_text(info.payload())),
            );
        }));
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A drain that never fails: a line its inner drain cannot write is dropped
/// and counted instead of becoming an error (which `fuse()` would turn into
/// a panic in the caller).
struct DropFailures<D> {
    inner: D,
    dropped: Arc<AtomicU64>,
}

impl<D: Drain> Drain for DropFailures<D> {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        if self.inner.log(record, values).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Logs at debug level: `debug!(log, "format", args...)`.
macro_rules! debug {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Debug, format_args!($($arg)+))
    };
}

/// Logs at info level: `info!(log, "format", args...)`.
macro_rules! info {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Info, format_args!($($arg)+))
    };
}

/// Logs at warning level: `warning!(log, "format", args...)`.
macro_rules! warning {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Warn, format_args!($($arg)+))
    };
}

/// Logs at error level: `error!(log, "format", args...)`.
macro_rules! error {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Error, format_args!($($arg)+))
    };
}

pub(crate) use {debug, error, info, warning};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn python_level_names_and_numbers() {
        assert_eq!("debug".parse(), Ok(LogLevel::Debug));
        assert_eq!("INFO".parse(), Ok(LogLevel::Info));
        assert_eq!("Warning".parse(), Ok(LogLevel::Warn));
        assert_eq!("CRITICAL".parse(), Ok(LogLevel::Error));
        assert_eq!("30".parse(), Ok(LogLevel::Warn));
        assert!("loud".parse::<LogLevel>().unwrap_err().contains("loud"));
    }

    /// A writer like a pipe whose reader has gone away.
    struct BrokenPipe;

    impl io::Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[test]
    fn a_line_that_cannot_be_written_is_dropped_and_counted_not_a_panic() {
        let log = Log::to_writer(BrokenPipe, LogLevel::Debug, Vec::new());
        info!(log, "one");
        error!(log, "two");
        assert_eq!(log.dropped(), 2);
    }

    #[test]
    fn secrets_are_scrubbed_from_every_line() {
        let out = Captured::default();
        let log = Log::to_writer(out.clone(), LogLevel::Info, vec!["s3cr3t-token".into()]);
        info!(log, "version \"s3cr3t-token\" and again s3cr3t-token.");
        let text = out.text();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(text.matches("<redacted>").count(), 2, "{text}");
    }

    #[test]
    fn lines_below_the_level_are_not_written() {
        let out = Captured::default();
        let log = Log::to_writer(out.clone(), LogLevel::Warn, Vec::new());
        info!(log, "quiet");
        warning!(log, "loud");
        let text = out.text();
        assert!(
            !text.contains("quiet") && text.contains("WARN loud"),
            "{text}"
        );
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn panic_payloads_of_both_kinds_give_their_text() {
        let owned: Box<dyn std::any::Any + Send> = Box::new(String::from("owned"));
        let borrowed: Box<dyn std::any::Any + Send> = Box::new("borrowed");
        let other: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(panic_text(owned.as_ref()), "owned");
        assert_eq!(panic_text(borrowed.as_ref()), "borrowed");
        assert_eq!(panic_text(other.as_ref()), "(no message)");
    }
}
