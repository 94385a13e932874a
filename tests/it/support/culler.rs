//! Runs the culler binary the way deployments do: command-line flags plus the
//! `JUPYTERHUB_*` environment, with a deadline so that a hung culler fails
//! the test clearly instead of hanging the whole suite.
//!
//! Output is read by one thread per pipe; the deadline is enforced by waiting
//! on those threads with a timeout, so nothing sleeps. A background culler's
//! log can be read while it runs, line by line as it is written, so a test
//! waits for a line instead of sleeping ([`RunningCuller::wait_for_log`]).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for the integration tests.
pub const CULLER_BIN: &str = env!("CARGO_BIN_EXE_jupyterhub-idle-culler-rs");

/// Default deadline of one run: far above any passing test, low enough to
/// fail a hung culler quickly.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Every environment variable the culler reads (a test below checks the
/// list against the source); removed from the inherited environment so
/// that a developer's shell (a hub's token, a `CULLER_TEST_PANIC` left
/// set) cannot change a test's result.
pub const CULLER_ENV: &[&str] = &[
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_REQUEST_TIMEOUT",
    "JUPYTERHUB_SERVICE_URL",
    "JUPYTERHUB_SERVICE_PREFIX",
    "SSL_CERT_FILE",
    "JUPYTERHUB_IDLE_CULLER_NOTIFY_SECRET",
    "CULLER_TEST_PANIC",
];

/// How one culler process ended.
#[derive(Debug)]
pub struct CullerOutput {
    /// The arguments it ran with (for messages).
    pub args: Vec<String>,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr (its logs).
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl CullerOutput {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the full output unless it exited 0: the message is what
    /// a developer needs to see when a test fails.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "culler should have succeeded:\n{self}");
        self
    }

    /// Panics with the full output unless it exited non-zero (and not by a
    /// panic: a panic is never a clear error).
    pub fn assert_failure(&self) -> &Self {
        assert!(!self.success(), "culler should have failed:\n{self}");
        assert!(
            !self.stderr.contains("panicked"),
            "culler panicked instead of failing cleanly:\n{self}"
        );
        self
    }

    /// Non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl fmt::Display for CullerOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.args.join(" "))?;
        writeln!(f, "status: {} after {:?}", self.status, self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// A culler invocation being put together.
#[derive(Clone, Debug)]
pub struct Culler {
    args: Vec<String>,
    env: Vec<(String, Option<String>)>,
    deadline: Duration,
    ignore_sigint: bool,
    close_stderr: bool,
    program: String,
}

impl Default for Culler {
    fn default() -> Self {
        Self::new()
    }
}

impl Culler {
    /// No arguments, and none of the culler's environment variables inherited.
    pub fn new() -> Self {
        Culler {
            args: Vec::new(),
            env: CULLER_ENV.iter().map(|k| (k.to_string(), None)).collect(),
            deadline: DEFAULT_DEADLINE,
            ignore_sigint: false,
            close_stderr: false,
            program: CULLER_BIN.to_owned(),
        }
    }

    /// `--url=URL` and `JUPYTERHUB_API_TOKEN=token`: the usual start.
    pub fn against(url: &str, token: &str) -> Self {
        Self::new()
            .arg(format!("--url={url}"))
            .env("JUPYTERHUB_API_TOKEN", token)
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), Some(value.to_owned())));
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), None));
        self
    }

    /// Starts it with SIGINT ignored, as a shell's background job (and so a
    /// hub started from a script, and its services) inherits it.
    pub fn ignoring_sigint(mut self) -> Self {
        self.ignore_sigint = true;
        self
    }

    /// Starts it with a stderr pipe whose reader is already gone, as when a
    /// log shipper restarts or the output goes through `| head`: every log
    /// line the culler writes fails.
    pub fn stderr_closed(mut self) -> Self {
        self.close_stderr = true;
        self
    }

    /// Runs another build of the culler (e.g. the release binary).
    pub fn program(mut self, path: &str) -> Self {
        self.program = path.to_owned();
        self
    }

    /// Sets the deadline of [`Culler::run`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Runs to completion; kills it and panics (with its output so far) if
    /// it outlives the deadline.
    pub fn run(self) -> CullerOutput {
        let deadline = self.deadline;
        self.spawn().wait(deadline)
    }

    /// Starts it in the background.
    pub fn spawn(self) -> RunningCuller {
        let mut command = if self.ignore_sigint {
            // `trap "" INT` sets SIG_IGN, which `exec` keeps.
            let mut sh = Command::new("sh");
            sh.args(["-c", r#"trap "" INT; exec "$0" "$@""#, &self.program]);
            sh
        } else {
            Command::new(&self.program)
        };
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        let stdout = read_in_thread(child.stdout.take().map(|p| Box::new(p) as Box<_>));
        // Dropping the read end of stderr closes it under the culler.
        let stderr_pipe = child.stderr.take().filter(|_| !self.close_stderr);
        let stderr = LogLines::new(lines_in_thread(stderr_pipe.map(|p| Box::new(p) as Box<_>)));
        RunningCuller {
            args: self.args,
            child,
            stdout,
            stderr,
            started,
        }
    }
}

type Pipe = Box<dyn Read + Send>;

/// Reads a pipe to its end in a thread; the receiver gets everything once
/// the pipe closes (the process exited or was killed).
fn read_in_thread(pipe: Option<Pipe>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// Sends each line of a pipe as soon as it is written; the channel closes
/// with the pipe (the process exited or was killed).
fn lines_in_thread(pipe: Option<Pipe>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if tx.send(text).is_err() {
                return;
            }
            line.clear();
        }
    });
    rx
}

