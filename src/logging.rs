//! Log set-up and the logging calls the rest of the crate uses; the only
//! module that knows slog, so a move to `tracing` touches this file alone.
//!
//! Lines go to stderr through slog-term: `Nov 25 22:40:01.123 INFO message`.

use slog::{o, Drain};
use std::fmt;
use std::str::FromStr;

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

/// A cheap-to-clone handle every actor logs through.
#[derive(Clone)]
pub struct Log(slog::Logger);

impl Log {
    /// Logs to stderr at `level` and above.
    pub fn stderr(level: LogLevel) -> Self {
        let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
        let drain = slog_term::FullFormat::new(decorator).build().fuse();
        let drain = slog::LevelFilter::new(drain, to_slog(level)).fuse();
        Log(slog::Logger::root(drain, o!()))
    }

    /// Drops everything; for unit tests of code that logs.
    pub fn discard() -> Self {
        Log(slog::Logger::root(slog::Discard, o!()))
    }

    /// Writes one line; use the `debug!`, `info!`, `warning!` and `error!` macros.
    pub fn write(&self, level: LogLevel, message: fmt::Arguments<'_>) {
        match level {
            LogLevel::Debug => slog::debug!(self.0, "{}", message),
            LogLevel::Info => slog::info!(self.0, "{}", message),
            LogLevel::Warn => slog::warn!(self.0, "{}", message),
            LogLevel::Error => slog::error!(self.0, "{}", message),
        }
    }
}

fn to_slog(level: LogLevel) -> slog::Level {
    match level {
        LogLevel::Debug => slog::Level::Debug,
        LogLevel::Info => slog::Level::Info,
        LogLevel::Warn => slog::Level::Warning,
        LogLevel::Error => slog::Level::Error,
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

    #[test]
    fn python_level_names_and_numbers() {
        assert_eq!("debug".parse(), Ok(LogLevel::Debug));
        assert_eq!("INFO".parse(), Ok(LogLevel::Info));
        assert_eq!("Warning".parse(), Ok(LogLevel::Warn));
        assert_eq!("CRITICAL".parse(), Ok(LogLevel::Error));
        assert_eq!("30".parse(), Ok(LogLevel::Warn));
        assert!("loud".parse::<LogLevel>().unwrap_err().contains("loud"));
    }
}
