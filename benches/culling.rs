//! One culling pass at hub scale, measured: `cargo bench --bench culling`.
//!
//! For each scenario it starts the project's fake hub (the same one the
//! tests use, `tests/it/support/fake_hub`) with a generated population, runs
//! one `--once` pass of the release-profile culler against it, and prints
//! what an operator sizing `--concurrency` needs: wall time from launch to
//! exit, the culler's CPU time and peak RSS, the requests it sent, the most
//! it had in flight, the hub's latency to a probe client during the pass
//! (one `GET /hub/api/` every 100 ms, as a user's browser would meet), and
//! the efficiency against the bound the concurrency allows
//! (`stops x stop latency / concurrency`).
//!
//! With `--python PYTHON` (see `benches/compare`), the same scenarios run
//! the Python culler `jupyterhub-idle-culler` 2.0.0 too, through
//! `benches/python_culler.py` (it has no `--once`), alternating with ours
//! for `--reps` repetitions, and prints medians and ratios.
//!
//! ```text
//! cargo bench --bench culling                          # every preset, ours only
//! cargo bench --bench culling -- --only bound-c10 --reps 5
//! cargo bench --bench culling -- --users 20000 --running 4000 --idle 2000 \
//!     --stop-latency-ms 100 --concurrency 20 --page-size 200 --named 1
//! benches/compare                                      # side by side with Python
//! ```
//!
//! Scenario options (each replaces the presets by one custom scenario):
//! `--users`, `--running` (users with a running default server), `--idle`
//! (how many of those are idle), `--named` (named servers per running user,
//! idle with their user, stopped and kept), `--stop-latency-ms`,
//! `--list-latency-ms` (how long a page of users takes), `--page-size`
//! (`--api-page-size`; default: the hub's 50), `--concurrency`,
//! `--activity` (`server`: ask the servers the hub would cull).

mod common;
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/fake_hub/mod.rs"]
mod fake_hub;

use common::quantile;

use fake_hub::{ago, FakeHub, FakeServer, FakeUser, HubConfig, RequestKind, PROBE_HEADER};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The release-profile culler (`cargo bench` builds it with the bench
/// profile, which is the release profile).
const CULLER: &str = env!("CARGO_BIN_EXE_jupyterhub-idle-culler-rs");
/// The culler to measure: [`CULLER`], or another build named by
/// `CULLER_BENCH_BIN` (to compare two builds with the same scenarios).
fn culler() -> PathBuf {
    std::env::var_os("CULLER_BENCH_BIN").map_or_else(|| PathBuf::from(CULLER), PathBuf::from)
}

/// `--timeout` of every pass: idle users were last active 2 h ago, busy
/// ones a minute ago.
const TIMEOUT_SECS: u64 = 3600;

/// One hub to cull, and how.
#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    users: usize,
    running: usize,
    idle: usize,
    named: usize,
    stop_latency: Duration,
    /// How long the hub takes to answer a page of users (a real hub with
    /// 10,000+ users takes tens of ms a page).
    list_latency: Duration,
    page_size: Option<usize>,
    concurrency: usize,
    /// `--activity=server`: every server the hub's timestamps would cull
    /// is asked about its kernels first (three requests), through the fake
    /// hub, which plays the proxy too; they say idle, so the stops are the
    /// same.
    asks_servers: bool,
}

impl Scenario {
    fn preset(
        name: &str,
        users: usize,
        running: usize,
        idle: usize,
        stop_latency_ms: u64,
        page_size: Option<usize>,
        concurrency: usize,
    ) -> Scenario {
        Scenario {
            name: name.to_owned(),
            users,
            running,
            idle,
            named: 0,
            stop_latency: Duration::from_millis(stop_latency_ms),
            list_latency: Duration::ZERO,
            page_size,
            concurrency,
            asks_servers: false,
        }
    }