/// The culler's log as it is written, so a test can wait for a line (an
/// event) instead of sleeping, or look at it while the culler runs.
struct LogLines {
    rx: Receiver<String>,
    seen: RefCell<Vec<String>>,
    closed: Cell<bool>,
}

impl LogLines {
    fn new(rx: Receiver<String>) -> Self {
        LogLines {
            rx,
            seen: RefCell::new(Vec::new()),
            closed: Cell::new(false),
        }
    }

    /// Reads lines until one satisfies `found` (true), the pipe closes or
    /// `end` passes (false).
    fn read_until(&self, end: Instant, mut found: impl FnMut(&str) -> bool) -> bool {
        if self.seen.borrow().iter().any(|line| found(line)) {
            return true;
        }
        while !self.closed.get() {
            match self
                .rx
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let hit = found(&line);
                    self.seen.borrow_mut().push(line);
                    if hit {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => self.closed.set(true),
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
        false
    }

    /// Reads to the end of the pipe (or `end`); whether it closed.
    fn read_to_close(&self, end: Instant) -> bool {
        self.read_until(end, |_| false);
        self.closed.get()
    }

    /// Everything read so far, after taking in what has arrived.
    fn text(&self) -> String {
        self.read_until(Instant::now(), |_| false);
        let mut text = self.seen.borrow().join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }
}

/// A culler process running in the background; killed if dropped.
pub struct RunningCuller {
    args: Vec<String>,
    child: Child,
    stdout: Receiver<String>,
    stderr: LogLines,
    started: Instant,
}

impl RunningCuller {
    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends it a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Whether it has exited already (without waiting).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits until it logs a line containing `needle`; false if it did not
    /// within `timeout` (or exited first).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.stderr
            .read_until(Instant::now() + timeout, |line| line.contains(needle))
    }

    /// Waits until it has logged `count` lines that satisfy `matches`;
    /// false if it did not within `timeout` (or exited first).
    pub fn wait_for_lines(
        &self,
        count: usize,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> bool {
        let mut seen = 0;
        // read_until replays the lines already read before new ones.
        self.stderr.read_until(Instant::now() + timeout, |line| {
            if matches(line) {
                seen += 1;
            }
            seen >= count
        })
    }

    /// Everything it has logged so far, while it keeps running.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }

    /// Waits for it to exit; kills it and panics with its output if it is
    /// still running after `deadline`.
    pub fn wait(mut self, deadline: Duration) -> CullerOutput {
        let end = self.started + deadline;
        let closed = self.stderr.read_to_close(end);
        let stdout = closed.then(|| recv_until(&self.stdout, end).ok()).flatten();
        match stdout {
            Some(stdout) => {
                // Both pipes closed: the process has exited (or is exiting).
                let status = self.child.wait().expect("wait for culler");
                CullerOutput {
                    args: std::mem::take(&mut self.args),
                    status,
                    stdout,
                    stderr: self.stderr.text(),
                    elapsed: self.started.elapsed(),
                }
            }
            _ => {
                let output = self.kill();
                panic!("culler still running after {deadline:?}; killed it:\n{output}");
            }
        }
    }

    /// Kills it (if still running) and returns what it wrote.
    pub fn kill(mut self) -> CullerOutput {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for killed culler");
        let elapsed = self.started.elapsed();
        // The pipes close with the process; a grandchild holding them is
        // not expected, so bound the wait anyway.
        let end = Instant::now() + Duration::from_secs(5);
        self.stderr.read_to_close(end);
        CullerOutput {
            args: std::mem::take(&mut self.args),
            status,
            stdout: recv_until(&self.stdout, end).unwrap_or_default(),
            stderr: self.stderr.text(),
            elapsed,
        }
    }
}

impl Drop for RunningCuller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn recv_until(rx: &Receiver<String>, end: Instant) -> Result<String, RecvTimeoutError> {
    let left = end.saturating_duration_since(Instant::now());
    rx.recv_timeout(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The names in `env("NAME")` and `env::var("NAME")` calls of a source.
    fn variables_read(source: &str) -> Vec<String> {
        let mut names = Vec::new();
        for opening in ["env(\"", "env::var(\"", "env::var_os(\""] {
            for (at, _) in source.match_indices(opening) {
                let rest = &source[at + opening.len()..];
                if let Some(end) = rest.find('"') {
                    names.push(rest[..end].to_owned());
                }
            }
        }
        names
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_harness_clears_every_variable_the_culler_reads() {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut read: Vec<String> = files
            .iter()
            .flat_map(|file| variables_read(&std::fs::read_to_string(file).expect("read")))
            .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        read.sort();
        read.dedup();
        assert!(read.len() >= 5, "the scan found too little: {read:?}");
        let missed: Vec<_> = read
            .iter()
            .filter(|name| !CULLER_ENV.contains(&name.as_str()))
            .collect();
        assert!(missed.is_empty(), "not cleared by the harness: {missed:?}");
        assert_eq!(
            variables_read(r#"x = env("A_B"); std::env::var("C")"#),
            ["A_B", "C"]
        );
    }
}
