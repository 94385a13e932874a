//! The Lister: one pass = read the hub's version, then walk the user lists
//! page by page, handing each page to the Evaluator as it arrives, with at
//! most [`PAGES_ACTED_ON`] pages being acted on or fetched ahead (and one
//! more being fetched); a listing ends when all its pages have been acted
//! on.
//!
//! Pages are walked from the **last offset down to the first**. Stopping a
//! user's last server drops them out of `state=ready` (deleting a user drops
//! them out of `state=inactive`), which shifts every later offset; users are
//! ordered by id, so a cull only shifts pages after it. Walking backwards
//! means no cull ever shifts a page not yet read, so one pass sees everyone
//! while holding only a few pages in memory. (Upstream instead reads every
//! page before acting, holding the whole hub in memory.) Which page comes
//! next, and what in the hub's paging does not add up, is planned by the
//! pure [`super::walk`]; this actor only fetches, logs and hands over.

use super::chaos::{self, Site};
use super::evaluator::{EvaluatePage, Evaluator};
use super::executor::{GetTokenOwner, GetVersion, ListUsers};
use super::guard::{self, guarded, Restartable, Restarted};
use super::pool::{CommandError, NotSent, Pool};
use super::walk::{Filter, PageRequest, PageSeen, PageWalk};
use super::Tally;
use crate::hub::{HubError, HubVersion, UserList, UserQuery, UserState};
use crate::logging::{debug, error, info, warning, Log};
use crate::rules::ScopeNeed;
use actix::prelude::*;
use futures_util::future::{select, Either, LocalBoxFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;

/// The most pages in the Evaluator's hands at once. A page's stops are
/// queued at the executor pool as soon as it arrives, and page reads go
/// ahead of queued stops there, so while one page's stops run the next
/// page's are already waiting: the executors do not idle at page
/// boundaries. A page is handed over only while fewer commands wait for an
/// executor than there are executors, so pages are held only when they
/// are needed to keep the executors busy; and never more than this many,
/// plus the one being fetched, whatever the size of the hub.
pub const PAGES_ACTED_ON: usize = 8;

/// The most pages fetched ahead of the walk on its way down. A hub whose
/// pages take tens of ms (a real hub with 10,000+ users) would otherwise
/// leave the executors idle between pages whenever a page's stops take less
/// time than reading the next page: reading a few pages at once keeps them
/// busy. Pages below the one being read can be read early, since a cull only
/// moves the pages above it; they are fetched ahead only while a page is
/// still on its way and the executors may run dry meanwhile, so pages that
/// come quickly, or a hub whose stops are the slow part, are read no sooner
/// than before.
pub const READ_AHEAD: usize = 4;

/// The most users in the pages fetched ahead: a page's work (and memory)
/// grows with its users, so at the hub's default page size (50) that is
/// [`READ_AHEAD`] pages, and a single page of 200.
pub const READ_AHEAD_USERS: u64 = 200;

/// Whether another page may be handed to the Evaluator, with `acting`
/// pages in its hands and `backlog` commands waiting for one of `executors`
/// executors: always when none is, never beyond [`PAGES_ACTED_ON`], and
/// otherwise only while the executors may run out of queued work (fewer
/// commands wait than there are executors).
pub fn room_for_a_page(acting: usize, backlog: usize, executors: usize) -> bool {
    acting == 0 || (acting < PAGES_ACTED_ON && backlog < executors)
}

/// Run one whole pass; answered with what it did.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Tally")]
pub struct RunPass;

/// Lists users and feeds the Evaluator.
pub struct Lister {
    walk: Walk,
    /// Whether the token's scopes were found to show what the policy rules
    /// match on (checked once; it survives the Lister's restarts).
    scopes_checked: bool,
    /// Passes started so far.
    passes: u64,
    restarts: Recipient<Restarted>,
}

/// The pass's parameters, cloned into the pass's future.
#[derive(Clone)]
struct Walk {
    pool: Pool,
    evaluator: Addr<Evaluator>,
    page_size: Option<u64>,
    cull_users: bool,
    /// Whether servers still spawning or stopping are listed too
    /// (`state=active` instead of `state=ready`), to find stuck ones.
    pending_too: bool,
    /// The pass this walk is (from 1).
    pass: u64,
    /// The scopes the policy rules need, checked once against the token.
    scope_needs: Rc<[ScopeNeed]>,
    log: Log,
}

impl Lister {
    /// A lister fetching pages through `pool` and sending them to
    /// `evaluator`. `page_size` is `--api-page-size` (`None`: the hub's
    /// default); with `cull_users` the users without running servers are
    /// listed too; with `pending_too`, the users whose servers are all
    /// spawning or stopping.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: Pool,
        evaluator: Addr<Evaluator>,
        page_size: Option<u64>,
        cull_users: bool,
        pending_too: bool,
        scope_needs: Vec<ScopeNeed>,
        restarts: Recipient<Restarted>,
        log: Log,
    ) -> Self {
        Lister {
            walk: Walk {
                pool,
                evaluator,
                page_size,
                cull_users,
                pending_too,
                pass: 0,
                scope_needs: scope_needs.into(),
                log,
            },
            scopes_checked: false,
            passes: 0,
            restarts,
        }
    }
}

