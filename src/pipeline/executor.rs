//! The Executor: carries one request to the hub and back.
//!
//! Every request the culler makes (the version, each page of users, each
//! stop and delete) is carried by an executor, and the pool
//! ([`super::pool`]) hands an executor a request only when it carries none:
//! the pool's `--concurrency` executors are the bound. An executor makes
//! one attempt; retrying is the pool's job, so that a backoff never holds
//! an executor idle.

use super::chaos::{self, Site};
use super::guard::{self, guarded, Restartable, Restarted};
pub use crate::decision::Announce;
use crate::hub::{
    DeleteOutcome, HubClient, HubError, HubVersion, Inside, LookError, StopOutcome, TokenOwner,
    UserList, UserQuery,
};
use crate::logging::{info_fields, Log};
use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

/// One kind of request to the hub: what it is called in logs and how the
/// client carries it out.
pub trait Call: Clone + Send + 'static {
    /// What a successful answer gives.
    type Output: Send + 'static;
    /// `METHOD path`, for logs about requests on the wire.
    fn describe(&self) -> String;
    /// Which lane of the pool's line it waits in (see [`super::pool`]):
    /// commands unless it is a read the pipeline waits on.
    fn lane(&self) -> Lane {
        Lane::Act
    }
    /// Sends it once.
    fn run(self, client: HubClient) -> LocalBoxFuture<'static, Result<Self::Output, HubError>>;
}

/// `GET /`: the hub's version.
#[derive(Clone, Copy, Debug)]
pub struct GetVersion;

impl Call for GetVersion {
    type Output = HubVersion;
    fn describe(&self) -> String {
        "GET /".to_owned()
    }
    fn lane(&self) -> Lane {
        Lane::Read
    }
    fn run(self, client: HubClient) -> LocalBoxFuture<'static, Result<HubVersion, HubError>> {
        Box::pin(async move { client.version().await })
    }
}

/// `GET /user`: the token's owner and scopes.
#[derive(Clone, Copy, Debug)]
pub struct GetTokenOwner;

impl Call for GetTokenOwner {
    type Output = TokenOwner;
    fn describe(&self) -> String {
        "GET /user".to_owned()
    }
    fn lane(&self) -> Lane {
        Lane::Read
    }
    fn run(self, client: HubClient) -> LocalBoxFuture<'static, Result<TokenOwner, HubError>> {
        Box::pin(async move { client.token_owner().await })
    }
}

/// `GET /users`: one page of users.
#[derive(Clone, Copy, Debug)]
pub struct ListUsers(pub UserQuery);

impl Call for ListUsers {
    type Output = UserList;
    fn describe(&self) -> String {
        format!("GET /users (offset {})", self.0.offset.unwrap_or(0))
    }
    fn lane(&self) -> Lane {
        Lane::Read
    }
    fn run(self, client: HubClient) -> LocalBoxFuture<'static, Result<UserList, HubError>> {
        Box::pin(async move { client.list_users(self.0).await })
    }
}

/// Stop one server (`server` is "" for the default server).
#[derive(Clone, Debug)]
pub struct StopServer {
    /// The user's name.
    pub user: String,
    /// The server's name.
    pub server: String,
    /// Remove the named server as well (`--remove-named-servers`).
    pub remove: bool,
}

impl Call for StopServer {
    type Output = StopOutcome;
    fn describe(&self) -> String {
        if self.server.is_empty() {
            format!("DELETE /users/{}/server", self.user)
        } else {
            format!("DELETE /users/{}/servers/{}", self.user, self.server)
        }
    }
    fn run(self, client: HubClient) -> LocalBoxFuture<'static, Result<StopOutcome, HubError>> {
        Box::pin(async move {
            client
                .stop_server(&self.user, &self.server, self.remove)
                .await
        })
    }
}

/// Delete one user.
#[derive(Clone, Debug)]
pub struct DeleteUser {
    /// The user's name.
    pub user: String,
}

impl Call for DeleteUser {
    type Output = DeleteOutcome;
    fn describe(&self) -> String {
        format!("DELETE /users/{}", self.user)
    }
    fn run(self, client: HubClient) -> LocalBoxFuture<'static, Result<DeleteOutcome, HubError>> {
        Box::pin(async move { client.delete_user(&self.user).await })
    }
}