    /// The same, asking the servers it would cull (`--activity=server`).
    fn asking_servers(mut self) -> Scenario {
        self.asks_servers = true;
        self
    }

    /// The same, with pages of users that take `ms` to answer.
    fn lists_taking(mut self, ms: u64) -> Scenario {
        self.list_latency = Duration::from_millis(ms);
        self
    }

    /// The presets: throughput at the bound (stops that take 50 ms, at
    /// concurrency 10 and 50; and again with pages of users that take
    /// 50 ms, the slow end of what a hub of 10,000+ users takes), and scale
    /// with no latency (CPU and memory from 10,000 to 1,000,000 users); and
    /// what asking the servers costs (10,000 running servers, 1,000 of
    /// them idle by the hub's timestamps, with and without
    /// `--activity=server`).
    fn presets() -> Vec<Scenario> {
        vec![
            Scenario::preset("bound-c10", 5_000, 1_000, 500, 50, None, 10),
            Scenario::preset("bound-c50", 50_000, 10_000, 5_000, 50, None, 50),
            Scenario::preset("slow-lists-c10", 5_000, 1_000, 500, 50, None, 10).lists_taking(50),
            Scenario::preset("slow-lists-c50", 50_000, 10_000, 5_000, 50, None, 50)
                .lists_taking(50),
            Scenario::preset("scale-10k", 10_000, 1_000, 500, 0, Some(200), 10),
            Scenario::preset("scale-100k", 100_000, 10_000, 5_000, 0, Some(200), 10),
            Scenario::preset("scale-1m", 1_000_000, 10_000, 5_000, 0, Some(200), 10),
            Scenario::preset("activity-hub", 10_000, 10_000, 1_000, 0, Some(200), 10),
            Scenario::preset("activity-server", 10_000, 10_000, 1_000, 0, Some(200), 10)
                .asking_servers(),
        ]
    }

    /// Servers the pass must stop.
    fn stops(&self) -> usize {
        self.idle * (1 + self.named)
    }

    /// The least wall time the concurrency allows for the requests of the
    /// pass: the stops, and, when pages take time, the page reads too
    /// (every request counts against `--concurrency`), of which the first
    /// two (the probe that finds the last page, and that last page) come
    /// one after the other before any stop can. With pages that take no
    /// time: the stops alone.
    fn bound(&self) -> Duration {
        let slots = self.concurrency.max(1) as u32;
        let stops = self.stop_latency * self.stops() as u32 / slots;
        if self.list_latency.is_zero() {
            return stops;
        }
        // The probe, then every page of users with a ready server.
        let page = self.page_size.unwrap_or(50).max(1);
        let reads = 1 + self.running.div_ceil(page) as u32;
        let serial = self.list_latency * 2.min(reads);
        let overlapped = self.list_latency * reads.saturating_sub(2) / slots;
        serial + stops + overlapped
    }

    /// The fake hub's population: running users spread evenly over the
    /// id order, and the idle ones spread evenly among them (so every
    /// page holds some of each, as on a real hub).
    fn population(&self) -> Vec<FakeUser> {
        let every = self.users.checked_div(self.running).unwrap_or(usize::MAX);
        let idle_every = self.running.checked_div(self.idle).unwrap_or(usize::MAX);
        let idle_at = ago(Duration::from_secs(2 * 3600));
        let busy_at = ago(Duration::from_secs(60));
        let mut running = 0;
        (0..self.users)
            .map(|i| {
                let name = format!("user-{i:07}");
                let is_running = every != usize::MAX && i % every == 0 && running < self.running;
                if !is_running {
                    return FakeUser::new(&name).last_activity(idle_at);
                }
                let idle = running % idle_every == 0 && running / idle_every < self.idle;
                running += 1;
                let at = if idle { idle_at } else { busy_at };
                let mut user = FakeUser::new(&name)
                    .last_activity(at)
                    .server(server(FakeServer::default_server(), at));
                for n in 0..self.named {
                    user = user.server(server(FakeServer::named(&format!("named-{n}")), at));
                }
                user
            })
            .collect()
    }

