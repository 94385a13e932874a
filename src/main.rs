//! The `jupyterhub-idle-culler` command: parse, validate, log, run.

use jupyterhub_idle_culler::cli::{self, CliOutcome};
use jupyterhub_idle_culler::logging::{Log, LogLevel};
use jupyterhub_idle_culler::pipeline::supervisor;
use jupyterhub_idle_culler::settings::Settings;
use std::process::ExitCode;

/// Exit code for a command line or environment we cannot run with.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let raw = match cli::parse(std::env::args_os()) {
        Ok(raw) => raw,
        Err(CliOutcome::Info(text)) => {
            // clap prints `--version` itself, without a newline, and leaves
            // the text empty.
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(CliOutcome::Invalid(line)) => return usage_error(&line),
    };
    let settings = match Settings::from_args(&raw, |name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(err) => return usage_error(&err.to_string()),
    };
    let log = Log::stderr(settings.log_level);
    for warning in &settings.warnings {
        log.write(LogLevel::Warn, format_args!("{warning}"));
    }
    let system = actix::System::new();
    system.block_on(async {
        supervisor::stop_on_signals(&log);
        supervisor::start(&settings, &log);
    });
    match system.run_with_code() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("jupyterhub-idle-culler: error: the runtime failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(line: &str) -> ExitCode {
    eprintln!("jupyterhub-idle-culler: error: {line}");
    ExitCode::from(USAGE_ERROR)
}
