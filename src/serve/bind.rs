//! Where the metrics endpoint listens: `--metrics-bind`, or the URL the hub
//! gave this service, read as an address, with errors that say what to
//! change. Pure but for [`bind`].

use awc::http::Uri;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where to listen, and why there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAddress {
    /// The socket address.
    pub addr: SocketAddr,
    /// Where it came from.
    pub origin: BindOrigin,
}

/// Where a [`BindAddress`] came from, for the start-up log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindOrigin {
    /// `--metrics-bind`.
    Flag,
    /// The address and port of `JUPYTERHUB_SERVICE_URL`.
    ServiceUrl,
    /// `JUPYTERHUB_SERVICE_URL` names its host (as a Kubernetes or Docker
    /// service name does) rather than giving an address: that name is how
    /// others reach the culler, not one of its own addresses, so the port
    /// is served on every interface.
    ServiceUrlName(String),
}

impl fmt::Display for BindOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindOrigin::Flag => f.write_str("--metrics-bind"),
            BindOrigin::ServiceUrl => f.write_str("JUPYTERHUB_SERVICE_URL"),
            BindOrigin::ServiceUrlName(host) => write!(
                f,
                "all interfaces: JUPYTERHUB_SERVICE_URL names the host {host:?}, not an address of this machine"
            ),
        }
    }
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            BindOrigin::Flag => write!(f, "{} (--metrics-bind)", self.addr),
            BindOrigin::ServiceUrl => write!(f, "{} (JUPYTERHUB_SERVICE_URL)", self.addr),
            BindOrigin::ServiceUrlName(host) => write!(
                f,
                "{} (all interfaces: JUPYTERHUB_SERVICE_URL names the host {host:?}, \
                 not an address of this machine)",
                self.addr
            ),
        }
    }
}

/// Why the metrics endpoint cannot listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    /// `--metrics-bind` is not `HOST:PORT` with an IP address for host.
    BadFlag {
        /// What was given.
        value: String,
        /// What is wrong, and what would be right.
        why: &'static str,
    },
    /// `JUPYTERHUB_SERVICE_URL` is not an `http://HOST:PORT` URL.
    BadServiceUrl {
        /// What was given (without any `user:password@`).
        value: String,
        /// What is wrong, and what would be right.
        why: &'static str,
    },
    /// The address is valid but the operating system would not listen on it.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The kind of failure (in use, not permitted, not this machine's).
        kind: io::ErrorKind,
        /// What the operating system said.
        detail: String,
    },
}

impl BindError {
    /// Whether the problem is in `JUPYTERHUB_SERVICE_URL` (set by the hub,
    /// not by the operator's command line).
    pub fn from_service_url(&self) -> bool {
        matches!(self, BindError::BadServiceUrl { .. })
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::BadFlag { value, why } => write!(f, "--metrics-bind={value:?} {why}"),
            BindError::BadServiceUrl { value, why } => {
                write!(f, "JUPYTERHUB_SERVICE_URL={value:?} {why}")
            }
            BindError::Bind { addr, kind, detail } => {
                write!(f, "cannot serve metrics on {addr}: ")?;
                match kind {
                    io::ErrorKind::AddrInUse => write!(
                        f,
                        "port {} is already in use (another culler, or another service?); \
                         choose a free one with --metrics-bind=HOST:PORT",
                        addr.port()
                    ),
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        "not permitted (ports below 1024 need privileges); choose a port \
                         above 1024 with --metrics-bind=HOST:PORT"
                    ),
                    io::ErrorKind::AddrNotAvailable => write!(
                        f,
                        "{} is not an address of this machine; use 0.0.0.0 for every \
                         interface or 127.0.0.1 for this machine only",
                        addr.ip()
                    ),
                    _ => write!(f, "{detail}"),
                }
            }
        }
    }
}

impl std::error::Error for BindError {}