    fn hub(&self) -> FakeHub {
        let mut config = HubConfig::new().users(self.population());
        if !self.list_latency.is_zero() {
            // Every request but the version and the DELETEs, which have
            // their own latency.
            config = config.latency(self.list_latency);
        }
        if !self.stop_latency.is_zero() || !self.list_latency.is_zero() {
            config = config.delete_latency(self.stop_latency);
        }
        FakeHub::start(config)
    }
}

fn server(server: FakeServer, at: chrono::DateTime<chrono::Utc>) -> FakeServer {
    server.started(at).last_activity(at)
}

/// Which culler a run used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Ours,
    Python,
}

/// What one pass cost.
#[derive(Clone, Debug)]
struct Run {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
    /// The culler's requests, but `GET /` (which the probe sends too).
    requests: usize,
    max_in_flight: usize,
    stopped: usize,
    probe: Vec<Duration>,
}

/// Runs one pass of `which` against a fresh hub for `scenario`.
fn run(
    launcher: &mut Launcher,
    scenario: &Scenario,
    which: Which,
    python: Option<&Path>,
) -> Result<Run, String> {
    let hub = scenario.hub();
    let (program, args): (PathBuf, Vec<String>) = match which {
        Which::Ours => {
            let mut args = vec![
                format!("--url={}", hub.url()),
                "--once".into(),
                format!("--timeout={TIMEOUT_SECS}"),
                format!("--concurrency={}", scenario.concurrency),
            ];
            if let Some(size) = scenario.page_size {
                args.push(format!("--api-page-size={size}"));
            }
            if scenario.asks_servers {
                args.push("--activity=server".into());
                args.push(format!("--proxy-url=http://{}", hub.addr()));
            }
            (culler(), args)
        }
        Which::Python => {
            let python = python.ok_or("no --python given")?;
            let args = vec![
                driver().display().to_string(),
                hub.url().to_owned(),
                TIMEOUT_SECS.to_string(),
                scenario.concurrency.to_string(),
                scenario.page_size.unwrap_or(0).to_string(),
            ];
            (python.to_path_buf(), args)
        }
    };

    let probing = Arc::new(AtomicBool::new(true));
    let probe = {
        let probing = Arc::clone(&probing);
        let addr = hub.addr();
        std::thread::spawn(move || probe_hub(addr, &probing))
    };
    let ran = launcher.run(&program, &args);
    probing.store(false, Ordering::Relaxed);
    let probe = probe.join().map_err(|_| "the probe thread panicked")?;
    let ran = ran?;
    if !ran.success {
        return Err(format!(
            "{which:?} failed ({}):\n{}",
            ran.status, ran.stderr_tail
        ));
    }
    let state = hub.state();
    let stopped = state.stopped_servers().len();
    // The probe asks for the version: the culler's requests are the rest.
    let requests = state
        .requests()
        .iter()
        .filter(|r| r.kind != RequestKind::Version)
        .count();
    let max_in_flight = state.max_in_flight;
    let cutoff = ago(Duration::from_secs(TIMEOUT_SECS));
    let wrongly = state
        .stopped_servers()
        .iter()
        .filter(|(user, _)| {
            state
                .user(user)
                .and_then(|u| u.last_activity)
                .is_some_and(|at| at > cutoff)
        })
        .count();
    drop(state);
    if stopped != scenario.stops() || wrongly > 0 {
        return Err(format!(
            "{which:?} stopped {stopped} servers ({wrongly} of them busy), expected {}:\n{}",
            scenario.stops(),
            ran.stderr_tail
        ));
    }
    Ok(Run {
        wall: ran.wall,
        cpu: ran.cpu,
        peak_rss_kib: ran.peak_rss_kib,
        requests,
        max_in_flight,
        stopped,
        probe,
    })
}

