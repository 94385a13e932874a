//! What `--concurrency` costs a real JupyterHub: `benches/real-hub` (it
//! installs JupyterHub and configurable-http-proxy as the tests do, then
//! runs `cargo bench --bench real_hub`).
//!
//! A real JupyterHub (from PyPI, started by the test suite's launcher
//! `tests/it/support/real_hub.rs`) gets `--servers` idle servers whose
//! spawner takes `--stop-ms` to stop; then one `--once` pass of the
//! release-profile culler stops them all, once per concurrency in
//! `--concurrency` (a list). For each it prints the pass's wall time, the
//! hub's own time per `DELETE` (from its request log: what the culler
//! waits for) and the hub's latency to a probe client asking
//! `GET /hub/api/` every 100 ms during the pass (what a user logging in
//! meets meanwhile), as p50 and p99.
//!
//! ```text
//! benches/real-hub                                  # 200 servers x 200 ms at 1, 5, 10, 20, 50
//! benches/real-hub --servers 100 --stop-ms 500 --concurrency 5,10
//! ```

mod common;
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::culler::Culler;
use support::real_hub::{HubOptions, RealHub};

/// `--timeout` of the passes: servers are waited for until this idle.
const TIMEOUT: Duration = Duration::from_secs(3);

struct Options {
    servers: usize,
    stop: Duration,
    concurrency: Vec<usize>,
    /// `--python PYTHON`: a Python with `jupyterhub-idle-culler` 2.0.0
    /// (`benches/compare` makes one); its passes get rows of their own.
    python: Option<std::path::PathBuf>,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        servers: 200,
        stop: Duration::from_millis(200),
        concurrency: vec![1, 5, 10, 20, 50],
        python: None,
    };
    if !common::benchmarking() {
        // Under `cargo test`: a few servers at one concurrency, to show
        // the harness works (scripts/test provides the hub).
        (options.servers, options.concurrency) = (6, vec![3]);
    }
    for (key, value) in common::options()? {
        let number = |v: &str| common::number(&key, v);
        match key.as_str() {
            "--servers" => options.servers = number(&value)?.max(1),
            "--python" => options.python = Some(value.into()),
            "--stop-ms" => options.stop = Duration::from_millis(number(&value)? as u64),
            "--concurrency" => {
                options.concurrency = value
                    .split(',')
                    .map(number)
                    .collect::<Result<Vec<_>, _>>()?;
            }
            other => return Err(format!("unknown option {other} (see benches/real_hub.rs)")),
        }
    }
    Ok(options)
}

/// Asks `url` every [`common::PROBE_EVERY`] while `probing`; each answer's
/// latency.
fn probe(url: String, probing: Arc<AtomicBool>) -> Vec<Duration> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    common::probe(&probing, || agent.get(&url).call().is_ok())
}

/// The hub's own time for each `DELETE` of a server in `log`: JupyterHub
/// ends each request's log line with its duration, `... 204 DELETE
/// /hub/api/users/u-1/server (culler@127.0.0.1) 305.12ms`.
fn delete_times(log: &str) -> Vec<Duration> {
    log.lines()
        .filter(|line| line.contains(" DELETE /hub/api/users/"))
        .filter_map(|line| {
            line.rsplit(' ')
                .next()?
                .strip_suffix("ms")?
                .parse::<f64>()
                .ok()
        })
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect()
}

fn quantile(values: &[Duration], q: f64) -> String {
    common::ms(common::quantile(values, q))
}

fn main() {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("real_hub bench: {e}");
            std::process::exit(2);
        }
    };
    let hub = RealHub::start(HubOptions {
        light_stop_seconds: options.stop.as_secs_f64(),
        ..HubOptions::default()
    });
    let names: Vec<String> = (0..options.servers).map(|i| format!("u-{i:04}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for chunk in names.chunks(100) {
        hub.create_users(chunk);
    }
    let version = hub.api("GET", "/", None, &[200]);
    println!(
        "JupyterHub {} (log: {}); {} idle servers whose spawner takes {} ms to stop; {} CPUs\n",
        version["version"].as_str().unwrap_or("?"),
        hub.log_path().display(),
        options.servers,
        options.stop.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "| culler | --concurrency | pass | DELETE p50 | DELETE p99 | probe p50 | probe p99 | bound |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut runs: Vec<(&str, usize)> = options.concurrency.iter().map(|&c| ("rust", c)).collect();
    if options.python.is_some() {
        runs.extend(options.concurrency.iter().map(|&c| ("python", c)));
    }
    for (which, concurrency) in runs {
        for name in &names {
            hub.start_server(name, "");
        }
        hub.wait_until_idle(&names, TIMEOUT);
        let offset = hub.log().len();
        let probing = Arc::new(AtomicBool::new(true));
        let prober = {
            let url = format!("{}/", hub.api_url());
            let probing = Arc::clone(&probing);
            std::thread::spawn(move || probe(url, probing))
        };
        let mut culler = Culler::against(hub.api_url(), hub.culler_token()).args([
            "--once".to_owned(),
            format!("--timeout={}", TIMEOUT.as_secs()),
            format!("--concurrency={concurrency}"),
        ]);
        if let (true, Some(python)) = (which == "python", &options.python) {
            // The Python culler has no --once: benches/python_culler.py
            // runs one pass of it.
            let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_culler.py");
            culler = Culler::new()
                .env("JUPYTERHUB_API_TOKEN", hub.culler_token())
                .program(&python.display().to_string())
                .args([
                    driver.to_owned(),
                    hub.api_url().to_owned(),
                    TIMEOUT.as_secs().to_string(),
                    concurrency.to_string(),
                    "0".to_owned(),
                ]);
        }
        let out = culler.deadline(Duration::from_secs(600)).run();
        probing.store(false, Ordering::Relaxed);
        let probes = prober.join().expect("the probe thread");
        if !out.success() {
            eprintln!("the culler failed:\n{out}");
            std::process::exit(1);
        }
        let left = names.iter().filter(|n| hub.has_server(n, "")).count();
        if left > 0 {
            eprintln!("{left} servers were not stopped:\n{out}");
            std::process::exit(1);
        }
        let deletes = delete_times(&hub.log_since(offset));
        let bound = options.stop * options.servers as u32 / concurrency.max(1) as u32;
        println!(
            "| {which} | {concurrency} | {:.1} s | {} | {} | {} | {} | {:.1} s |",
            out.elapsed.as_secs_f64(),
            quantile(&deletes, 0.5),
            quantile(&deletes, 0.99),
            quantile(&probes, 0.5),
            quantile(&probes, 0.99),
            bound.as_secs_f64(),
        );
    }
}
