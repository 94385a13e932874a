//! Delivering one event to the receivers an operator named: an HTTP POST
//! (`--notify-url`) and a command (`--notify-command`), each retried a few
//! times, each attempt bounded in time, so that a receiver that is down or
//! slow costs the culler a bounded wait in the Notifier, never in culling.

use actix_web::web::Bytes;
use ring::hmac;
use std::fmt;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The header that carries the body's signature: `sha256=` and the
/// lower-case hex HMAC-SHA256 of the exact body bytes, keyed by the shared
/// secret.
pub const SIGNATURE_HEADER: &str = "X-Culler-Signature";

/// The header that names the event kind, so a receiver can route without
/// parsing the body.
pub const EVENT_HEADER: &str = "X-Culler-Event";

/// The secret receivers check the signature with (from the environment,
/// never from the command line, where `ps` shows it).
#[derive(Clone)]
pub struct Secret(hmac::Key);

impl Secret {
    /// A key from the secret's text.
    pub fn new(text: &str) -> Self {
        Secret(hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes()))
    }

    /// The signature header's value for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, body);
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256=");
        for byte in tag.as_ref() {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where events go and how hard the culler tries.
#[derive(Clone, Debug)]
pub struct Receivers {
    /// `--notify-url`: each event is POSTed there as JSON.
    pub url: Option<String>,
    /// `--notify-command`: run with `sh -c`, the event's JSON on stdin.
    pub command: Option<String>,
    /// Signs each POST (`JUPYTERHUB_IDLE_CULLER_NOTIFY_SECRET`).
    pub secret: Option<Secret>,
    /// How long one attempt may take (`--notify-timeout`).
    pub timeout: Duration,
    /// Attempts after the first (`--notify-retries`).
    pub retries: u32,
    /// The wait before the first retry; doubled for each next one.
    pub retry_delay: Duration,
}

impl Receivers {
    /// Whether events go anywhere at all.
    pub fn any(&self) -> bool {
        self.url.is_some() || self.command.is_some()
    }
}

/// Why an event did not reach a receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// The receiver at `origin` could not be reached or did not answer in
    /// time.
    Unreachable {
        /// The URL's scheme, host and port (its path may hold a token, as
        /// chat webhooks' do: never logged).
        origin: String,
        /// What went wrong.
        detail: String,
    },
    /// The receiver answered with a status that is not 2xx.
    Status {
        /// As above.
        origin: String,
        /// The status.
        status: u16,
    },
    /// The command could not be run, ran too long, or exited with an error.
    Command {
        /// What went wrong, with the last line it wrote to stderr.
        detail: String,
    },
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Unreachable { origin, detail } => {
                write!(f, "the receiver at {origin} could not be reached: {detail}")
            }
            DeliveryError::Status { origin, status } => {
                write!(f, "the receiver at {origin} answered {status}")
            }
            DeliveryError::Command { detail } => write!(f, "--notify-command {detail}"),
        }
    }
}

/// The scheme, host and port of `url`, for messages.
pub fn origin(url: &str) -> String {
    match url.parse::<awc::http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                // Credentials in the authority (`user:pass@`) stay out too.
                let host = authority.as_str().rsplit('@').next().unwrap_or_default();
                format!("{scheme}://{host}")
            }
            _ => "the --notify-url".to_owned(),
        },
        Err(_) => "the --notify-url".to_owned(),
    }
}

/// Delivers `body` (an event of kind `kind`) to every receiver, retrying
/// each; the first receiver's last error when one never took it.
pub async fn deliver(
    receivers: Rc<Receivers>,
    client: Rc<awc::Client>,
    kind: &'static str,
    body: Bytes,
) -> Result<(), DeliveryError> {
    let mut outcome = Ok(());
    if let Some(url) = &receivers.url {
        let sent = with_retries(&receivers, || post(&receivers, &client, url, kind, &body)).await;
        outcome = outcome.and(sent);
    }
    if let Some(command) = &receivers.command {
        let sent = with_retries(&receivers, || run(&receivers, command, kind, &body)).await;
        outcome = outcome.and(sent);
    }
    outcome
}

async fn with_retries<F, Fut>(receivers: &Receivers, mut attempt: F) -> Result<(), DeliveryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), DeliveryError>>,
{
    let mut delay = receivers.retry_delay;
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(err) if tries >= receivers.retries => return Err(err),
            Err(_) => {
                tries += 1;
                actix_rt::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
        }
    }
}

async fn post(
    receivers: &Receivers,
    client: &awc::Client,
    url: &str,
    kind: &'static str,
    body: &Bytes,
) -> Result<(), DeliveryError> {
    let mut request = client
        .post(url)
        .timeout(receivers.timeout)
        .insert_header(("Content-Type", "application/json"))
        .insert_header((EVENT_HEADER, kind));
    if let Some(secret) = &receivers.secret {
        request = request.insert_header((SIGNATURE_HEADER, secret.sign(body)));
    }
    let origin = || origin(url);
    match request.send_body(body.clone()).await {
        Ok(mut response) if response.status().is_success() => {
            // Read (and drop) the body, so the connection can be reused.
            let _ = response.body().limit(64 * 1024).await;
            Ok(())
        }
        Ok(response) => Err(DeliveryError::Status {
            origin: origin(),
            status: response.status().as_u16(),
        }),
        Err(err) => Err(DeliveryError::Unreachable {
            origin: origin(),
            detail: err.to_string(),
        }),
    }
}

async fn run(
    receivers: &Receivers,
    command: &str,
    kind: &'static str,
    body: &Bytes,
) -> Result<(), DeliveryError> {
    let failed = |detail: String| DeliveryError::Command { detail };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs([("CULLER_EVENT", kind)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| failed(format!("could not be started: {err}")))?;
    let mut stdin = child.stdin.take();
    let finished = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A command that does not read its input is its own business.
            let _ = stdin.write_all(body).await;
        }
        drop(stdin);
        child.wait_with_output().await
    };
    match actix_rt::time::timeout(receivers.timeout, finished).await {
        Err(_) => Err(failed(format!(
            "ran longer than {} s and was killed",
            receivers.timeout.as_secs_f64()
        ))),
        Ok(Err(err)) => Err(failed(format!("failed: {err}"))),
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            Err(failed(match last {
                Some(line) => format!("exited with {}: {}", output.status, line.trim()),
                None => format!("exited with {}", output.status),
            }))
        }
    }
}
