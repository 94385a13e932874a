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
use crate::hub::{HubClient, HubError, HubVersion, UserList, UserQuery, UserState};
use crate::logging::{debug, error, warning, Log};
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
                tally += self.list(&version, Some(UserState::Inactive)).await;
            }
            tally += self.list(&version, Some(UserState::Ready)).await;
        } else {
            // Before 1.3 there is no filter: every user, judged here.
            tally += self.list(&version, None).await;
        }
        tally
    }

    /// Walks one listing (one `state`) to the end.
    async fn list(&self, version: &HubVersion, state: Option<UserState>) -> Tally {
        let probe = UserQuery {
            state,
            offset: None,
            limit: self.page_size,
        };
        let first = match self.client.list_users(probe).await {
            Ok(list) => list,
            Err(err) => return self.failed(err),
        };
        let Some(pagination) = first.pagination else {
            if version.release[0] >= 2 {
                warning!(
                    self.log,
                    "JupyterHub {version} sent a plain list instead of a page (is something between us and the hub dropping the Accept header?); it may stop at the hub's api_page_max_limit"
                );
            }
            return self.evaluate(first).await;
        };
        let limit = pagination.limit.max(1);
        if pagination.total <= limit {
            return self.evaluate(first).await;
        }
        // The first page is read again last: by then it is fresher.
        drop(first);
        let mut tally = Tally::default();
        let mut next = Some(self.fetch(state, last_offset(pagination.total, limit), limit));
        while let Some((offset, fetching)) = next.take() {
            let page = fetching.await;
            // Fetch the page before this one while this one is acted on: the
            // culls of this page cannot shift it. Each page's own total keeps
            // the walk short when users went away (or the first was absurd).
            if offset > 0 {
                let total = page
                    .as_ref()
                    .ok()
                    .and_then(|p| p.pagination)
                    .map(|p| p.total);
                let below = offset.saturating_sub(limit);
                let below = total.map_or(below, |total| below.min(last_offset(total, limit)));
                next = Some(self.fetch(state, below, limit));
            }
            match page {
                Ok(list) => tally += self.evaluate(list).await,
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
    ) -> (
        u64,
        impl std::future::Future<Output = Result<UserList, HubError>>,
    ) {
        let client = self.client.clone();
        let query = UserQuery {
            state,
            offset: Some(offset),
            limit: Some(limit),
        };
        let task = actix_rt::spawn(async move { client.list_users(query).await });
        let fetching = async move {
            task.await.unwrap_or_else(|_| {
                Err(HubError::Unreachable {
                    request: format!("GET users?offset={offset}"),
                    detail: "the request was abandoned because the culler is stopping".into(),
                })
            })
        };
        (offset, fetching)
    }

    /// Hands a page to the Evaluator and waits until it has been acted on;
    /// users the hub sent unreadable records for are logged and counted.
    async fn evaluate(&self, list: UserList) -> Tally {
        let mut tally = Tally::default();
        for rejected in &list.rejected {
            error!(
                self.log,
                "Skipping user {}: the hub's record of them is unreadable: {}",
                rejected.name.as_deref().unwrap_or("(no name)"),
                rejected.reason
            );
            tally.errors += 1;
        }
        if list.users.is_empty() {
            return tally;
        }
        match self
            .evaluator
            .send(EvaluatePage { users: list.users })
            .await
        {
            Ok(page) => tally += page,
            Err(err) => {
                error!(
                    self.log,
                    "The evaluator did not answer ({err}); this page was skipped"
                );
                tally.errors += 1;
            }
        }
        tally
    }

    fn failed(&self, err: HubError) -> Tally {
        error!(self.log, "Cannot list users: {err}");
        Tally::failure()
    }
}

/// The offset of the last page of a list of `total` users.
fn last_offset(total: u64, limit: u64) -> u64 {
    total.saturating_sub(1) / limit * limit
}

#[cfg(test)]
mod tests {
    use super::last_offset;

    #[test]
    fn last_offset_is_the_start_of_the_last_page() {
        assert_eq!(last_offset(0, 5), 0);
        assert_eq!(last_offset(1, 5), 0);
        assert_eq!(last_offset(5, 5), 0);
        assert_eq!(last_offset(6, 5), 5);
        assert_eq!(last_offset(30, 5), 25);
        assert_eq!(last_offset(31, 5), 30);
    }
}