/// A small process, started before any hub is built, that starts the
/// cullers and measures them. Why: a process started from the benchmark
/// itself would report the benchmark's peak RSS (a million fake users)
/// as its own, because Linux carries the peak over an `exec`; started
/// from this small process, the culler's peak is its own.
struct Launcher {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

/// What the launcher measured of one process.
struct Ran {
    success: bool,
    status: String,
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
    stderr_tail: String,
}

impl Launcher {
    fn start() -> Result<Launcher, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .arg(LAUNCHER_FLAG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the launcher: {e}"))?;
        let input = child.stdin.take().expect("piped stdin");
        let output = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Launcher {
            child,
            input,
            output,
        })
    }

    /// Runs `program args` to its end through the launcher.
    fn run(&mut self, program: &Path, args: &[String]) -> Result<Ran, String> {
        use std::io::BufRead;
        let request = serde_json::json!({ "program": program, "args": args });
        writeln!(self.input, "{request}").map_err(|e| format!("launcher: {e}"))?;
        let mut line = String::new();
        self.output
            .read_line(&mut line)
            .map_err(|e| format!("launcher: {e}"))?;
        let answer: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("launcher said {line:?}: {e}"))?;
        if let Some(error) = answer["error"].as_str() {
            return Err(error.to_owned());
        }
        let nanos = |key: &str| Duration::from_nanos(answer[key].as_u64().unwrap_or(0));
        Ok(Ran {
            success: answer["success"].as_bool().unwrap_or(false),
            status: answer["status"].as_str().unwrap_or("?").to_owned(),
            wall: nanos("wall_ns"),
            cpu: nanos("cpu_ns"),
            peak_rss_kib: answer["peak_rss_kib"].as_u64().unwrap_or(0),
            stderr_tail: answer["stderr_tail"].as_str().unwrap_or("").to_owned(),
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flag that makes this binary the launcher.
const LAUNCHER_FLAG: &str = "--launcher";

/// The launcher's loop: one JSON request per line on stdin, one JSON
/// answer per line on stdout.
fn launcher_main() {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let answer = match launch(&line) {
            Ok(answer) => answer,
            Err(error) => serde_json::json!({ "error": error }),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

/// Runs one request of the launcher's and measures it.
fn launch(line: &str) -> Result<serde_json::Value, String> {
    let request: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("bad request {line:?}: {e}"))?;
    let program = request["program"].as_str().ok_or("no program")?;
    let args: Vec<&str> = request["args"]
        .as_array()
        .ok_or("no args")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(&args)
        .env("JUPYTERHUB_API_TOKEN", "bench-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    let drain = std::thread::spawn(move || {
        // Only the tail is kept, for a failure's message.
        let mut tail = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 8192 {
                tail.drain(..tail.len() - 8192);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    });
    let (status, (cpu, peak_rss_kib)) = wait4(child.id() as i32)?;
    let wall = started.elapsed();
    // Reaped by wait4: std must not wait for it again.
    std::mem::forget(child);
    let tail = drain.join().unwrap_or_default();
    Ok(serde_json::json!({
        "success": status.success(),
        "status": status.to_string(),
        "wall_ns": wall.as_nanos() as u64,
        "cpu_ns": cpu.as_nanos() as u64,
        "peak_rss_kib": peak_rss_kib,
        "stderr_tail": tail,
    }))
}

/// `benches/python_culler.py`, beside this file.
fn driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_culler.py")
}

/// Waits for the child and returns its status with its CPU time (user +
/// system) and peak RSS, which only the parent's `wait4` can know exactly.
fn wait4(pid: i32) -> Result<(std::process::ExitStatus, (Duration, u64)), String> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child; the pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {err}"));
        }
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = time(usage.ru_utime) + time(usage.ru_stime);
    // Linux reports ru_maxrss in KiB.
    Ok((
        std::process::ExitStatus::from_raw(status),
        (cpu, usage.ru_maxrss as u64),
    ))
}

/// Asks the hub for its version every [`common::PROBE_EVERY`] while `probing`,
/// each on a new connection (as a browser's first request would), and
/// returns each answer's latency.
fn probe_hub(addr: std::net::SocketAddr, probing: &AtomicBool) -> Vec<Duration> {
    common::probe(probing, || {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "GET /hub/api/ HTTP/1.1\r\nHost: probe\r\n{PROBE_HEADER}: 1\r\nConnection: close\r\n\r\n"
        );
        let mut answer = Vec::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_end(&mut answer).is_ok()
            && answer.starts_with(b"HTTP/1.1 200")
    })
}

