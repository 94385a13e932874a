//! The Executor: carries out one stop or delete at a time against the hub.
//!
//! Handlers are atomic (the actor takes its next message only when the
//! request is answered), so a pool of N executors runs at most N commands;
//! the hub client's semaphore bounds them together with the list requests.

use crate::hub::{DeleteOutcome, HubClient, HubError, StopOutcome};
use actix::prelude::*;
use std::cell::Cell;
use std::rc::Rc;

/// Stop one server (`server` is "" for the default server).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StopOutcome, HubError>")]
pub struct StopServer {
    /// The user's name.
    pub user: String,
    /// The server's name.
    pub server: String,
    /// Remove the named server as well (`--remove-named-servers`).
    pub remove: bool,
}

/// Delete one user.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<DeleteOutcome, HubError>")]
pub struct DeleteUser {
    /// The user's name.
    pub user: String,
}

/// Sends commands to the hub; state is only the client.
pub struct Executor {
    client: HubClient,
}

impl Executor {
    /// An executor using `client` (which shares the process's semaphore).
    pub fn new(client: HubClient) -> Self {
        Executor { client }
    }
}

impl Actor for Executor {
    type Context = Context<Self>;
}

impl Supervised for Executor {}

impl Handler<StopServer> for Executor {
    type Result = AtomicResponse<Self, Result<StopOutcome, HubError>>;

    fn handle(&mut self, msg: StopServer, _ctx: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        AtomicResponse::new(Box::pin(
            async move { client.stop_server(&msg.user, &msg.server, msg.remove).await }
                .into_actor(self),
        ))
    }
}

impl Handler<DeleteUser> for Executor {
    type Result = AtomicResponse<Self, Result<DeleteOutcome, HubError>>;

    fn handle(&mut self, msg: DeleteUser, _ctx: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        AtomicResponse::new(Box::pin(
            async move { client.delete_user(&msg.user).await }.into_actor(self),
        ))
    }
}

/// Why a command did not produce an answer from the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The hub refused or failed.
    Hub(HubError),
    /// The executor stopped before answering (it is being restarted).
    ExecutorGone(String),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Hub(err) => err.fmt(f),
            CommandError::ExecutorGone(what) => {
                write!(f, "{what}: the executor stopped before answering")
            }
        }
    }
}

/// The executors, handing each command to the least busy one so that a slow
/// stop does not hold up commands queued behind it.
#[derive(Clone)]
pub struct ExecutorPool {
    members: Rc<[(Addr<Executor>, Cell<usize>)]>,
}

impl ExecutorPool {
    /// A pool of the given executors (at least one).
    pub fn new(executors: Vec<Addr<Executor>>) -> Self {
        ExecutorPool {
            members: executors
                .into_iter()
                .map(|addr| (addr, Cell::new(0)))
                .collect(),
        }
    }

    /// How many executors there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the pool has no executors.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Stops a server through the least busy executor.
    pub async fn stop_server(&self, command: StopServer) -> Result<StopOutcome, CommandError> {
        let what = format!("stop server {}/{}", command.user, command.server);
        self.dispatch(command, what).await
    }

    /// Deletes a user through the least busy executor.
    pub async fn delete_user(&self, command: DeleteUser) -> Result<DeleteOutcome, CommandError> {
        let what = format!("delete user {}", command.user);
        self.dispatch(command, what).await
    }

    async fn dispatch<M, T>(&self, command: M, what: String) -> Result<T, CommandError>
    where
        M: Message<Result = Result<T, HubError>> + Send + 'static,
        T: Send + 'static,
        Executor: Handler<M>,
    {
        let Some((addr, load)) = self.members.iter().min_by_key(|(_, load)| load.get()) else {
            return Err(CommandError::ExecutorGone(what));
        };
        load.set(load.get() + 1);
        let answer = addr.send(command).await;
        load.set(load.get() - 1);
        match answer {
            Ok(result) => result.map_err(CommandError::Hub),
            Err(_) => Err(CommandError::ExecutorGone(what)),
        }
    }
}