impl Actor for Lister {
    type Context = Context<Self>;
}

impl Supervised for Lister {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        guard::restarting(self);
    }
}

impl Restartable for Lister {
    fn name(&self) -> String {
        "lister".to_owned()
    }
    fn log(&self) -> &Log {
        &self.walk.log
    }
    fn restarts(&self) -> &Recipient<Restarted> {
        &self.restarts
    }
}

impl Handler<RunPass> for Lister {
    /// Atomic: a second `RunPass` waits for the first, so passes never overlap.
    type Result = AtomicResponse<Self, Tally>;

    fn handle(&mut self, _msg: RunPass, _ctx: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(Box::pin(
            guarded(
                self,
                |lister| {
                    lister.passes += 1;
                    let mut walk = lister.walk.clone();
                    walk.pass = lister.passes;
                    let checked = lister.scopes_checked;
                    async move {
                        chaos::maybe_panic(Site::Lister);
                        walk.pass(checked).await
                    }
                },
                || (Tally::failure(), false),
            )
            .map(|(tally, checked), lister, _ctx| {
                lister.scopes_checked |= checked;
                tally
            }),
        ))
    }
}

/// One page being fetched in the background; dropping it stops the fetch
/// (a page fetched ahead that the walk no longer wants).
struct Fetch(actix_rt::task::JoinHandle<Result<UserList, CommandError>>);

impl std::future::Future for Fetch {
    type Output = Result<UserList, CommandError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.unwrap_or(Err(CommandError::NotSent(NotSent::Stopping))))
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The pages fetched ahead of the walk, in the order it will ask for them.
#[derive(Default)]
struct ReadAhead {
    pages: VecDeque<(PageRequest, Fetch)>,
}

impl ReadAhead {
    /// The fetch of `next`: the one started ahead when `next` is the page
    /// expected, else a new one from `fetch` (and what was fetched ahead
    /// is dropped: the walk went elsewhere).
    fn take(&mut self, next: PageRequest, fetch: impl FnOnce() -> Fetch) -> Fetch {
        match self.pages.pop_front() {
            Some((page, fetching)) if page == next => fetching,
            _ => {
                self.pages.clear();
                fetch()
            }
        }
    }
}

/// A pass's running total, which logs each kind of refusal once.
struct PassTally {
    tally: Tally,
    logged: BTreeSet<String>,
}

impl PassTally {
    fn add(&mut self, part: Tally, log: &Log) {
        for (reason, refusal) in &part.refusals {
            if self.logged.insert(reason.clone()) {
                error!(
                    log,
                    "{} (this pass's other requests refused for the same reason are counted, not logged)",
                    refusal.first
                );
            }
        }
        self.tally += part;
    }
}