fn median<T: Ord + Copy>(values: &mut [T]) -> T {
    values.sort();
    values[values.len() / 2]
}

/// The medians of one culler's runs of one scenario.
struct Summary {
    wall: Duration,
    cpu: Duration,
    rss_kib: u64,
    requests: usize,
    max_in_flight: usize,
    probe_p50: Option<Duration>,
    probe_p99: Option<Duration>,
}

fn summarize(runs: &[Run]) -> Summary {
    let probes: Vec<Duration> = runs.iter().flat_map(|r| r.probe.iter().copied()).collect();
    Summary {
        wall: median(&mut runs.iter().map(|r| r.wall).collect::<Vec<_>>()),
        cpu: median(&mut runs.iter().map(|r| r.cpu).collect::<Vec<_>>()),
        rss_kib: median(&mut runs.iter().map(|r| r.peak_rss_kib).collect::<Vec<_>>()),
        requests: median(&mut runs.iter().map(|r| r.requests).collect::<Vec<_>>()),
        max_in_flight: runs.iter().map(|r| r.max_in_flight).max().unwrap_or(0),
        probe_p50: quantile(&probes, 0.5),
        probe_p99: quantile(&probes, 0.99),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn print_summary(scenario: &Scenario, which: Which, s: &Summary, reps: usize) {
    let efficiency = if scenario.bound().is_zero() {
        "-".to_owned()
    } else {
        format!(
            "{:.1} %",
            100.0 * scenario.bound().as_secs_f64() / s.wall.as_secs_f64()
        )
    };
    println!(
        "  {:<7} wall {:>8}  cpu {:>8}  peak RSS {:>6.1} MiB  requests {:>6}  max in flight {:>3}  bound {:>7}  efficiency {:>7}  probe p50 {:>6} p99 {:>6}  (median of {reps})",
        match which {
            Which::Ours => "rust",
            Which::Python => "python",
        },
        secs(s.wall),
        secs(s.cpu),
        s.rss_kib as f64 / 1024.0,
        s.requests,
        s.max_in_flight,
        secs(scenario.bound()),
        efficiency,
        common::ms(s.probe_p50),
        common::ms(s.probe_p99),
    );
}

/// Command-line options (after `cargo bench --bench culling --`).
struct Options {
    scenarios: Vec<Scenario>,
    reps: usize,
    python: Option<PathBuf>,
    /// `--python-only NAME`: the scenarios the Python culler runs (all when
    /// empty); it takes minutes where ours takes seconds.
    python_only: Vec<String>,
}

impl Options {
    fn python_runs(&self, scenario: &str) -> bool {
        self.python_only.is_empty() || self.python_only.iter().any(|s| s == scenario)
    }
}

/// One scenario's medians: ours, and the Python culler's when it ran.
type Result3 = (Scenario, Option<Summary>, Option<Summary>);

/// The project's performance targets, checked on the presets that ran;
/// prints each with PASS or FAIL and returns whether all passed.
fn check_targets(results: &[Result3]) -> bool {
    let find = |name: &str| results.iter().find(|(s, _, _)| s.name == name);
    let mut lines: Vec<(String, bool)> = Vec::new();
    let efficiency =
        |s: &Scenario, o: &Summary| s.bound().as_secs_f64() / o.wall.as_secs_f64() * 100.0;
    for (name, least) in [
        ("bound-c10", 95.0),
        ("bound-c50", 90.0),
        ("slow-lists-c10", 95.0),
        ("slow-lists-c50", 90.0),
    ] {
        if let Some((s, Some(o), theirs)) = find(name) {
            let e = efficiency(s, o);
            let mut line = format!("{name}: {e:.1} % of the bound (target >= {least} %)");
            if let Some(p) = theirs {
                line += &format!(
                    ", {:.1}x faster than Python",
                    p.wall.as_secs_f64() / o.wall.as_secs_f64()
                );
            }
            lines.push((line, e >= least));
        }
    }
    if let Some((_, Some(o), Some(p))) = find("scale-100k") {
        let cpu = p.cpu.as_secs_f64() / o.cpu.as_secs_f64().max(1e-6);
        let rss = p.rss_kib as f64 / o.rss_kib.max(1) as f64;
        lines.push((
            format!("scale-100k: CPU 1/{cpu:.0} of Python's (target <= 1/30)"),
            cpu >= 30.0,
        ));
        lines.push((
            format!("scale-100k: peak RSS 1/{rss:.1} of Python's (target <= 1/8)"),
            rss >= 8.0,
        ));
    }
    let flat: Vec<u64> = ["scale-10k", "scale-100k", "scale-1m"]
        .iter()
        .filter_map(|n| find(n).and_then(|(_, o, _)| o.as_ref()).map(|o| o.rss_kib))
        .collect();
    if flat.len() == 3 {
        let (lo, hi) = (flat.iter().min().copied(), flat.iter().max().copied());
        let ratio = hi.unwrap_or(0) as f64 / lo.unwrap_or(1).max(1) as f64;
        lines.push((
            format!(
                "peak RSS from 10k to 1M users: {} MiB, ratio {ratio:.2} (target <= 1.10)",
                flat.iter()
                    .map(|k| format!("{:.1}", *k as f64 / 1024.0))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
            ratio <= 1.10,
        ));
    }
    if lines.is_empty() {
        return true;
    }
    println!(
        "
targets:"
    );
    for (line, ok) in &lines {
        println!("  {} {line}", if *ok { "PASS" } else { "FAIL" });
    }
    lines.iter().all(|(_, ok)| *ok)
}

fn parse_options() -> Result<Options, String> {
    let mut reps = 3;
    let mut python = None;
    let mut only: Vec<String> = Vec::new();
    let mut python_only: Vec<String> = Vec::new();
    let mut custom = Scenario::preset("custom", 10_000, 1_000, 500, 0, None, 10);
    let mut is_custom = false;
    for (key, value) in common::options()? {
        let number = || common::number(&key, &value);
        match key.as_str() {
            "--reps" => reps = number()?.max(1),
            "--python" => python = Some(PathBuf::from(&value)),
            "--python-only" => python_only.push(value.clone()),
            "--only" => only.push(value.clone()),
            "--users" => (custom.users, is_custom) = (number()?, true),
            "--running" => (custom.running, is_custom) = (number()?, true),
            "--idle" => (custom.idle, is_custom) = (number()?, true),
            "--named" => (custom.named, is_custom) = (number()?, true),
            "--stop-latency-ms" => {
                custom.stop_latency = Duration::from_millis(number()? as u64);
                is_custom = true;
            }
            "--list-latency-ms" => {
                custom.list_latency = Duration::from_millis(number()? as u64);
                is_custom = true;
            }
            "--page-size" => (custom.page_size, is_custom) = (Some(number()?), true),
            "--concurrency" => (custom.concurrency, is_custom) = (number()?.max(1), true),
            "--activity" => (custom.asks_servers, is_custom) = (value == "server", true),
            other => return Err(format!("unknown option {other} (see benches/culling.rs)")),
        }
    }
    if !common::benchmarking() {
        // Under `cargo test`: a small hub, once, to show the harness works
        // (it fails if the culler fails or stops the wrong servers).
        custom = Scenario {
            name: "smoke (cargo test)".into(),
            users: 2_000,
            running: 400,
            idle: 200,
            named: 1,
            stop_latency: Duration::from_millis(5),
            list_latency: Duration::from_millis(2),
            page_size: None,
            concurrency: 10,
            // The smoke asks the servers too, so the harness's fake
            // single-user servers are exercised with the rest.
            asks_servers: true,
        };
        (is_custom, reps) = (true, 1);
    }
    let scenarios = if is_custom {
        if custom.running > custom.users || custom.idle > custom.running {
            return Err("need idle <= running <= users".into());
        }
        vec![custom]
    } else {
        let all = Scenario::presets();
        let picked: Vec<Scenario> = all
            .into_iter()
            .filter(|s| only.is_empty() || only.contains(&s.name))
            .collect();
        if picked.is_empty() {
            return Err(format!("no preset named {only:?}"));
        }
        picked
    };
    Ok(Options {
        scenarios,
        reps,
        python,
        python_only,
    })
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some(LAUNCHER_FLAG) {
        return launcher_main();
    }
    let mut launcher = match Launcher::start() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("culling bench: {e}");
            std::process::exit(1);
        }
    };
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("culling bench: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "culler: {}\nmachine: {} CPUs; fake hub in this process; the Python culler: {}",
        culler().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options
            .python
            .as_deref()
            .map_or("not run (give --python, see benches/compare)".into(), |p| p
                .display()
                .to_string())
    );
    let mut failed = false;
    let mut results = Vec::new();
    for scenario in &options.scenarios {
        println!(
            "\n{}: {} users, {} running, {} idle, {} named servers each, stops take {}, pages take {}, page size {}, --concurrency={}",
            scenario.name,
            scenario.users,
            scenario.running,
            scenario.idle,
            scenario.named,
            common::ms(Some(scenario.stop_latency)),
            common::ms(Some(scenario.list_latency)),
            scenario.page_size.map_or("hub default (50)".into(), |p| p.to_string()),
            scenario.concurrency
        );
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..options.reps {
            // Alternating, so that drift in the machine's load hits both.
            let mut order = vec![Which::Ours];
            // The Python culler cannot ask servers: no like-for-like run.
            if options.python.is_some()
                && options.python_runs(&scenario.name)
                && !scenario.asks_servers
            {
                order.push(Which::Python);
            }
            for which in order {
                match run(&mut launcher, scenario, which, options.python.as_deref()) {
                    Ok(r) => {
                        debug_assert_eq!(r.stopped, scenario.stops());
                        match which {
                            Which::Ours => ours.push(r),
                            Which::Python => theirs.push(r),
                        }
                    }
                    Err(e) => {
                        eprintln!("  {}: {e}", scenario.name);
                        failed = true;
                    }
                }
            }
        }
        let ours = (!ours.is_empty()).then(|| summarize(&ours));
        let theirs = (!theirs.is_empty()).then(|| summarize(&theirs));
        if let Some(s) = &ours {
            print_summary(scenario, Which::Ours, s, options.reps);
        }
        if let Some(s) = &theirs {
            print_summary(scenario, Which::Python, s, options.reps);
        }
        if let (Some(o), Some(p)) = (&ours, &theirs) {
            println!(
                "  python / rust: wall {:.1}x, cpu {:.1}x, peak RSS {:.1}x",
                p.wall.as_secs_f64() / o.wall.as_secs_f64(),
                p.cpu.as_secs_f64() / o.cpu.as_secs_f64().max(1e-6),
                p.rss_kib as f64 / o.rss_kib.max(1) as f64
            );
        }
        results.push((scenario.clone(), ours, theirs));
    }
    if !check_targets(&results) {
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
