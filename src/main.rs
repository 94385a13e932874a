//! The `jupyterhub-idle-culler-rs` command: parse, validate, log, run.

use actix::Actor;
use jupyterhub_idle_culler_rs::cli::{self, CliOutcome};
use jupyterhub_idle_culler_rs::config;
use jupyterhub_idle_culler_rs::exit::Exit;
use jupyterhub_idle_culler_rs::hub::Observer;
use jupyterhub_idle_culler_rs::logging::{Log, LogLevel};
use jupyterhub_idle_culler_rs::metrics::Metrics;
use jupyterhub_idle_culler_rs::pipeline::supervisor::Supervisor;
use jupyterhub_idle_culler_rs::serve::{self, Access, BindAddress, Routes};
use jupyterhub_idle_culler_rs::settings::Settings;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let raw = match cli::parse(std::env::args_os()) {
        Ok(raw) => raw,
        Err(CliOutcome::Info(text)) => {
            // clap prints `--version` itself, without a newline, and leaves
            // the text empty. A closed stdout is no reason to panic.
            let _ = writeln!(std::io::stdout(), "{text}");
            return ExitCode::SUCCESS;
        }
        Err(CliOutcome::Invalid(line)) => return usage_error(&line),
    };
    if raw.generate_config {
        let _ = write!(std::io::stdout(), "{}", config::generate());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_args(&raw, |name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(err) => return usage_error(&err.to_string()),
    };
    let mut secrets = vec![settings.hub.token.expose().to_owned()];
    secrets.extend(settings.notify.as_ref().and_then(|n| n.secret.clone()));
    let log = Log::stderr(settings.log_level, settings.log_format, secrets);
    log.install_panic_hook();
    for warning in &settings.warnings {
        log.write(LogLevel::Warn, format_args!("{warning}"));
    }
    let metrics = Metrics::new();
    metrics.count_dropped_lines(log.dropped_counter());
    // Bound before anything starts: a port in use is a usage error now,
    // not a surprise later.
    let endpoint = match &settings.metrics {
        None => None,
        Some(address) => match serve::bind(address) {
            Ok(listener) => Some((listener, address)),
            Err(err) => return usage_error(&err.to_string()),
        },
    };
    let system = actix::System::new();
    system.block_on(async {
        if let Some((listener, address)) = endpoint {
            serve_metrics(listener, address, &settings, &metrics, &log);
        }
        Supervisor::new(settings.clone(), Arc::clone(&metrics), log.clone()).start();
    });
    match system.run_with_code() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            log.write(LogLevel::Error, format_args!("the runtime failed: {err}"));
            ExitCode::from(Exit::GaveUp.code() as u8)
        }
    }
}

/// Starts `/metrics` and `/health` on the culler's system, saying where and
/// for whom; a failure is a warning: metrics never stop culling.
fn serve_metrics(
    listener: std::net::TcpListener,
    address: &BindAddress,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    log: &Log,
) {
    // The port actually bound (`:0` picks one).
    let bound = listener
        .local_addr()
        .map_or_else(|_| address.to_string(), |a| a.to_string());
    let routes = Routes::new(settings.service_prefix.as_deref(), settings.health_failures);
    let access = if settings.metrics_auth {
        let observer: Arc<dyn Observer> = metrics.clone();
        Access::HubToken {
            hub: settings.hub.clone(),
            observer,
        }
    } else {
        Access::Open
    };
    let prefix = settings
        .service_prefix
        .as_deref()
        .map(|p| format!(" (and under {p})"))
        .unwrap_or_default();
    let who = if settings.metrics_auth {
        "/metrics needs a hub token with the read:metrics scope"
    } else {
        "/metrics is open to this machine (--metrics-auth=false)"
    };
    log.write(
        LogLevel::Info,
        format_args!(
            "Serving /metrics and /health at http://{bound}/ ({}){prefix}; {who}",
            address.origin
        ),
    );
    match serve::serve(listener, Arc::clone(metrics), routes, access, log.clone()) {
        Ok(server) => {
            actix_rt::spawn(server);
        }
        Err(err) => log.write(
            LogLevel::Warn,
            format_args!("Cannot serve metrics at {bound}: {err}"),
        ),
    }
}

fn usage_error(line: &str) -> ExitCode {
    // Not eprintln!: it panics when stderr is closed.
    let _ = writeln!(
        std::io::stderr(),
        "jupyterhub-idle-culler-rs: error: {line}"
    );
    ExitCode::from(Exit::Usage.code() as u8)
}