impl Walk {
    /// One pass; `scopes_checked`: whether the token's scopes were checked
    /// already. Answers the pass's tally and whether they are checked now.
    async fn pass(self, scopes_checked: bool) -> (Tally, bool) {
        self.pool.begin_pass().await;
        let mut pass = PassTally {
            tally: Tally::default(),
            logged: BTreeSet::new(),
        };
        let version = match self.pool.call(GetVersion, None).await {
            Ok(version) => version,
            Err(err) => {
                // The cheapest request there is: when it cannot be answered
                // after its retries, the hub is not serving.
                let down = matches!(
                    &err,
                    CommandError::GaveUp { .. } | CommandError::NotSent(NotSent::HubDown)
                );
                let mut tally = self.failed("Cannot start the pass", err);
                tally.listings_cut_short += 1;
                tally.hub_down |= down;
                pass.add(tally, &self.log);
                return (pass.tally, scopes_checked);
            }
        };
        debug!(self.log, "JupyterHub {version}");
        if !scopes_checked && !self.scope_needs.is_empty() {
            if let Err(tally) = self.check_scopes(&version).await {
                pass.add(tally, &self.log);
                return (pass.tally, false);
            }
        }
        if version.has_state_filter() {
            // Upstream's order: users without servers first, then the users
            // with ready servers (whose deletion follows their servers' stops).
            if self.cull_users {
                self.list(&version, Some(UserState::Inactive), &mut pass)
                    .await;
            }
            let running = if self.pending_too {
                UserState::Active
            } else {
                UserState::Ready
            };
            self.list(&version, Some(running), &mut pass).await;
        } else {
            // Before 1.3 there is no filter: every user, judged here.
            self.list(&version, None, &mut pass).await;
        }
        pass.tally.hub_down |= self.pool.found_hub_down().await;
        (pass.tally, true)
    }

    /// Checks, before anything is culled, that the token's scopes show
    /// what the policy rules match on: a rule on groups the hub hides would
    /// never match, and its exemptions would silently not protect anyone.
    /// A token that cannot show them ends the culler (exit 2): the tally
    /// says so.
    async fn check_scopes(&self, version: &HubVersion) -> Result<(), Tally> {
        let scopes = match self.pool.call(GetTokenOwner, None).await {
            Ok(owner) => owner.scopes,
            // Hubs before 2.0 have no /user scopes to read.
            Err(CommandError::Hub(HubError::Status { status: 404, .. })) => None,
            Err(err) => return Err(self.failed("Cannot check the token's scopes", err)),
        };
        let Some(scopes) = scopes else {
            warning!(
                self.log,
                "JupyterHub {version} does not list the token's scopes: cannot check that it shows what the policy rules match on"
            );
            return Ok(());
        };
        let missing: Vec<_> = self
            .scope_needs
            .iter()
            .filter(|need| !need.met_by(&scopes))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for need in &missing {
            error!(self.log, "{need}");
        }
        error!(
            self.log,
            "Stopping before culling anything: the policy rules cannot be applied with this token (its scopes: {})",
            scopes.join(", ")
        );
        // Nothing was culled: the culler ends, as a usage error would at start.
        Err(Tally {
            fatal: true,
            ..Tally::failure()
        })
    }

