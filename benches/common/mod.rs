//! What both benchmarks need: their command-line words, a probe client's
//! clock, and quantiles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the probe client asks the hub something.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Whether `cargo bench` started this benchmark (it passes `--bench`).
/// `cargo test --all-targets` runs benchmarks too, with the test
/// harness's arguments: then each runs a small case once, to show it
/// still works, and ignores the arguments.
pub fn benchmarking() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The options after `cargo bench --bench NAME --`, as `(key, value)`
/// pairs: `--key=value` and `--key value` alike; `--bench`, which cargo
/// passes to every benchmark, is dropped. Every option takes a value.
/// Outside `cargo bench` ([`benchmarking`]), there are none.
pub fn options() -> Result<Vec<(String, String)>, String> {
    if !benchmarking() {
        return Ok(Vec::new());
    }
    let mut args = std::env::args().skip(1);
    let mut pairs = Vec::new();
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        if key == "--bench" {
            continue;
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or(format!("{key} needs a value"))?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Parses an option's value as a count.
pub fn number(key: &str, value: &str) -> Result<usize, String> {
    value
        .trim()
        .parse::<usize>()
        .map_err(|e| format!("{key}: {e}"))
}

/// Calls `ask` every [`PROBE_EVERY`] while `probing`, and returns the
/// latency of each call that answered (`ask` returns whether it did).
pub fn probe(probing: &AtomicBool, mut ask: impl FnMut() -> bool) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut next = Instant::now();
    while probing.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if ask() {
            latencies.push(sent.elapsed());
        }
        next += PROBE_EVERY;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    latencies
}

/// The value at quantile `q` (nearest rank) of `values`.
pub fn quantile(values: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// Milliseconds, for tables; `-` for nothing measured.
pub fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0),
    )
}