/// Ask a server what runs inside it (`--activity=server`), through the
/// hub's proxy. Its failures are part of its answer, not the hub's: they
/// are neither retried nor an outage, and the hub's timestamps decide.
#[derive(Clone, Debug)]
pub struct LookInside {
    /// The server's URL as the hub gives it (`/user/ada/lab/`).
    pub url: Option<String>,
}

impl Call for LookInside {
    type Output = Result<Inside, LookError>;
    fn describe(&self) -> String {
        format!("GET {}api/status", self.url.as_deref().unwrap_or("?"))
    }
    fn run(self, client: HubClient) -> LocalBoxFuture<'static, Result<Self::Output, HubError>> {
        Box::pin(async move { Ok(client.look_inside(self.url.as_deref()).await) })
    }
}

/// Send `call` once; `announce` is logged (at INFO) just before it goes on
/// the wire, so "Culling server X" appears only for requests really sent.
#[derive(Debug)]
pub struct Attempt<C> {
    /// The request.
    pub call: C,
    /// The line to log as it is sent.
    pub announce: Option<Announce>,
}

impl<C: Call> Message for Attempt<C> {
    type Result = Result<C::Output, AttemptError>;
}

/// Which lane of the pool's line a request waits in (see [`super::pool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Reads the pipeline waits on: the version, the token's scopes, a page
    /// of users. Served first.
    Read,
    /// Commands: stops and deletes.
    Act,
}

/// Why an attempt produced no answer from the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// The hub refused or failed.
    Hub(HubError),
    /// Not sent: the culler is stopping.
    Stopping,
    /// Not sent: a request of this pass found the hub unreachable.
    HubDown,
    /// The executor crashed while carrying it out (and is being restarted).
    Crashed,
}

/// Carries requests to the hub, one at a time (the pool sees to that).
pub struct Executor {
    number: usize,
    client: HubClient,
    restarts: Recipient<Restarted>,
    log: Log,
}

impl Executor {
    /// Executor number `number` (for logs), sharing `client`'s connections;
    /// its restarts are told to `restarts`.
    pub fn new(number: usize, client: HubClient, restarts: Recipient<Restarted>, log: Log) -> Self {
        Executor {
            number,
            client,
            restarts,
            log,
        }
    }
}

impl Actor for Executor {
    type Context = Context<Self>;
}

impl Supervised for Executor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        guard::restarting(self);
    }
}

impl Restartable for Executor {
    fn name(&self) -> String {
        format!("executor {}", self.number)
    }
    fn log(&self) -> &Log {
        &self.log
    }
    fn restarts(&self) -> &Recipient<Restarted> {
        &self.restarts
    }
}

impl<C: Call> Handler<Attempt<C>> for Executor {
    type Result = ResponseActFuture<Self, Result<C::Output, AttemptError>>;

    fn handle(&mut self, attempt: Attempt<C>, _ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            |executor| {
                let client = executor.client.clone();
                let log = executor.log.clone();
                async move {
                    chaos::maybe_panic(Site::Executor);
                    if let Some(announce) = attempt.announce {
                        info_fields!(log, announce.fields(), "{announce}");
                    }
                    attempt.call.run(client).await.map_err(AttemptError::Hub)
                }
            },
            || Err(AttemptError::Crashed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_describe_themselves_for_the_log() {
        assert_eq!(GetVersion.describe(), "GET /");
        assert_eq!(GetTokenOwner.describe(), "GET /user");
        let page = UserQuery {
            offset: Some(50),
            ..UserQuery::default()
        };
        assert_eq!(ListUsers(page).describe(), "GET /users (offset 50)");
        assert_eq!(
            ListUsers(UserQuery::default()).describe(),
            "GET /users (offset 0)"
        );
        let stop = |server: &str| StopServer {
            user: "ann".into(),
            server: server.into(),
            remove: false,
        };
        assert_eq!(stop("").describe(), "DELETE /users/ann/server");
        assert_eq!(stop("gpu").describe(), "DELETE /users/ann/servers/gpu");
        let user = DeleteUser { user: "ann".into() };
        assert_eq!(user.describe(), "DELETE /users/ann");
    }
}