    /// Walks one listing (one `state`) to the end, as [`PageWalk`] plans:
    /// the next page is fetched while earlier ones are acted on, up to
    /// [`PAGES_ACTED_ON`] of them at once.
    async fn list(&self, version: &HubVersion, state: Option<UserState>, pass: &mut PassTally) {
        let listing = match state {
            Some(state) => format!("GET /users?state={}", state.as_query()),
            None => "GET /users".to_owned(),
        };
        let filter = match state {
            Some(UserState::Ready) => Filter::PostFiltered,
            Some(UserState::Inactive | UserState::Active) | None => Filter::Exact,
        };
        let mut walk = PageWalk::new(filter, self.page_size);
        let mut request = walk.first();
        let mut fetching = self.fetch(state, request);
        let mut ahead = ReadAhead::default();
        // The pages handed to the Evaluator and not yet acted on to the end.
        let mut acting: FuturesUnordered<LocalBoxFuture<'static, Tally>> = FuturesUnordered::new();
        loop {
            let answer = self
                .await_page(&mut fetching, &walk, state, &mut ahead, &mut acting, pass)
                .await;
            let list = match answer {
                Ok(list) => list,
                Err(err) => {
                    // A page that kept failing (its body would not read, the
                    // hub answered 5xx) is skipped on the way down, and the
                    // other pages go on: skipping acts on nobody.
                    let skip = match &err {
                        CommandError::GaveUp { error, .. } => !error.is_outage(),
                        CommandError::Crashed => true,
                        _ => false,
                    };
                    if let Some(next) = skip.then(|| walk.unreadable(request)).flatten() {
                        error!(
                            self.log,
                            "{listing}: skipping the page at offset {}: {err}; its users wait for the next pass, the other pages go on",
                            request.offset
                        );
                        pass.add(
                            Tally {
                                errors: 1,
                                listings_cut_short: 1,
                                ..Tally::default()
                            },
                            &self.log,
                        );
                        request = next;
                        fetching = ahead.take(next, || self.fetch(state, next));
                        continue;
                    }
                    let mut tally = self.failed("Cannot list users", err);
                    tally.listings_cut_short += 1;
                    pass.add(tally, &self.log);
                    break;
                }
            };
            if list.pagination.is_none() && request.offset == 0 && version.release[0] >= 2 {
                warning!(
                    self.log,
                    "JupyterHub {version} sent a plain list instead of a page (is something between us and the hub dropping the Accept header?); it may stop at the hub's api_page_max_limit"
                );
            }
            let step = match walk.seen(request, &PageSeen::of(&list)) {
                Ok(step) => step,
                Err(err) => {
                    error!(self.log, "{listing}: {err}");
                    pass.add(
                        Tally {
                            errors: 1,
                            listings_cut_short: 1,
                            ..Tally::default()
                        },
                        &self.log,
                    );
                    break;
                }
            };
            for suspicion in &step.suspicions {
                warning!(self.log, "{listing}: {suspicion}");
            }
            if step.act {
                // Room first, then the next read: so at most PAGES_ACTED_ON
                // pages are being acted on or fetched ahead, and one more is
                // being fetched (the read still goes ahead of this page's
                // stops, which the executor pool lets it do).
                self.await_room(&mut acting, pass).await;
                acting.push(self.evaluate(list));
            }
            match step.next {
                Some(next) => {
                    request = next;
                    fetching = ahead.take(next, || self.fetch(state, next));
                }
                None => break,
            }
        }
        // The listing is over when every page of it has been acted on.
        while let Some(done) = acting.next().await {
            pass.add(done, &self.log);
        }
    }

    /// Waits until another page may be handed to the Evaluator: none is
    /// being acted on, or fewer than [`PAGES_ACTED_ON`] are and fewer
    /// commands wait for an executor than there are executors (more pages
    /// would only wait in memory). Pages finished meanwhile are added up.
    async fn await_room(
        &self,
        acting: &mut FuturesUnordered<LocalBoxFuture<'static, Tally>>,
        pass: &mut PassTally,
    ) {
        loop {
            // Asked for the next release first, then the load: no release of
            // an executor between the two is missed.
            let released = std::pin::pin!(self.pool.next_release());
            let load = self.pool.load().await;
            if room_for_a_page(acting.len(), load.backlog, load.size) {
                return;
            }
            match select(acting.next(), released).await {
                Either::Left((Some(done), _)) => pass.add(done, &self.log),
                Either::Left((None, _)) | Either::Right(_) => {}
            }
        }
    }

    /// Waits for the page being fetched. Whenever a request is answered
    /// meanwhile and fewer commands wait than there are executors (they may
    /// run dry waiting for this page), the pages after it are fetched ahead:
    /// pages that come quickly are never read ahead, slow ones are.
    async fn await_page(
        &self,
        fetching: &mut Fetch,
        walk: &PageWalk,
        state: Option<UserState>,
        ahead: &mut ReadAhead,
        acting: &mut FuturesUnordered<LocalBoxFuture<'static, Tally>>,
        pass: &mut PassTally,
    ) -> Result<UserList, CommandError> {
        loop {
            let released = std::pin::pin!(self.pool.next_release());
            match select(&mut *fetching, released).await {
                Either::Left((answer, _)) => return answer,
                Either::Right(_) => self.read_ahead(walk, state, ahead, acting, pass).await,
            }
        }
    }

    /// Starts fetching one page in the background.
    fn fetch(&self, state: Option<UserState>, page: PageRequest) -> Fetch {
        let pool = self.pool.clone();
        let query = UserQuery {
            state,
            offset: Some(page.offset),
            limit: page.limit,
        };
        Fetch(actix_rt::spawn(async move {
            pool.call(ListUsers(query), None).await
        }))
    }

