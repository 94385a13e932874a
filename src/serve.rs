//! The HTTP endpoint that exposes [`crate::metrics`]: `GET /metrics` (the
//! Prometheus text exposition) and `GET /health` (200 while passes succeed,
//! 503 after too many failures in a row), for Prometheus and for liveness
//! probes.
//!
//! Served by actix-web, the web framework of the actix family (its HTTP
//! layer is the one awc already uses), with one worker: two small GETs need
//! no more, and the limits a public endpoint needs come from the server:
//! at most [`MAX_CONNECTIONS`] connections at once, a request head within
//! [`READ_TIMEOUT`] and actix-http's size limits, and no panic whatever a
//! client sends.
//!
//! Run as a JupyterHub-managed service with a `url`, the hub's proxy
//! forwards `/services/NAME/...` to us with the full path, so both
//! `{JUPYTERHUB_SERVICE_PREFIX}metrics` and the bare `/metrics` are served
//! (the same for `health`). [`bind_address`] turns `--metrics-bind` or
//! `JUPYTERHUB_SERVICE_URL` into the address to listen on. Behind the
//! proxy anyone can reach the endpoint, so `/metrics` asks for a hub token
//! with the `read:metrics` scope, as the hub's own `/hub/metrics` does
//! (see [`Access`]); `/health` tells nothing but whether passes succeed,
//! and stays open for probes that cannot carry a token.

mod auth;
mod bind;

pub use auth::{Access, READ_METRICS_SCOPE};
pub use bind::{bind, bind_address, BindAddress, BindError, BindOrigin};

use crate::logging::{debug, Log};
use crate::metrics::{Metrics, CONTENT_TYPE};
use actix_web::dev::{Server, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a client has to send its request head: a client that connects
/// and sends nothing, or trickles bytes, holds a connection no longer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most connections served at once; more wait in the listen backlog.
/// Prometheus and a probe or two need a handful; the bound caps what a
/// connection flood can take.
pub const MAX_CONNECTIONS: usize = 64;

/// The default of how many failed passes in a row make `/health` answer 503.
pub const DEFAULT_MAX_FAILURES: u32 = 3;

/// What the server answers: its paths and its health limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routes {
    /// Starts and ends with `/`: `/` or the service prefix.
    prefix: String,
    max_failures: u32,
}

impl Routes {
    /// Routes under `prefix` (`JUPYTERHUB_SERVICE_PREFIX`, e.g.
    /// `/services/idle-culler/`; `None` or empty: `/`; a missing leading or
    /// trailing `/` is added), answering `/health` with 503 once
    /// `max_failures` passes (0 counts as 1) failed in a row.
    pub fn new(prefix: Option<&str>, max_failures: u32) -> Routes {
        let trimmed = prefix.map(str::trim).unwrap_or("").trim_matches('/');
        let prefix = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        };
        Routes {
            prefix,
            max_failures: max_failures.max(1),
        }
    }

    /// The path prefix, `/` or e.g. `/services/idle-culler/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many failed passes in a row make `/health` answer 503.
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// The paths a page is served at: bare, and under the prefix.
    fn paths(&self, page: &str) -> Vec<String> {
        let mut paths = vec![format!("/{page}")];
        if self.prefix != "/" {
            paths.push(format!("{}{page}", self.prefix));
        }
        paths
    }
}

/// What every handler of a worker shares.
struct Shared {
    metrics: Arc<Metrics>,
    routes: Routes,
    access: auth::Gate,
}

/// Serves `/metrics` and `/health` on `listener`, letting read `/metrics`
/// whom `access` admits, until the actix system stops: spawn the returned
/// server on the culler's system (it stops with it; it handles no
/// signals, the Supervisor does). Fails only if the listener cannot be used.
pub fn serve(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    routes: Routes,
    access: Access,
    log: Log,
) -> io::Result<Server> {
    let server = HttpServer::new(move || {
        let shared = Shared {
            metrics: Arc::clone(&metrics),
            routes: routes.clone(),
            access: access.gate(),
        };
        let log = log.clone();
        App::new()
            .app_data(web::Data::new(shared))
            .service(page(&routes, "metrics", metrics_page))
            .service(page(&routes, "health", health_page))
            .default_service(web::to(not_found))
            .wrap_fn(move |req, service| {
                let request = format!("{} {:?}", req.method(), req.path());
                let peer = req
                    .peer_addr()
                    .map_or_else(|| "?".to_owned(), |peer| peer.to_string());
                let answered = service.call(req);
                let log = log.clone();
                async move {
                    let response = answered.await?;
                    debug!(
                        log,
                        "Metrics endpoint: {peer} {request} -> {}",
                        response.status().as_u16()
                    );
                    Ok(response)
                }
            })
    })
    .workers(1)
    .max_connections(MAX_CONNECTIONS)
    .client_request_timeout(READ_TIMEOUT)
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)?
    .run();
    Ok(server)
}

/// One page at its paths, for GET and HEAD (actix-http sends a HEAD's
/// headers without the body); other methods get 405 with `Allow`.
fn page<F, R>(routes: &Routes, name: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<(HttpRequest, web::Data<Shared>), Output = R>,
    R: actix_web::Responder + 'static,
{
    web::resource(routes.paths(name))
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(method_not_allowed))
}

/// `/metrics`: the exposition, for an admitted scraper.
async fn metrics_page(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Err(refusal) = shared.access.admit(&req).await {
        return refusal.response();
    }
    answer(
        StatusCode::OK,
        CONTENT_TYPE,
        shared.metrics.render(SystemTime::now()),
    )
}

/// `/health`: 200 or 503 and the counts behind it, as JSON.
async fn health_page(_: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let health = shared.metrics.health(shared.routes.max_failures);
    let status = if health.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    answer(status, "application/json", health.to_json() + "\n")
}

/// Any other path: 404, naming what is served here.
async fn not_found(shared: web::Data<Shared>) -> HttpResponse {
    let body = format!(
        "not found: this is the idle culler's {prefix}metrics and {prefix}health\n",
        prefix = shared.routes.prefix
    );
    answer(StatusCode::NOT_FOUND, TEXT, body)
}

/// A method other than GET and HEAD on a page.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = answer(
        StatusCode::METHOD_NOT_ALLOWED,
        TEXT,
        format!("{} is not served here: only GET and HEAD\n", req.method()),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// Plain text, for the answers people read.
const TEXT: &str = "text/plain; charset=utf-8";

/// An answer that no cache keeps: metrics and health are of this moment.
fn answer(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

#[cfg(test)]
mod tests;