/// Where the metrics endpoint listens: `--metrics-bind=HOST:PORT` when
/// given (`flag`), else the host and port of `JUPYTERHUB_SERVICE_URL`
/// (`service_url`), which JupyterHub sets to the managed service's `url`;
/// `None` when neither is set (empty counts as unset): no endpoint.
///
/// HOST in the flag is an IP address (`0.0.0.0` every interface,
/// `127.0.0.1` this machine only, `[::]`, ...), `localhost`, or empty
/// (`:9090`: every interface). In the service URL an IP address is used as
/// it is (`http://127.0.0.1:10101` is served on loopback only, as the hub
/// reaches it), `localhost` is 127.0.0.1, and a name
/// (`http://idle-culler:8000`) means every interface: see
/// [`BindOrigin::ServiceUrlName`]. A URL without a port is port 80.
/// Nothing is resolved or bound here: a pure function.
pub fn bind_address(
    flag: Option<&str>,
    service_url: Option<&str>,
) -> Result<Option<BindAddress>, BindError> {
    if let Some(flag) = given(flag) {
        return parse_flag(flag).map(|addr| {
            Some(BindAddress {
                addr,
                origin: BindOrigin::Flag,
            })
        });
    }
    given(service_url).map(parse_service_url).transpose()
}

/// A value that is set and not blank, trimmed.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn parse_flag(value: &str) -> Result<SocketAddr, BindError> {
    let bad = |why| BindError::BadFlag {
        value: value.to_owned(),
        why,
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(|| {
        bad("is not HOST:PORT, e.g. 0.0.0.0:9090 (every interface) or 127.0.0.1:9090")
    })?;
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("has no valid port: PORT is a number from 0 to 65535"))?;
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ if host.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ if host.contains(':') && !host.starts_with('[') => {
            return Err(bad(
                "has an IPv6 address without brackets: write [ADDRESS]:PORT, e.g. [::]:9090",
            ))
        }
        _ => {
            return Err(bad(
                "has a HOST that is not an IP address: use 0.0.0.0 (every interface), \
                 127.0.0.1 (this machine only) or another address of this machine",
            ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_service_url(value: &str) -> Result<BindAddress, BindError> {
    // Shown without any `user:password@`, in every error.
    let shown = match value.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[authority.len()..]),
                None => value.to_owned(),
            }
        }
        None => value.to_owned(),
    };
    let bad = |why| BindError::BadServiceUrl {
        value: shown.clone(),
        why,
    };
    let uri: Uri = value
        .parse()
        .map_err(|_| bad("is not an http://HOST:PORT URL (it does not parse as a URL)"))?;
    match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => {}
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad(
                "is https, but the metrics endpoint serves plain HTTP: give the service an \
                 http:// url, or choose where to serve with --metrics-bind=HOST:PORT",
            ))
        }
        _ => return Err(bad("is not an http://HOST:PORT URL")),
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "holds a user name or password, which a service URL never needs",
        ));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    // What follows the host's `:`, if anything (the URI type reads a
    // port that is not a number as no port).
    let port = match authority.as_str()[host.len()..].strip_prefix(':') {
        None | Some("") => 80,
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| bad("has no valid port: a number from 0 to 65535"))?,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let (ip, origin) = if let Ok(ip) = bare.parse::<IpAddr>() {
        (ip, BindOrigin::ServiceUrl)
    } else if host.eq_ignore_ascii_case("localhost") {
        (IpAddr::V4(Ipv4Addr::LOCALHOST), BindOrigin::ServiceUrl)
    } else {
        (
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            BindOrigin::ServiceUrlName(host.to_owned()),
        )
    };
    Ok(BindAddress {
        addr: SocketAddr::new(ip, port),
        origin,
    })
}

/// Listens on `address`, ready for [`super::serve`]: errors say what to change
/// (a port in use, a privileged port, an address not this machine's).
pub fn bind(address: &BindAddress) -> Result<std::net::TcpListener, BindError> {
    let failed = |err: io::Error| BindError::Bind {
        addr: address.addr,
        kind: err.kind(),
        detail: err.to_string(),
    };
    let listener = std::net::TcpListener::bind(address.addr).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    Ok(listener)
}

#[cfg(test)]
mod tests;