    /// Fetches the pages the walk expects after the one being fetched, up
    /// to [`READ_AHEAD`], while the executors may run out of queued work,
    /// and only as many as keep
    /// the pages being acted on and those fetched ahead within
    /// [`PAGES_ACTED_ON`]. Handing a page over moves it from the one being
    /// read to those acted on, and the next page from those fetched ahead
    /// to the one being read: the sum never grows past the bound, so the
    /// pages in memory stay at most [`PAGES_ACTED_ON`] and one more.
    async fn read_ahead(
        &self,
        walk: &PageWalk,
        state: Option<UserState>,
        ahead: &mut ReadAhead,
        acting: &mut FuturesUnordered<LocalBoxFuture<'static, Tally>>,
        pass: &mut PassTally,
    ) {
        // A page just handed over has its commands queued at the pool when
        // the Evaluator next runs, which it does before this task runs
        // again (one thread, woken first): only then does the backlog say
        // whether the executors may run dry.
        actix_rt::task::yield_now().await;
        let load = self.pool.load().await;
        if load.backlog >= load.size {
            return;
        }
        // Pages acted on to the end hold no memory any more.
        while let Some(Some(done)) = acting.next().now_or_never() {
            pass.add(done, &self.log);
        }
        let by_users = usize::try_from(READ_AHEAD_USERS / walk.page_size().max(1))
            .unwrap_or(usize::MAX)
            .max(1);
        let depth = READ_AHEAD
            .min(by_users)
            .min(PAGES_ACTED_ON.saturating_sub(acting.len()));
        for page in walk.ahead(depth).into_iter().skip(ahead.pages.len()) {
            ahead.pages.push_back((page, self.fetch(state, page)));
        }
    }

    /// Hands a page to the Evaluator now (the page's commands start at
    /// once) and returns the wait for it to be acted on; users the hub sent
    /// unreadable records for are logged and counted.
    fn evaluate(&self, list: UserList) -> LocalBoxFuture<'static, Tally> {
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
            return Box::pin(async move { tally });
        }
        let users = list.users.len();
        // `send` queues the page at once (the mailbox holds more than
        // PAGES_ACTED_ON pages); awaiting only collects the tally.
        let acted = self.evaluator.send(EvaluatePage {
            users: list.users,
            pass: self.pass,
        });
        let log = self.log.clone();
        Box::pin(async move {
            // The Supervisor keeps the evaluator's mailbox open across
            // restarts (a crash answers with a failed tally), so this cannot
            // fail but in a bug; if it does, the page is an error, not a
            // silence.
            tally += acted.await.unwrap_or_else(|err| {
                error!(
                    log,
                    "The evaluator did not answer ({err}); this page of {users} users is judged again next pass"
                );
                Tally::failure()
            });
            tally
        })
    }

    /// The tally of a request the pass could not do without.
    fn failed(&self, what: &str, err: CommandError) -> Tally {
        match err {
            CommandError::Hub(err @ HubError::Forbidden { .. }) => {
                let mut tally = Tally::default();
                tally.refused(&err);
                tally
            }
            CommandError::NotSent(NotSent::Stopping) => {
                info!(self.log, "{what}: the culler is stopping");
                Tally::default()
            }
            // The request that found the hub down was counted already.
            CommandError::NotSent(NotSent::HubDown) => Tally::default(),
            err => {
                error!(self.log, "{what}: {err}");
                Tally::failure()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_handed_over_only_while_the_executors_may_run_dry() {
        // Nothing being acted on: always, however long the queue.
        assert!(room_for_a_page(0, 1_000, 10));
        // Work queued for every executor: the page waits in memory.
        assert!(!room_for_a_page(1, 10, 10));
        assert!(!room_for_a_page(1, 11, 10));
        // Less than a round queued: it goes.
        assert!(room_for_a_page(1, 9, 10));
        assert!(room_for_a_page(PAGES_ACTED_ON - 1, 0, 10));
        // Never beyond the cap.
        assert!(!room_for_a_page(PAGES_ACTED_ON, 0, 10));
    }
}
