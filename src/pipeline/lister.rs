//! The Lister: one pass = read the hub's version, then walk the user lists
//! page by page, handing each page to the Evaluator and waiting for it to be
//! acted on before moving on (at most one more page is fetched meanwhile).
//!
//! Pages are walked from the **last offset down to the first**. Stopping a
//! user's last server drops them out of `state=ready` (deleting a user drops
//! them out of `state=inactive`), which shifts every later offset; users are
//! ordered by id, so a cull only shifts pages after it. Walking backwards
//! means no cull ever shifts a page not yet read, so one pass sees everyone
//! while holding only a page or two in memory. (Upstream instead reads every
//! page before acting, holding the whole hub in memory.)

use super::evaluator::{EvaluatePage, Evaluator};
use super::Tally;
use crate::hub::{HubClient, HubError, User, UserList, UserQuery, UserState};
use crate::logging::{debug, error, Log};
use actix::prelude::*;

/// Run one whole pass; answered with what it did.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Tally")]
pub struct RunPass;

/// Lists users and feeds the Evaluator.
pub struct Lister {
    walk: Walk,
}

/// The pass's parameters, cloned into the pass's future.
#[derive(Clone)]
struct Walk {
    client: HubClient,
    evaluator: Addr<Evaluator>,
    page_size: Option<u64>,
    cull_users: bool,
    log: Log,
}

impl Lister {
    /// A lister sending pages to `evaluator`. `page_size` is
    /// `--api-page-size` (`None`: the hub's default); with `cull_users` the
    /// users without running servers are listed too.
    pub fn new(
        client: HubClient,
        evaluator: Addr<Evaluator>,
        page_size: Option<u64>,
        cull_users: bool,
        log: Log,
    ) -> Self {
        Lister {
            walk: Walk {
                client,
                evaluator,
                page_size,
                cull_users,
                log,
            },
        }
    }
}

impl Actor for Lister {
    type Context = Context<Self>;
}

impl Supervised for Lister {}

impl Handler<RunPass> for Lister {
    /// Atomic: a second `RunPass` waits for the first, so passes never overlap.
    type Result = AtomicResponse<Self, Tally>;

    fn handle(&mut self, _msg: RunPass, _ctx: &mut Context<Self>) -> Self::Result {
        let walk = self.walk.clone();
        AtomicResponse::new(Box::pin(async move { walk.pass().await }.into_actor(self)))
    }
}

impl Walk {
    async fn pass(self) -> Tally {
        let version = match self.client.version().await {
            Ok(version) => version,
            Err(err) => {
                error!(self.log, "Cannot start the pass: {err}");
                return Tally::failure();
            }
        };
        debug!(self.log, "JupyterHub {version}");
        let mut tally = Tally::default();
        if version.has_state_filter() {
            // Upstream's order: users without servers first, then the users
            // with ready servers (whose deletion follows their servers' stops).
            if self.cull_users {
                tally += self.list(Some(UserState::Inactive)).await;
            }
            tally += self.list(Some(UserState::Ready)).await;
        } else {
            // Before 1.3 there is no filter: every user, judged here.
            tally += self.list(None).await;
        }
        tally
    }

    /// Walks one listing (one `state`) to the end.
    async fn list(&self, state: Option<UserState>) -> Tally {
        let probe = UserQuery {
            state,
            offset: None,
            limit: self.page_size,
        };
        let first = match self.client.list_users(probe).await {
            Ok(list) => list,
            Err(err) => return self.failed(err),
        };
        let (pagination, items) = match first {
            UserList::Everything(users) => return self.evaluate(users).await,
            UserList::Page { items, pagination } => (pagination, items),
        };
        let limit = pagination.limit.max(1);
        if pagination.total <= limit {
            return self.evaluate(items).await;
        }
        // The first page is read again last: by then it is fresher.
        drop(items);
        let last = (pagination.total - 1) / limit * limit;
        let mut offsets = (0..=last / limit).rev().map(|page| page * limit);
        let mut tally = Tally::default();
        let mut next = offsets
            .next()
            .map(|offset| self.fetch(state, offset, limit));
        while let Some(fetching) = next.take() {
            let page = fetching.await;
            // Fetch the page before this one while this one is acted on: the
            // culls of this page cannot shift it.
            next = offsets
                .next()
                .map(|offset| self.fetch(state, offset, limit));
            match page {
                Ok(list) => tally += self.evaluate(list.into_users()).await,
                Err(err) => tally += self.failed(err),
            }
        }
        tally
    }

    /// Starts fetching one page in the background.
    fn fetch(
        &self,
        state: Option<UserState>,
        offset: u64,
        limit: u64,
    ) -> impl std::future::Future<Output = Result<UserList, HubError>> {
        let client = self.client.clone();
        let query = UserQuery {
            state,
            offset: Some(offset),
            limit: Some(limit),
        };
        let task = actix_rt::spawn(async move { client.list_users(query).await });
        async move {
            task.await.unwrap_or_else(|_| {
                Err(HubError::BadBody {
                    request: format!("GET users offset={offset}"),
                    detail: "the fetch was cancelled".into(),
                })
            })
        }
    }

    async fn evaluate(&self, users: Vec<User>) -> Tally {
        if users.is_empty() {
            return Tally::default();
        }
        match self.evaluator.send(EvaluatePage { users }).await {
            Ok(tally) => tally,
            Err(err) => {
                error!(
                    self.log,
                    "The evaluator did not answer ({err}); this page was skipped"
                );
                Tally::failure()
            }
        }
    }

    fn failed(&self, err: HubError) -> Tally {
        error!(self.log, "Cannot list users: {err}");
        Tally::failure()
    }
}
