//! Planning the walk over the pages of one `GET /users` listing, as pure
//! data: which page to ask for next, whether the page just seen is to be
//! acted on, when to stop, and what the hub said that does not add up. The
//! Lister does the fetching; this module only decides.
//!
//! ## The walk
//! A **probe** at offset 0 learns the hub's page size (`limit`) and `total`.
//! When that one page holds everything it is acted on and the walk ends.
//! Otherwise the probe is *not* acted on: the walk goes from the last page
//! (`(total-1)/limit*limit`) **down** to offset 0, acting on every page.
//! Backwards because acting culls: a stopped server drops its user out of
//! `state=ready`, a deleted user drops out of `state=inactive`, and either
//! shifts every later offset down. Users are ordered by id, so a cull only
//! moves pages above it, which a backward walk has already read; reading
//! forwards would skip one user per cull. The probe is read again last
//! (fresher by then) rather than acted on first, which would shift every
//! page the walk still has to read.
//!
//! Each decision depends only on the page just seen, so the Lister can
//! fetch the next page while the current one is acted on.
//!
//! ## What is suspicious
//! `state=ready` is filtered in memory *after* offset/limit, so under
//! [`Filter::PostFiltered`] short and empty pages are normal and `total`
//! counts users that may not be shown. Beyond that, the figures must agree;
//! when they do not, the walk reports a [`Suspicion`] (once per kind and
//! walk) and adapts so that it neither skips users silently nor fetches more
//! pages than the users seen justify:
//! - a `total` beyond [`MAX_PLAUSIBLE_USERS`], or an empty top page under
//!   [`Filter::Exact`], is not trusted: the real last page is **searched**
//!   for (doubling, then bisecting, over page numbers; pages fetched only
//!   for that are not acted on), then walked down from. Under
//!   [`Filter::PostFiltered`] an all-pending page looks like the end to such
//!   a search: with a lying `total`, users above it can be missed;
//! - a top page holding more users than `total` accounts for (or full with
//!   `next` set) makes the walk look above it the same way;
//! - a page with more users than its `limit` sets the step to what was seen;
//! - a probe whose `next` says more follows, although its `limit` says the
//!   page reaches past `total` or `next.offset` lies inside the limit, means
//!   the hub pages by fewer than it says: the walk steps by what `next`
//!   shows (or by the users the page held) from the first page on;
//! - `next` set on the page believed last always makes the walk look above
//!   it: the walk never ends while the hub says more follows;
//! - a short page that is not the last under [`Filter::Exact`] means the hub
//!   pages by fewer than it says: the walk starts again from the top with
//!   the page size seen, once; a second time is a [`WalkError`];
//! - a page answered at another offset than asked, or repeating the
//!   previous page, means the hub ignores `offset`: a [`WalkError`].

use crate::hub::{Pagination, UserList};
use std::fmt;
use std::mem::{discriminant, Discriminant};

/// The page size stepped by when the probe shows its `limit` is a lie and
/// nothing else shows the real one: JupyterHub's `api_page_default_limit`.
pub const FALLBACK_PAGE_SIZE: u64 = 50;

/// More users than any hub is believed to hold: a larger `total` is a lie
/// (e.g. 2^64-1), and the walk finds the real end from the pages instead of
/// planning `total/limit` requests. Also the bound of every search upwards.
pub const MAX_PLAUSIBLE_USERS: u64 = 10_000_000;

/// Whether pages can be legitimately short: `state=ready` is filtered after
/// offset/limit, so only unfiltered listings can be checked for short pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `state=ready`: a page may hold fewer users than its limit, even none,
    /// while more pages follow, and `total` counts users not shown.
    PostFiltered,
    /// `state=inactive` or no filter: every page but the last is full and
    /// `total` counts exactly the users listed.
    Exact,
}

/// What to ask the hub for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Where the page starts.
    pub offset: u64,
    /// The page size; `None` (the hub's default) only for the probe, every
    /// later request names the page size the walk steps by, so that the hub
    /// cannot page by anything else.
    pub limit: Option<u64>,
}

/// What was seen of one answered page: all the planner needs, so that the
/// page itself can go to the Evaluator. Build it with [`PageSeen::of`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageSeen {
    /// The hub's `_pagination` (with whether `next` was set); `None` for a
    /// plain list, which is everything the hub would send at once.
    pub pagination: Option<Pagination>,
    /// How many user records the page held, readable or not: every record
    /// takes a place in the hub's paging.
    pub items: u64,
    /// The first readable user's name, to spot a hub that ignores `offset`
    /// and sends the same page again.
    pub first: Option<String>,
    /// The last readable user's name, for the same reason.
    pub last: Option<String>,
}

impl PageSeen {
    /// What the planner needs of a hub answer; the Lister's only way to
    /// build one, so that unreadable records are counted too.
    pub fn of(list: &UserList) -> Self {
        let items = list.users.len() + list.rejected.len();
        PageSeen {
            pagination: list.pagination,
            items: u64::try_from(items).unwrap_or(u64::MAX),
            first: list.users.first().map(|user| user.name.clone()),
            last: list.users.last().map(|user| user.name.clone()),
        }
    }
}

/// One thing the hub said that does not add up, with the figures seen. The
/// walk goes on (adapted); the Lister logs it as a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Suspicion {
    /// `total` is beyond [`MAX_PLAUSIBLE_USERS`]: not planned from.
    AbsurdTotal {
        /// The `total` the hub sent.
        total: u64,
        /// The most users the walk believes in.
        cap: u64,
    },
    /// A page holds users past `total`: users would be skipped by trusting it.
    TotalTooSmall {
        /// The `total` the hub sent with that page.
        total: u64,
        /// How many users that page shows exist at least (offset + items).
        listed: u64,
    },
    /// `total` jumped between two consecutive pages of one listing by more
    /// than culling and sign-ups explain.
    TotalChanged {
        /// The total sent with the previous page.
        before: u64,
        /// The total sent with this page.
        after: u64,
    },
    /// The page the walk believed last is empty although `total` says users
    /// are there, in an unfiltered listing: the real last page is searched.
    EmptyTopPage {
        /// Where the empty page starts.
        offset: u64,
        /// The `total` the hub sent with it.
        total: u64,
    },
    /// A page below the last one is empty in an unfiltered listing although
    /// `total` says users are there.
    EmptyPage {
        /// Where the empty page starts.
        offset: u64,
        /// The `total` the hub sent with it.
        total: u64,
    },
    /// A page holds more users than the `limit` the hub says it used.
    MoreItemsThanLimit {
        /// Where the page starts.
        offset: u64,
        /// The limit the hub sent.
        limit: u64,
        /// How many users the page held.
        items: u64,
        /// The page size the walk steps by.
        step: u64,
    },
    /// A page that is not the last is shorter than its `limit` in an
    /// unfiltered listing: the hub pages by fewer than it says, and stepping
    /// by its `limit` would skip users. The walk starts again from the top.
    LimitTooLarge {
        /// Where the short page starts.
        offset: u64,
        /// The limit the hub sent.
        limit: u64,
        /// How many users the page held: the page size from now on.
        items: u64,
        /// The `total` the hub sent with it.
        total: u64,
    },
    /// The probe's `next` says more follows where its `limit` says the
    /// page reaches (past `total`, or `next.offset` inside the limit): the
    /// hub pages by fewer than it says, and stepping by its `limit` would
    /// end the walk after the first page.
    NextBeforeLimit {
        /// Where the page starts.
        offset: u64,
        /// The limit the hub sent.
        limit: u64,
        /// The `total` the hub sent.
        total: u64,
        /// How many users the page held.
        items: u64,
        /// `next.offset`, when the hub sent one.
        next: Option<u64>,
        /// The page size the walk steps by.
        step: u64,
    },
    /// The hub sent a `limit` of 0, which would divide by zero: taken as 1.
    ZeroLimit {
        /// Where the page starts.
        offset: u64,
    },
}

impl fmt::Display for Suspicion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suspicion::AbsurdTotal { total, cap } => write!(
                f,
                "the hub counts {total} users, more than the {cap} any hub is believed to hold; finding the last page from the pages themselves"
            ),
            Suspicion::TotalTooSmall { total, listed } => write!(
                f,
                "the hub counts {total} users but lists at least {listed}; looking for pages beyond its count so that no one is skipped"
            ),
            Suspicion::TotalChanged { before, after } => write!(
                f,
                "the hub's count of users jumped from {before} to {after} between two pages of one listing; walking on with the pages planned"
            ),
            Suspicion::EmptyTopPage { offset, total } => write!(
                f,
                "the hub counts {total} users but its page at offset {offset} is empty; searching for the last page that is not"
            ),
            Suspicion::EmptyPage { offset, total } => write!(
                f,
                "the hub counts {total} users but its page at offset {offset} is empty; walking on"
            ),
            Suspicion::MoreItemsThanLimit { offset, limit, items, step } => write!(
                f,
                "the hub's page at offset {offset} holds {items} users though its limit is {limit}; stepping by {step}"
            ),
            Suspicion::LimitTooLarge { offset, limit, items, total } => write!(
                f,
                "the hub's page at offset {offset} holds {items} users though its limit is {limit} and it counts {total}: it pages by fewer than it says, which would skip users; walking again from the last page by {items}"
            ),
            Suspicion::NextBeforeLimit { offset, limit, total, items, next, step } => {
                write!(
                    f,
                    "the hub's page at offset {offset} holds {items} users, says its limit is {limit} and counts {total}, but its next page "
                )?;
                match next {
                    Some(next) => write!(f, "starts at offset {next}")?,
                    None => f.write_str("is set")?,
                }
                write!(
                    f,
                    ": it pages by fewer than it says, and ending here would skip users; walking from the last page by {step}"
                )
            }
            Suspicion::ZeroLimit { offset } => write!(
                f,
                "the hub's page at offset {offset} says its limit is 0; taking 1"
            ),
        }
    }
}

/// Why a listing cannot be walked safely: the walk ends, and the Lister
/// reports it as an error of the pass (the pages already acted on stand).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The hub answered with another offset than asked: it ignores `offset`.
    OffsetNotEchoed {
        /// The offset asked for.
        requested: u64,
        /// The offset the hub says it answered.
        answered: u64,
    },
    /// A page holds the same users as the page before it, at another offset:
    /// the hub ignores `offset`.
    RepeatedPage {
        /// Where the repeated page was asked for.
        offset: u64,
        /// Where the page it repeats was asked for.
        previous: u64,
        /// Its first user.
        first: String,
        /// Its last user.
        last: String,
    },
    /// After paging pages, the hub answered a plain list: it dropped the
    /// pagination (and so `offset`) mid-listing.
    NotPaged {
        /// Where the page was asked for.
        offset: u64,
    },
    /// The hub's page size contradicted itself again after the walk started
    /// over with the page size it had shown.
    LimitInconsistent {
        /// Where the page starts.
        offset: u64,
        /// The limit the hub sent.
        limit: u64,
        /// How many users the page held.
        items: u64,
        /// The page size the walk was stepping by.
        step: u64,
    },
    /// Users are listed beyond [`MAX_PLAUSIBLE_USERS`].
    TooManyUsers {
        /// Where the page with users was asked for.
        offset: u64,
        /// The most users the walk believes in.
        cap: u64,
    },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::OffsetNotEchoed { requested, answered } => write!(
                f,
                "asked for the page at offset {requested}, the hub answered the one at offset {answered}: it ignores offset, so its pages cannot be walked; listing abandoned"
            ),
            WalkError::RepeatedPage { offset, previous, first, last } => write!(
                f,
                "the hub's page at offset {offset} repeats its page at offset {previous} (users {first} to {last}): it ignores offset, so its pages cannot be walked; listing abandoned"
            ),
            WalkError::NotPaged { offset } => write!(
                f,
                "asked for the page at offset {offset}, the hub answered a plain list: it dropped pagination mid-listing; listing abandoned"
            ),
            WalkError::LimitInconsistent { offset, limit, items, step } => write!(
                f,
                "the hub's page at offset {offset} holds {items} users where {step} were expected (its limit: {limit}), after the walk had already started over with the page size it showed: its paging cannot be trusted; listing abandoned"
            ),
            WalkError::TooManyUsers { offset, cap } => write!(
                f,
                "the hub lists users at offset {offset}, beyond the {cap} any hub is believed to hold; listing abandoned"
            ),
        }
    }
}

impl std::error::Error for WalkError {}

/// The planner's answer to one page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Whether to hand the page to the Evaluator. `false` for a probe or a
    /// page fetched only to find the end: its users are met again on the
    /// way down, and acting now would shift pages still to be read.
    pub act: bool,
    /// The page to fetch next (while this one is acted on); `None` when the
    /// walk is over.
    pub next: Option<PageRequest>,
    /// What did not add up on this page, for the log.
    pub suspicions: Vec<Suspicion>,
}

/// The plan of one walk over one listing. Feed it every answered page, in
/// the order it asked for them.
#[derive(Clone, Debug)]
pub struct PageWalk {
    filter: Filter,
    page_size: Option<u64>,
    /// [`MAX_PLAUSIBLE_USERS`], lowered by tests.
    cap: u64,
    /// The page size the walk steps by; 0 until the probe is seen.
    stride: u64,
    phase: Phase,
    /// Whether `total` may still bound the walk and tell the last page.
    trust_total: bool,
    /// Whether the walk has started over with a smaller page size.
    restarted: bool,
    first_total: Option<u64>,
    previous: Option<Previous>,
    raised: Vec<Discriminant<Suspicion>>,
    /// The request whose answer is expected next.
    pending: Option<PageRequest>,
    requested: u64,
}

/// Whether to act on the page just seen, and what to fetch next.
type Plan = Result<(bool, Option<PageRequest>), WalkError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the probe at offset 0.
    Probe,
    /// Looking for the last page with users, over page numbers: page `lo`
    /// has users, page `hi` (when known) has none. Without `hi` the next
    /// look is `jump` pages above `lo`, doubling each time.
    Search { lo: u64, hi: Option<u64>, jump: u64 },
    /// Walking down, acting. `top`: this is the first page of the way down
    /// (so the last page, which may be short); `check_above`: nothing has
    /// shown yet that no users lie above it.
    Down { top: bool, check_above: bool },
    /// Over.
    Done,
}

/// The previous page seen, to spot repeats and jumps of `total`.
#[derive(Clone, Debug)]
struct Previous {
    offset: u64,
    total: u64,
    first: Option<String>,
    last: Option<String>,
}

impl PageWalk {
    /// A walk over a listing with `filter`; `page_size` is `--api-page-size`
    /// (`None`: the hub's default), asked for by the probe only.
    pub fn new(filter: Filter, page_size: Option<u64>) -> Self {
        PageWalk {
            filter,
            page_size,
            cap: MAX_PLAUSIBLE_USERS,
            stride: 0,
            phase: Phase::Probe,
            trust_total: true,
            restarted: false,
            first_total: None,
            previous: None,
            raised: Vec::new(),
            pending: Some(PageRequest {
                offset: 0,
                limit: page_size,
            }),
            requested: 1,
        }
    }

    /// The probe: the first request of every walk.
    pub fn first(&self) -> PageRequest {
        PageRequest {
            offset: 0,
            limit: self.page_size,
        }
    }

    /// Takes in the answer to `requested` (the last request this walk asked
    /// for) and says whether to act on it and what to fetch next. After an
    /// error, or a step without `next`, the walk is over.
    pub fn seen(&mut self, requested: PageRequest, page: &PageSeen) -> Result<Step, WalkError> {
        debug_assert_eq!(
            self.pending,
            Some(requested),
            "the walk was given the answer to a request it did not ask for"
        );
        let mut suspicions = Vec::new();
        match self.judge(requested.offset, page, &mut suspicions) {
            Ok((act, next)) => {
                self.pending = next;
                match next {
                    Some(_) => self.requested += 1,
                    None => self.phase = Phase::Done,
                }
                Ok(Step {
                    act,
                    next,
                    suspicions,
                })
            }
            Err(err) => {
                self.pending = None;
                self.phase = Phase::Done;
                Err(err)
            }
        }
    }

    /// The answer to `requested` (the last request this walk asked for)
    /// could not be had: its body would not read, or the hub kept failing
    /// it, after every retry. On the way down the page is skipped and the
    /// walk goes on to the page below: its users wait for the next pass,
    /// and skipping acts on nobody, so no page still to be read moves.
    /// Before the way down (the probe, a search) there is nothing to plan
    /// from, and the walk is over (`None`).
    pub fn unreadable(&mut self, requested: PageRequest) -> Option<PageRequest> {
        debug_assert_eq!(
            self.pending,
            Some(requested),
            "the walk was told of a request it did not ask for"
        );
        let next = match self.phase {
            Phase::Down { .. } if requested.offset > 0 => {
                self.phase = Phase::Down {
                    top: false,
                    check_above: false,
                };
                Some(self.request(requested.offset.saturating_sub(self.stride)))
            }
            _ => None,
        };
        self.pending = next;
        match next {
            Some(_) => self.requested += 1,
            None => self.phase = Phase::Done,
        }
        next
    }

    /// Up to `depth` pages the walk will ask for after the one it asked for
    /// last, if each page is as expected: on the way down, the pages below
    /// it, which no cull can move (a cull only moves pages above it). The
    /// Lister may fetch them ahead; a page that shows something unexpected
    /// (more users above the top page, a page size that lied) sends the
    /// walk elsewhere, and what was fetched ahead is dropped. Nothing is
    /// predicted before the way down (the probe, a search).
    pub fn ahead(&self, depth: usize) -> Vec<PageRequest> {
        let (Phase::Down { .. }, Some(pending)) = (self.phase, self.pending) else {
            return Vec::new();
        };
        (1..=depth as u64)
            .map_while(|n| {
                let below = self.stride.checked_mul(n)?;
                pending
                    .offset
                    .checked_sub(below)
                    .map(|offset| self.request(offset))
            })
            .collect()
    }

    /// The page size the walk steps by (0 before the probe is seen).
    pub fn page_size(&self) -> u64 {
        self.stride
    }

    /// How many requests the walk has asked for, the probe included.
    pub fn pages_requested(&self) -> u64 {
        self.requested
    }

    /// Checks one page and plans the next: `(act, next)`.
    fn judge(&mut self, offset: u64, page: &PageSeen, out: &mut Vec<Suspicion>) -> Plan {
        let Some(pagination) = page.pagination else {
            return match self.phase {
                // A plain list is all the hub would send: nothing to walk.
                Phase::Probe => Ok((true, None)),
                _ => Err(WalkError::NotPaged { offset }),
            };
        };
        if pagination.offset != offset {
            return Err(WalkError::OffsetNotEchoed {
                requested: offset,
                answered: pagination.offset,
            });
        }
        self.check_repeat(offset, page)?;

        let limit = if pagination.limit == 0 {
            self.raise(out, Suspicion::ZeroLimit { offset });
            1
        } else {
            pagination.limit
        };
        if self.stride == 0 {
            self.stride = self.probe_stride(offset, page, pagination, limit, out);
        }
        if page.items > limit {
            let step = self.stride;
            self.raise(
                out,
                Suspicion::MoreItemsThanLimit {
                    offset,
                    limit: pagination.limit,
                    items: page.items,
                    step,
                },
            );
        }
        self.check_total(offset, page, pagination.total, out);

        match self.phase {
            Phase::Probe => self.after_probe(page, pagination, out),
            Phase::Search { .. } => self.after_search(offset, page),
            Phase::Down { top, check_above } => {
                self.after_down(offset, page, pagination, top, check_above, out)
            }
            Phase::Done => Ok((false, None)),
        }
    }

    /// The page size to step by, from the probe: what the hub pages by, or
    /// what it sent when that is more (stepping by less would fetch users
    /// twice). Unless `next` contradicts the `limit`: JupyterHub sets
    /// `next` only when more follows and puts it where its real page ends,
    /// so a `next.offset` inside the limit is the real page size, and a
    /// `next` set although the limit reaches past `total` means the limit
    /// is not what the hub pages by: the users the page held are (a page
    /// of `ready` users may hold fewer than the hub paged over, so the
    /// walk may read users twice, never skip one).
    fn probe_stride(
        &mut self,
        offset: u64,
        page: &PageSeen,
        pagination: Pagination,
        limit: u64,
        out: &mut Vec<Suspicion>,
    ) -> u64 {
        let claimed = limit.max(page.items).min(self.cap);
        // A page over its limit is judged by that alone: its `next`
        // (offset + limit) points inside this very page.
        if !pagination.has_next || page.items > limit {
            return claimed;
        }
        let gap = pagination
            .next_offset
            .and_then(|next| next.checked_sub(offset))
            .filter(|&gap| gap > 0);
        let step = match gap {
            Some(gap) if gap < claimed => gap,
            Some(_) => return claimed,
            None if offset.saturating_add(limit) < pagination.total => return claimed,
            None if page.items > 0 => page.items,
            // Nothing on the page shows the page size: JupyterHub's default.
            None => FALLBACK_PAGE_SIZE.min(claimed),
        };
        self.raise(
            out,
            Suspicion::NextBeforeLimit {
                offset,
                limit: pagination.limit,
                total: pagination.total,
                items: page.items,
                next: pagination.next_offset,
                step,
            },
        );
        step
    }

    /// A page equal to the previous one at another offset: `offset` ignored.
    fn check_repeat(&mut self, offset: u64, page: &PageSeen) -> Result<(), WalkError> {
        if let (Some(previous), Some(first), Some(last)) = (&self.previous, &page.first, &page.last)
        {
            if previous.offset != offset
                && previous.first.as_ref() == Some(first)
                && previous.last.as_ref() == Some(last)
            {
                return Err(WalkError::RepeatedPage {
                    offset,
                    previous: previous.offset,
                    first: first.clone(),
                    last: last.clone(),
                });
            }
        }
        Ok(())
    }

    /// Whether `total` is believable on its own, against the page and
    /// against the previous page; then remembers the page.
    fn check_total(&mut self, offset: u64, page: &PageSeen, total: u64, out: &mut Vec<Suspicion>) {
        // An empty page proves nothing about the users below its offset.
        let listed = match page.items {
            0 => 0,
            items => offset.saturating_add(items),
        };
        if total > self.cap {
            let cap = self.cap;
            self.raise(out, Suspicion::AbsurdTotal { total, cap });
            self.trust_total = false;
        } else if listed > total {
            self.raise(out, Suspicion::TotalTooSmall { total, listed });
            self.trust_total = false;
        }
        if let Some(previous) = &self.previous {
            // Between two pages our own culls remove at most the two pages
            // acted on meanwhile (one is fetched while the other is acted on).
            let first = self.first_total.unwrap_or(previous.total);
            let allowed = self.stride.saturating_mul(2).max(first / 2);
            if previous.total.abs_diff(total) > allowed {
                let before = previous.total;
                self.raise(
                    out,
                    Suspicion::TotalChanged {
                        before,
                        after: total,
                    },
                );
            }
        }
        self.first_total.get_or_insert(total);
        self.previous = Some(Previous {
            offset,
            total,
            first: page.first.clone(),
            last: page.last.clone(),
        });
    }

    fn after_probe(
        &mut self,
        page: &PageSeen,
        pagination: Pagination,
        out: &mut Vec<Suspicion>,
    ) -> Plan {
        let total = pagination.total;
        if self.filter == Filter::Exact && page.items == 0 && total > 0 {
            // Unfiltered, nothing at offset 0 means nothing at all.
            self.raise(out, Suspicion::EmptyPage { offset: 0, total });
            return Ok((true, None));
        }
        if self.filter == Filter::Exact
            && self.trust_total
            && page.items < self.stride
            && page.items < total
        {
            return self.restart(0, page.items, pagination, out);
        }
        if self.trust_total && last_offset(total, self.stride) == 0 {
            if self.more_above(0, page, pagination) {
                return Ok((false, Some(self.search(0, None))));
            }
            return Ok((true, None));
        }
        Ok((false, Some(self.down_from_top(total))))
    }

    fn after_search(&mut self, offset: u64, page: &PageSeen) -> Plan {
        let Phase::Search { lo, hi, jump } = self.phase else {
            unreachable!("after_search outside a search");
        };
        let index = offset / self.stride;
        self.phase = if page.items > 0 {
            if index >= self.beyond_cap() {
                return Err(WalkError::TooManyUsers {
                    offset,
                    cap: self.cap,
                });
            }
            let jump = if hi.is_none() {
                jump.saturating_mul(2)
            } else {
                jump
            };
            Phase::Search {
                lo: index,
                hi,
                jump,
            }
        } else {
            Phase::Search {
                lo,
                hi: Some(index),
                jump,
            }
        };
        Ok((false, Some(self.next_search())))
    }

    fn after_down(
        &mut self,
        offset: u64,
        page: &PageSeen,
        pagination: Pagination,
        top: bool,
        check_above: bool,
        out: &mut Vec<Suspicion>,
    ) -> Plan {
        let total = pagination.total;
        let stride = self.stride;
        if self.filter == Filter::Exact && page.items < stride {
            let short_of_total = offset.saturating_add(page.items) < total;
            // The top page is the last one unless a trusted total says more
            // follow; below the top every page must be full, unless users
            // went away (the total then says so).
            let not_last = if top {
                self.trust_total && short_of_total
            } else {
                !self.trust_total || short_of_total
            };
            if not_last && page.items > 0 {
                return self.restart(offset, page.items, pagination, out);
            }
            if not_last && top {
                self.raise(out, Suspicion::EmptyTopPage { offset, total });
                self.trust_total = false;
                return Ok((false, Some(self.search(0, Some(offset / stride)))));
            }
            if not_last {
                self.raise(out, Suspicion::EmptyPage { offset, total });
            }
        }
        // (An empty page never shows more above: `more_above` is false.)
        if top && check_above && self.more_above(offset, page, pagination) {
            return Ok((false, Some(self.search(offset / stride, None))));
        }
        self.phase = Phase::Down {
            top: false,
            check_above: false,
        };
        if offset == 0 {
            return Ok((true, None));
        }
        Ok((true, Some(self.request(offset.saturating_sub(stride)))))
    }

    /// Whether the page believed last may have users above it: it holds
    /// more than `total` accounts for, or `next` is set. A `next` is only
    /// evidence when the page holds no more than its limit: otherwise it
    /// points (at offset + limit) inside this very page. A short page with
    /// `next` counts too (its users may be pending, filtered out of
    /// `ready`): the walk never ends while the hub says more follows.
    fn more_above(&self, offset: u64, page: &PageSeen, pagination: Pagination) -> bool {
        let next_beyond = pagination.has_next && page.items <= pagination.limit;
        page.items > pagination.total.saturating_sub(offset) || next_beyond
    }

    /// The hub pages by `items`, fewer than its limit: start over from the
    /// top with that page size, once.
    fn restart(
        &mut self,
        offset: u64,
        items: u64,
        pagination: Pagination,
        out: &mut Vec<Suspicion>,
    ) -> Plan {
        if self.restarted {
            return Err(WalkError::LimitInconsistent {
                offset,
                limit: pagination.limit,
                items,
                step: self.stride,
            });
        }
        self.raise(
            out,
            Suspicion::LimitTooLarge {
                offset,
                limit: pagination.limit,
                items,
                total: pagination.total,
            },
        );
        self.restarted = true;
        self.stride = items;
        Ok((false, Some(self.down_from_top(pagination.total))))
    }

    /// The first request of a way down from the top: the last page by a
    /// trusted `total`, or a search for it.
    fn down_from_top(&mut self, total: u64) -> PageRequest {
        if self.trust_total {
            self.phase = Phase::Down {
                top: true,
                check_above: true,
            };
            self.request(last_offset(total, self.stride))
        } else {
            self.search(0, None)
        }
    }

    /// Starts a search for the last page with users, knowing page `lo` has
    /// users (or is page 0) and page `hi`, if known, has none.
    fn search(&mut self, lo: u64, hi: Option<u64>) -> PageRequest {
        self.phase = Phase::Search { lo, hi, jump: 1 };
        self.next_search()
    }

    /// The next page of the search, or the way down from the page found.
    fn next_search(&mut self) -> PageRequest {
        let Phase::Search { lo, hi, jump } = self.phase else {
            unreachable!("next_search outside a search");
        };
        let index = match hi {
            None => lo.saturating_add(jump).min(self.beyond_cap()),
            Some(hi) if hi.saturating_sub(lo) > 1 => lo + (hi - lo) / 2,
            Some(_) => {
                self.phase = Phase::Down {
                    top: true,
                    check_above: false,
                };
                lo
            }
        };
        self.request(index * self.stride)
    }

    /// The first page number holding only users past the cap.
    fn beyond_cap(&self) -> u64 {
        (self.cap - 1) / self.stride + 1
    }

    fn request(&self, offset: u64) -> PageRequest {
        PageRequest {
            offset,
            limit: Some(self.stride),
        }
    }

    /// Records a suspicion unless one of its kind was raised in this walk
    /// already: one line per kind keeps a lying hub from flooding the log.
    fn raise(&mut self, out: &mut Vec<Suspicion>, suspicion: Suspicion) {
        let kind = discriminant(&suspicion);
        if !self.raised.contains(&kind) {
            self.raised.push(kind);
            out.push(suspicion);
        }
    }
}

/// The offset of the last page of a list of `total` users.
fn last_offset(total: u64, limit: u64) -> u64 {
    total.saturating_sub(1) / limit * limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A hub in memory that pages like JupyterHub, with knobs for each lie.
    struct Hub {
        /// Every user in list order, with whether the listing shows them
        /// (`false`: pending, filtered out after offset/limit).
        users: Vec<(String, bool)>,
        default_limit: u64,
        max_limit: u64,
        lies: Lies,
        calls: usize,
    }

    #[derive(Clone, Default)]
    struct Lies {
        /// The total sent (from the first answer on).
        total: Option<u64>,
        /// The total sent from the second answer on.
        later_total: Option<u64>,
        /// The limit sent, whatever the hub pages by.
        limit: Option<u64>,
        /// How many users it really pages by, whatever the limit.
        serves: Option<u64>,
        /// From answer number `.0` (0-based) on, it pages by `.1`.
        serves_later: Option<(usize, u64)>,
        /// `next` is set on every page.
        next_always: bool,
        /// `next` is what an honest hub sends whatever the other lies:
        /// set when more users follow the users it really paged over, at
        /// the offset where they start.
        honest_next: bool,
        /// With `honest_next`: `next` carries no offset.
        next_without_offset: bool,
        /// Every page starts at 0, whatever was asked.
        ignore_offset: bool,
        /// The offset sent back, whatever was asked.
        echo_offset: Option<u64>,
        /// From answer number `.0` on, a plain list.
        plain_from: Option<usize>,
    }

    impl Hub {
        fn new(users: usize, default_limit: u64) -> Self {
            Hub {
                users: (0..users).map(|i| (format!("u{i:03}"), true)).collect(),
                default_limit,
                max_limit: 200,
                lies: Lies::default(),
                calls: 0,
            }
        }

        fn lying(mut self, lies: Lies) -> Self {
            self.lies = lies;
            self
        }

        /// Hides (marks pending) the users whose index satisfies `hidden`.
        fn pending(mut self, hidden: impl Fn(usize) -> bool) -> Self {
            for (i, user) in self.users.iter_mut().enumerate() {
                user.1 = !hidden(i);
            }
            self
        }

        fn shown(&self) -> Vec<String> {
            let shown = self.users.iter().filter(|(_, shown)| *shown);
            shown.map(|(name, _)| name.clone()).collect()
        }

        fn answer(&mut self, request: PageRequest) -> (PageSeen, Vec<String>) {
            let call = self.calls;
            self.calls += 1;
            let lies = self.lies.clone();
            if lies.plain_from.is_some_and(|from| call >= from) {
                let names = self.shown();
                let seen = PageSeen {
                    pagination: None,
                    items: names.len() as u64,
                    first: names.first().cloned(),
                    last: names.last().cloned(),
                };
                return (seen, names);
            }
            let limit = request
                .limit
                .unwrap_or(self.default_limit)
                .min(self.max_limit)
                .max(1);
            let mut serves = lies.serves.unwrap_or(limit);
            if let Some((from, later)) = lies.serves_later {
                if call >= from {
                    serves = later;
                }
            }
            let start = if lies.ignore_offset {
                0
            } else {
                request.offset
            };
            let names: Vec<String> = self
                .users
                .iter()
                .skip(usize::try_from(start).unwrap_or(usize::MAX))
                .take(serves as usize)
                .filter(|(_, shown)| *shown)
                .map(|(name, _)| name.clone())
                .collect();
            let real_total = self.users.len() as u64;
            let total = match call {
                0 => lies.total,
                _ => lies.later_total.or(lies.total),
            }
            .unwrap_or(real_total);
            let limit = lies.limit.unwrap_or(limit);
            // As JupyterHub does, from its own figures (the lies included,
            // unless `honest_next`).
            let (step, counted) = if lies.honest_next {
                (serves, real_total)
            } else {
                (limit, total)
            };
            let has_next = lies.next_always || request.offset.saturating_add(step) < counted;
            let pagination = Pagination {
                offset: lies.echo_offset.unwrap_or(request.offset),
                limit,
                total,
                has_next,
                next_offset: has_next
                    .then(|| request.offset.saturating_add(step))
                    .filter(|_| !lies.next_without_offset),
            };
            let seen = PageSeen {
                pagination: Some(pagination),
                items: names.len() as u64,
                first: names.first().cloned(),
                last: names.last().cloned(),
            };
            (seen, names)
        }

        fn cull(&mut self, names: &[String]) {
            self.users.retain(|(name, _)| !names.contains(name));
        }
    }

    /// What a walk did, driven to its end.
    #[derive(Debug)]
    struct Run {
        requested: Vec<PageRequest>,
        acted: Vec<u64>,
        acted_users: Vec<String>,
        suspicions: Vec<Suspicion>,
        error: Option<WalkError>,
        pages_requested: u64,
    }

    impl Run {
        fn offsets(&self) -> Vec<u64> {
            self.requested
                .iter()
                .map(|request| request.offset)
                .collect()
        }

        /// Each of `users` acted on exactly once, and no one else.
        fn assert_each_once(&self, users: &[String]) {
            let mut acted = self.acted_users.clone();
            acted.sort();
            let mut expected = users.to_vec();
            expected.sort();
            assert_eq!(acted, expected, "{self:#?}");
        }

        /// Each of `users` acted on at least once.
        fn assert_none_skipped(&self, users: &[String]) {
            let missed: Vec<_> = users
                .iter()
                .filter(|user| !self.acted_users.contains(user))
                .collect();
            assert!(missed.is_empty(), "skipped {missed:?}: {self:#?}");
        }
    }

    /// Drives `walk` to its end over `hub` as the Lister does: the next page
    /// is fetched before the current one is acted on. With `cull`, acting
    /// removes the page's users from the hub, shifting later offsets.
    fn drive(hub: &mut Hub, mut walk: PageWalk, cull: bool) -> Run {
        let mut run = Run {
            requested: vec![walk.first()],
            acted: Vec::new(),
            acted_users: Vec::new(),
            suspicions: Vec::new(),
            error: None,
            pages_requested: 0,
        };
        let mut request = walk.first();
        let mut answer = hub.answer(request);
        loop {
            assert!(run.requested.len() < 100_000, "runaway walk");
            let (seen, names) = answer;
            let step = match walk.seen(request, &seen) {
                Ok(step) => step,
                Err(err) => {
                    run.error = Some(err);
                    break;
                }
            };
            run.suspicions.extend(step.suspicions);
            let prefetched = step.next.map(|next| {
                run.requested.push(next);
                (next, hub.answer(next))
            });
            if step.act {
                run.acted.push(request.offset);
                if cull {
                    hub.cull(&names);
                }
                run.acted_users.extend(names);
            }
            match prefetched {
                Some((next, fetched)) => (request, answer) = (next, fetched),
                None => break,
            }
        }
        run.pages_requested = walk.pages_requested();
        run
    }

    fn walk(hub: &mut Hub, filter: Filter, page_size: Option<u64>) -> Run {
        drive(hub, PageWalk::new(filter, page_size), false)
    }

    fn kinds(run: &Run) -> Vec<Discriminant<Suspicion>> {
        run.suspicions.iter().map(discriminant).collect()
    }

    const FILTERS: [Filter; 2] = [Filter::PostFiltered, Filter::Exact];

    #[test]
    fn backward_walk_probes_then_acts_on_every_page_from_the_last() {
        for filter in FILTERS {
            let mut hub = Hub::new(30, 50);
            let users = hub.shown();
            let run = walk(&mut hub, filter, Some(5));
            assert_eq!(run.offsets(), [0, 25, 20, 15, 10, 5, 0]);
            assert_eq!(run.acted, [25, 20, 15, 10, 5, 0]);
            assert_eq!(run.requested[0].limit, Some(5));
            assert!(run.requested[1..].iter().all(|r| r.limit == Some(5)));
            assert!(run.suspicions.is_empty() && run.error.is_none());
            assert_eq!(run.pages_requested, 7);
            run.assert_each_once(&users);
        }
    }

    #[test]
    fn later_requests_name_the_hubs_page_size() {
        let mut hub = Hub::new(12, 5);
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(
            run.requested[0],
            PageRequest {
                offset: 0,
                limit: None
            }
        );
        assert_eq!(
            &run.requested[1..],
            &[10, 5, 0].map(|offset| PageRequest {
                offset,
                limit: Some(5)
            })
        );
        // A page size above the hub's maximum: the hub's cap is what is stepped by.
        let mut hub = Hub::new(12, 50);
        hub.max_limit = 4;
        let run = walk(&mut hub, Filter::Exact, Some(100));
        assert_eq!(run.offsets(), [0, 8, 4, 0]);
        assert!(run.suspicions.is_empty());
    }

    #[test]
    fn single_page_is_acted_on_at_once() {
        for (users, filter) in [
            (4, Filter::Exact),
            (5, Filter::Exact),
            (0, Filter::Exact),
            (0, Filter::PostFiltered),
        ] {
            let mut hub = Hub::new(users, 5);
            let shown = hub.shown();
            let run = walk(&mut hub, filter, None);
            assert_eq!(run.offsets(), [0]);
            assert_eq!(run.acted, [0]);
            assert!(run.suspicions.is_empty());
            run.assert_each_once(&shown);
        }
    }

    #[test]
    fn plain_list_is_acted_on_and_ends_the_walk() {
        let mut hub = Hub::new(300, 50).lying(Lies {
            plain_from: Some(0),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, Some(5));
        assert_eq!(run.offsets(), [0]);
        assert_eq!(run.acted, [0]);
        run.assert_each_once(&users);
    }

    #[test]
    fn plain_list_mid_walk_is_an_error() {
        let mut hub = Hub::new(30, 5).lying(Lies {
            plain_from: Some(2),
            ..Lies::default()
        });
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(run.error, Some(WalkError::NotPaged { offset: 20 }));
        assert_eq!(run.acted, [25]);
    }

    #[test]
    fn short_and_empty_ready_pages_do_not_end_the_walk() {
        // Users 10..20 are pending: pages 10 and 15 are empty, others short.
        let mut hub = Hub::new(32, 5).pending(|i| (10..20).contains(&i) || i % 3 == 0);
        let shown = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert_eq!(run.offsets(), [0, 30, 25, 20, 15, 10, 5, 0]);
        assert_eq!(run.acted, [30, 25, 20, 15, 10, 5, 0]);
        assert!(run.suspicions.is_empty() && run.error.is_none());
        run.assert_each_once(&shown);
    }

    #[test]
    fn empty_top_ready_page_walks_on_down_without_suspicion() {
        let mut hub = Hub::new(28, 5).pending(|i| i >= 20);
        let shown = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert_eq!(run.offsets(), [0, 25, 20, 15, 10, 5, 0]);
        assert!(run.suspicions.is_empty());
        run.assert_each_once(&shown);
        // The probe itself empty: still walked.
        let mut hub = Hub::new(28, 5).pending(|i| i < 10);
        let shown = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert_eq!(run.acted, [25, 20, 15, 10, 5, 0]);
        assert!(run.suspicions.is_empty());
        run.assert_each_once(&shown);
    }

    #[test]
    fn absurd_total_is_not_planned_from_but_searched() {
        for filter in FILTERS {
            let mut hub = Hub::new(12, 5).lying(Lies {
                total: Some(u64::MAX),
                ..Lies::default()
            });
            let users = hub.shown();
            let run = walk(&mut hub, filter, None);
            assert!(run.requested.len() < 80, "{run:#?}");
            assert_eq!(run.acted, [10, 5, 0]);
            assert_eq!(
                run.suspicions,
                [Suspicion::AbsurdTotal {
                    total: u64::MAX,
                    cap: MAX_PLAUSIBLE_USERS
                }]
            );
            assert!(run.error.is_none());
            run.assert_each_once(&users);
        }
    }

    #[test]
    fn absurd_total_costs_requests_logarithmic_in_the_cap() {
        for (users, limit) in [(0, 5), (1, 1), (5, 5), (1000, 7), (4096, 1), (9999, 200)] {
            for filter in FILTERS {
                let mut hub = Hub::new(users, limit).lying(Lies {
                    total: Some(MAX_PLAUSIBLE_USERS + 1),
                    ..Lies::default()
                });
                let shown = hub.shown();
                let run = walk(&mut hub, filter, None);
                let pages = (users as u64).div_ceil(limit).max(1);
                let log = u64::from((MAX_PLAUSIBLE_USERS / limit).ilog2()) + 1;
                assert!(
                    run.requested.len() as u64 <= 2 + pages + 2 * log,
                    "{users} {limit}: {}",
                    run.requested.len()
                );
                assert_eq!(run.acted.len() as u64, pages);
                run.assert_each_once(&shown);
            }
        }
    }

    #[test]
    fn empty_top_page_under_exact_searches_for_the_real_top() {
        let mut hub = Hub::new(12, 5).lying(Lies {
            total: Some(50),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(
            run.suspicions,
            [Suspicion::EmptyTopPage {
                offset: 45,
                total: 50
            }]
        );
        // Bisecting pages 0..9, then down from page 2.
        assert_eq!(run.offsets(), [0, 45, 20, 10, 15, 10, 5, 0]);
        assert_eq!(run.acted, [10, 5, 0]);
        run.assert_each_once(&users);
    }

    #[test]
    fn empty_top_page_after_users_went_away_is_not_suspicious() {
        // 30 users at the probe, 22 by the time the top page is read.
        let mut hub = Hub::new(30, 5);
        let mut walk = PageWalk::new(Filter::Exact, None);
        let (probe, _) = hub.answer(walk.first());
        let step = walk.seen(walk.first(), &probe).unwrap();
        hub.users.truncate(22);
        let (top, _) = hub.answer(step.next.unwrap());
        let step = walk.seen(step.next.unwrap(), &top).unwrap();
        assert!(step.suspicions.is_empty(), "{:?}", step.suspicions);
        assert_eq!(
            step.next,
            Some(PageRequest {
                offset: 20,
                limit: Some(5)
            })
        );
    }

    #[test]
    fn total_too_small_moves_the_top_up() {
        // Unfiltered: the top page holds more than the total accounts for.
        let mut hub = Hub::new(30, 5).lying(Lies {
            total: Some(12),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(
            run.suspicions,
            [Suspicion::TotalTooSmall {
                total: 12,
                listed: 15
            }]
        );
        assert_eq!(
            run.offsets(),
            [0, 10, 15, 25, 45, 35, 30, 25, 20, 15, 10, 5, 0]
        );
        assert_eq!(run.acted, [25, 20, 15, 10, 5, 0]);
        run.assert_each_once(&users);

        // The probe itself believed the only page.
        let mut hub = Hub::new(12, 5).lying(Lies {
            total: Some(3),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(
            run.suspicions,
            [Suspicion::TotalTooSmall {
                total: 3,
                listed: 5
            }]
        );
        assert_eq!(run.acted, [10, 5, 0]);
        run.assert_each_once(&users);
    }

    #[test]
    fn full_top_page_with_next_looks_above() {
        // `ready`: a full top page with `next` set; users above it.
        let mut hub = Hub::new(30, 5).lying(Lies {
            total: Some(10),
            next_always: true,
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert_eq!(
            run.suspicions,
            [Suspicion::TotalTooSmall {
                total: 10,
                listed: 15
            }]
        );
        assert_eq!(run.acted, [25, 20, 15, 10, 5, 0]);
        run.assert_each_once(&users);

        // `next` set but nobody above: two more requests, no suspicion.
        let mut hub = Hub::new(10, 5).lying(Lies {
            next_always: true,
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert!(run.suspicions.is_empty());
        assert_eq!(run.offsets(), [0, 5, 10, 5, 0]);
        assert_eq!(run.acted, [5, 0]);
        run.assert_each_once(&users);
    }

    #[test]
    fn a_limit_past_the_total_with_next_set_walks_by_where_next_starts() {
        // The hub says its page reaches every user (limit 2^64-1, total 12)
        // yet `next` starts at offset 5: it pages by 5.
        for filter in FILTERS {
            let mut hub = Hub::new(12, 5)
                .pending(|i| filter == Filter::PostFiltered && i % 4 == 1)
                .lying(Lies {
                    limit: Some(u64::MAX),
                    honest_next: true,
                    ..Lies::default()
                });
            let users = hub.shown();
            let run = drive(&mut hub, PageWalk::new(filter, None), true);
            assert!(run.error.is_none(), "{run:#?}");
            assert_eq!(
                run.suspicions,
                [Suspicion::NextBeforeLimit {
                    offset: 0,
                    limit: u64::MAX,
                    total: 12,
                    items: if filter == Filter::Exact { 5 } else { 4 },
                    next: Some(5),
                    step: 5,
                }],
                "{filter:?}"
            );
            assert_eq!(run.offsets(), [0, 10, 5, 0], "{filter:?}");
            run.assert_each_once(&users);
        }
    }

    #[test]
    fn next_set_without_an_offset_past_the_limit_steps_by_the_users_seen() {
        // Nothing says where the next page starts: the walk steps by the
        // users the page held (fewer than the hub paged over when some are
        // pending), reading some twice rather than skipping any.
        let mut hub = Hub::new(12, 5).pending(|i| i == 1).lying(Lies {
            limit: Some(1_000),
            honest_next: true,
            next_without_offset: true,
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert!(run.error.is_none(), "{run:#?}");
        assert!(matches!(
            run.suspicions.as_slice(),
            [Suspicion::NextBeforeLimit {
                items: 4,
                next: None,
                step: 4,
                ..
            }]
        ));
        run.assert_none_skipped(&users);

        // An empty probe shows nothing: JupyterHub's default page size.
        let mut walk = PageWalk::new(Filter::PostFiltered, None);
        let probe = walk.first();
        let mut empty = by_hand(0, u64::MAX, 300, 0, true);
        let step = walk.seen(probe, &empty).unwrap();
        assert_eq!(
            step.next,
            Some(PageRequest {
                offset: 250,
                limit: Some(FALLBACK_PAGE_SIZE)
            })
        );
        // A `next` after the limit, as an honest hub sends it, is no lie.
        let mut walk = PageWalk::new(Filter::PostFiltered, None);
        empty.pagination = Some(Pagination {
            offset: 0,
            limit: 20,
            total: 300,
            has_next: true,
            next_offset: Some(20),
        });
        let step = walk.seen(probe, &empty).unwrap();
        assert!(step.suspicions.is_empty(), "{step:?}");
        assert_eq!(step.next.map(|n| n.offset), Some(280));
    }

    #[test]
    fn next_on_a_short_top_page_looks_above() {
        // `ready`, a total too small, and the page believed last short
        // (pending users filtered out) while `next` says more follows.
        let mut hub = Hub::new(30, 5).pending(|i| i == 6 || i == 7).lying(Lies {
            total: Some(10),
            honest_next: true,
            ..Lies::default()
        });
        let users = hub.shown();
        let run = drive(&mut hub, PageWalk::new(Filter::PostFiltered, None), true);
        assert!(run.error.is_none(), "{run:#?}");
        run.assert_each_once(&users);
    }

    #[test]
    fn the_pages_ahead_are_the_ones_the_walk_then_asks_for() {
        // Driven step by step: at every step, what `ahead` predicted is
        // what the walk asks for next, as long as the hub is honest.
        for filter in FILTERS {
            let mut hub = Hub::new(47, 5).pending(|i| filter == Filter::PostFiltered && i % 3 == 0);
            let mut walk = PageWalk::new(filter, None);
            let mut request = walk.first();
            assert!(
                walk.ahead(3).is_empty(),
                "nothing predicted before the probe"
            );
            let mut predicted: Vec<PageRequest> = Vec::new();
            let mut asked = vec![request];
            loop {
                let (seen, _) = hub.answer(request);
                let step = walk.seen(request, &seen).unwrap();
                let Some(next) = step.next else { break };
                if let Some(expected) = predicted.first() {
                    assert_eq!(*expected, next, "{filter:?} after {asked:?}");
                    predicted.remove(0);
                }
                asked.push(next);
                predicted = walk.ahead(3);
                request = next;
            }
            assert_eq!(
                asked.iter().map(|r| r.offset).collect::<Vec<_>>(),
                [0, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0]
            );
        }
        // Near the bottom the prediction stops at offset 0.
        let mut walk = PageWalk::new(Filter::Exact, Some(5));
        let probe = walk.first();
        let top = walk
            .seen(probe, &by_hand(0, 5, 12, 5, true))
            .unwrap()
            .next
            .unwrap();
        assert_eq!(top.offset, 10);
        assert_eq!(
            walk.ahead(4),
            [
                PageRequest {
                    offset: 5,
                    limit: Some(5)
                },
                PageRequest {
                    offset: 0,
                    limit: Some(5)
                }
            ]
        );
    }

    #[test]
    fn an_unreadable_page_is_skipped_on_the_way_down_and_ends_the_walk_before() {
        let mut walk = PageWalk::new(Filter::Exact, Some(5));
        let probe = walk.first();
        let step = walk.seen(probe, &by_hand(0, 5, 20, 5, true)).unwrap();
        let top = step.next.expect("the walk goes down from the top");
        assert_eq!(top.offset, 15);
        // The top page cannot be read: on to the one below it.
        let below = walk.unreadable(top).expect("the walk goes on");
        assert_eq!(
            below,
            PageRequest {
                offset: 10,
                limit: Some(5)
            }
        );
        let step = walk.seen(below, &by_hand(10, 5, 20, 5, true)).unwrap();
        assert!(step.act);
        let next = step.next.expect("on down");
        assert_eq!(next.offset, 5);
        let last = walk.unreadable(next).expect("on down");
        assert_eq!(last.offset, 0);
        assert_eq!(walk.unreadable(last), None, "nothing below offset 0");
        assert_eq!(walk.pages_requested(), 5);

        // Before the way down there is nothing to plan from.
        let mut walk = PageWalk::new(Filter::PostFiltered, None);
        assert_eq!(walk.unreadable(walk.first()), None);
        let mut walk = PageWalk::new(Filter::PostFiltered, Some(5));
        let step = walk
            .seen(walk.first(), &by_hand(0, 5, u64::MAX, 5, true))
            .unwrap();
        let search = step.next.expect("a search for the last page");
        assert_eq!(walk.unreadable(search), None);
    }

    #[test]
    fn search_upwards_stops_at_the_cap() {
        let mut hub = Hub::new(300, 5).lying(Lies {
            total: Some(12),
            ..Lies::default()
        });
        let mut walk = PageWalk::new(Filter::Exact, None);
        walk.cap = 100;
        let run = drive(&mut hub, walk, false);
        assert_eq!(
            run.error,
            Some(WalkError::TooManyUsers {
                offset: 100,
                cap: 100
            })
        );
        assert!(run.acted.is_empty());
        assert!(run.requested.len() < 12, "{run:#?}");
    }

    #[test]
    fn total_changing_wildly_is_reported_once_with_both_figures() {
        let mut hub = Hub::new(32, 5).lying(Lies {
            total: Some(32),
            later_total: Some(1000),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert_eq!(
            run.suspicions,
            [Suspicion::TotalChanged {
                before: 32,
                after: 1000
            }]
        );
        assert_eq!(run.acted, [30, 25, 20, 15, 10, 5, 0]);
        run.assert_each_once(&users);
    }

    #[test]
    fn culling_as_the_walk_goes_is_no_wild_change() {
        for filter in FILTERS {
            let mut hub = Hub::new(60, 5);
            let users = hub.shown();
            let run = drive(&mut hub, PageWalk::new(filter, None), true);
            assert!(run.suspicions.is_empty(), "{run:#?}");
            run.assert_each_once(&users);
            assert!(hub.users.is_empty());
        }
    }

    #[test]
    fn more_items_than_limit_steps_by_the_observed_page_size() {
        for filter in FILTERS {
            let mut hub = Hub::new(30, 5).lying(Lies {
                limit: Some(2),
                ..Lies::default()
            });
            let users = hub.shown();
            let run = walk(&mut hub, filter, None);
            assert_eq!(
                run.suspicions,
                [Suspicion::MoreItemsThanLimit {
                    offset: 0,
                    limit: 2,
                    items: 5,
                    step: 5
                }]
            );
            assert_eq!(run.offsets(), [0, 25, 20, 15, 10, 5, 0]);
            assert!(run.requested[1..].iter().all(|r| r.limit == Some(5)));
            run.assert_each_once(&users);
        }
    }

    #[test]
    fn limit_too_large_restarts_once_with_the_observed_page_size() {
        let mut hub = Hub::new(30, 50).lying(Lies {
            limit: Some(10),
            serves: Some(4),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::Exact, Some(10));
        assert_eq!(
            run.suspicions,
            [Suspicion::LimitTooLarge {
                offset: 0,
                limit: 10,
                items: 4,
                total: 30
            }]
        );
        assert_eq!(run.offsets(), [0, 28, 24, 20, 16, 12, 8, 4, 0]);
        assert!(run.requested[1..].iter().all(|r| r.limit == Some(4)));
        run.assert_each_once(&users);

        // Seen on the top page: that page is not acted on, the walk starts over.
        let mut hub = Hub::new(30, 5).lying(Lies {
            serves_later: Some((1, 3)),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(
            run.suspicions,
            [Suspicion::LimitTooLarge {
                offset: 25,
                limit: 5,
                items: 3,
                total: 30
            }]
        );
        assert_eq!(run.offsets(), [0, 25, 27, 24, 21, 18, 15, 12, 9, 6, 3, 0]);
        run.assert_each_once(&users);
    }

    #[test]
    fn limit_inconsistent_twice_ends_the_walk() {
        let mut hub = Hub::new(30, 50).lying(Lies {
            limit: Some(10),
            serves: Some(4),
            serves_later: Some((2, 3)),
            ..Lies::default()
        });
        let run = walk(&mut hub, Filter::Exact, Some(10));
        assert_eq!(
            run.error,
            Some(WalkError::LimitInconsistent {
                offset: 24,
                limit: 10,
                items: 3,
                step: 4
            })
        );
        assert_eq!(run.acted, [28]);
    }

    #[test]
    fn short_pages_are_normal_when_ready_is_post_filtered() {
        // The same lying hub, but `ready`: short pages cannot be told from
        // pending users, so nothing is raised.
        let mut hub = Hub::new(10, 5).pending(|i| i % 2 == 0);
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert!(run.suspicions.is_empty());
        assert_eq!(run.acted, [5, 0]);
    }

    #[test]
    fn limit_lie_with_absurd_total_skips_no_one() {
        let mut hub = Hub::new(12, 50).lying(Lies {
            total: Some(u64::MAX),
            limit: Some(10),
            serves: Some(4),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::Exact, Some(10));
        assert!(run.error.is_none(), "{run:#?}");
        assert!(
            kinds(&run).contains(&discriminant(&Suspicion::LimitTooLarge {
                offset: 0,
                limit: 0,
                items: 0,
                total: 0
            }))
        );
        run.assert_none_skipped(&users);
        assert!(run.requested.len() < 40);
    }

    #[test]
    fn repeated_pages_end_the_walk() {
        let mut hub = Hub::new(30, 5).lying(Lies {
            ignore_offset: true,
            ..Lies::default()
        });
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(
            run.error,
            Some(WalkError::RepeatedPage {
                offset: 25,
                previous: 0,
                first: "u000".into(),
                last: "u004".into()
            })
        );
        assert_eq!(run.offsets(), [0, 25]);
        assert!(run.acted.is_empty());
    }

    #[test]
    fn offset_not_echoed_ends_the_walk() {
        let mut hub = Hub::new(30, 5).lying(Lies {
            echo_offset: Some(0),
            ..Lies::default()
        });
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert_eq!(
            run.error,
            Some(WalkError::OffsetNotEchoed {
                requested: 25,
                answered: 0
            })
        );
        assert!(run.acted.is_empty());
    }

    #[test]
    fn limit_zero_is_taken_as_one() {
        let mut hub = Hub::new(4, 1).lying(Lies {
            limit: Some(0),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(run.suspicions, [Suspicion::ZeroLimit { offset: 0 }]);
        assert_eq!(run.offsets(), [0, 3, 2, 1, 0]);
        run.assert_each_once(&users);

        // Zero while sending five: stepped by five.
        let mut hub = Hub::new(12, 5).lying(Lies {
            limit: Some(0),
            ..Lies::default()
        });
        let users = hub.shown();
        let run = walk(&mut hub, Filter::PostFiltered, None);
        assert_eq!(run.suspicions.len(), 2, "{run:#?}");
        assert_eq!(run.offsets(), [0, 10, 5, 0]);
        run.assert_each_once(&users);
    }

    #[test]
    fn empty_first_page_under_exact_ends_the_walk() {
        let mut hub = Hub::new(0, 5).lying(Lies {
            total: Some(30),
            ..Lies::default()
        });
        let run = walk(&mut hub, Filter::Exact, None);
        assert_eq!(
            run.suspicions,
            [Suspicion::EmptyPage {
                offset: 0,
                total: 30
            }]
        );
        assert_eq!(run.offsets(), [0]);
    }

    /// Every honest hub, many shapes: each user acted on exactly once, and
    /// one request per page plus the probe (or one when it fits a page).
    #[test]
    fn honest_hubs_are_walked_in_pages_plus_one_requests() {
        type Pending = fn(usize) -> bool;
        let patterns: [(&str, Pending); 3] = [
            ("none pending", |_| false),
            ("every third pending", |i| i % 3 == 1),
            ("a block pending", |i| (4..13).contains(&i)),
        ];
        for users in 0..=23usize {
            for limit in 1..=7u64 {
                for filter in FILTERS {
                    for (name, hidden) in patterns {
                        if filter == Filter::Exact && name != "none pending" {
                            continue;
                        }
                        for cull in [false, true] {
                            for (page_size, default_limit, max_limit) in [
                                (Some(limit), 50, 200),
                                (None, limit, 200),
                                (Some(limit + 3), 50, limit),
                            ] {
                                let mut hub = Hub::new(users, default_limit).pending(hidden);
                                hub.max_limit = max_limit;
                                let shown = hub.shown();
                                let run = drive(&mut hub, PageWalk::new(filter, page_size), cull);
                                let case = format!("{users} users, limit {limit}, {filter:?}, {name}, cull {cull}, page size {page_size:?}");
                                assert!(
                                    run.error.is_none() && run.suspicions.is_empty(),
                                    "{case}: {run:#?}"
                                );
                                run.assert_each_once(&shown);
                                let pages = (users as u64).div_ceil(limit);
                                let expected = if pages <= 1 { 1 } else { pages + 1 };
                                assert_eq!(
                                    run.requested.len() as u64,
                                    expected,
                                    "{case}: {:?}",
                                    run.offsets()
                                );
                                assert_eq!(run.pages_requested, expected, "{case}");
                                assert_eq!(run.acted.len() as u64, pages.max(1), "{case}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn page_seen_counts_unreadable_records() {
        let list = UserList::from_json(
            br#"{"items": [
                {"name": "a", "admin": false},
                {"name": "b", "admin": false, "last_activity": "whenever"},
                {"name": "c", "admin": false}
            ], "_pagination": {"offset": 0, "limit": 3, "total": 9, "next": {"offset": 3}}}"#,
        )
        .unwrap();
        let seen = PageSeen::of(&list);
        assert_eq!(seen.items, 3);
        assert_eq!(
            (seen.first.as_deref(), seen.last.as_deref()),
            (Some("a"), Some("c"))
        );
        assert!(seen.pagination.unwrap().has_next);
    }

    #[test]
    fn every_suspicion_and_error_is_one_line_with_its_figures() {
        let lines: BTreeMap<String, Vec<u64>> = [
            (
                Suspicion::AbsurdTotal { total: 18, cap: 17 }.to_string(),
                vec![18, 17],
            ),
            (
                Suspicion::TotalTooSmall {
                    total: 12,
                    listed: 15,
                }
                .to_string(),
                vec![12, 15],
            ),
            (
                Suspicion::TotalChanged {
                    before: 30,
                    after: 1000,
                }
                .to_string(),
                vec![30, 1000],
            ),
            (
                Suspicion::EmptyTopPage {
                    offset: 45,
                    total: 50,
                }
                .to_string(),
                vec![45, 50],
            ),
            (
                Suspicion::EmptyPage {
                    offset: 40,
                    total: 50,
                }
                .to_string(),
                vec![40, 50],
            ),
            (
                Suspicion::MoreItemsThanLimit {
                    offset: 7,
                    limit: 2,
                    items: 5,
                    step: 6,
                }
                .to_string(),
                vec![7, 2, 5, 6],
            ),
            (
                Suspicion::LimitTooLarge {
                    offset: 8,
                    limit: 10,
                    items: 4,
                    total: 30,
                }
                .to_string(),
                vec![8, 10, 4, 30],
            ),
            (Suspicion::ZeroLimit { offset: 9 }.to_string(), vec![9]),
            (
                Suspicion::NextBeforeLimit {
                    offset: 11,
                    limit: 12_345,
                    total: 13,
                    items: 5,
                    next: Some(16),
                    step: 6,
                }
                .to_string(),
                vec![11, 12_345, 13, 5, 16, 6],
            ),
            (
                WalkError::OffsetNotEchoed {
                    requested: 25,
                    answered: 3,
                }
                .to_string(),
                vec![25, 3],
            ),
            (
                WalkError::RepeatedPage {
                    offset: 25,
                    previous: 3,
                    first: "x".into(),
                    last: "y".into(),
                }
                .to_string(),
                vec![25, 3],
            ),
            (WalkError::NotPaged { offset: 20 }.to_string(), vec![20]),
            (
                WalkError::LimitInconsistent {
                    offset: 24,
                    limit: 10,
                    items: 3,
                    step: 4,
                }
                .to_string(),
                vec![24, 10, 3, 4],
            ),
            (
                WalkError::TooManyUsers {
                    offset: 100,
                    cap: 99,
                }
                .to_string(),
                vec![100, 99],
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(lines.len(), 14);
        for (line, figures) in lines {
            assert!(!line.contains('\n'), "{line}");
            for figure in figures {
                assert!(
                    line.contains(&figure.to_string()),
                    "{figure} missing from: {line}"
                );
            }
        }
    }

    /// A page fed to the planner by hand, for boundaries the simulated hub
    /// does not reach.
    fn by_hand(offset: u64, limit: u64, total: u64, items: u64, has_next: bool) -> PageSeen {
        PageSeen {
            pagination: Some(Pagination {
                offset,
                limit,
                total,
                has_next,
                next_offset: None,
            }),
            items,
            first: (items > 0).then(|| format!("first-{offset}")),
            last: (items > 0).then(|| format!("last-{offset}")),
        }
    }

    fn has(step: &Step, kind: fn(&Suspicion) -> bool) -> bool {
        step.suspicions.iter().any(kind)
    }

    #[test]
    fn a_total_at_the_plausible_cap_is_believed_and_one_more_is_not() {
        for (total, absurd) in [
            (MAX_PLAUSIBLE_USERS, false),
            (MAX_PLAUSIBLE_USERS + 1, true),
        ] {
            let mut walk = PageWalk::new(Filter::PostFiltered, Some(5));
            let probe = walk.first();
            let step = walk.seen(probe, &by_hand(0, 5, total, 5, true)).unwrap();
            assert_eq!(
                has(&step, |s| matches!(s, Suspicion::AbsurdTotal { .. })),
                absurd,
                "{total}: {:?}",
                step.suspicions
            );
        }
    }

    #[test]
    fn a_total_changing_by_up_to_half_the_first_is_no_suspicion() {
        // First total 100 in pages of 5: up to 50 users may come or go
        // between two pages (others' logins and deletions); more is wild.
        for (later, wild) in [(70, false), (50, false), (49, true)] {
            let mut walk = PageWalk::new(Filter::PostFiltered, Some(5));
            let probe = walk.first();
            let step = walk.seen(probe, &by_hand(0, 5, 100, 5, true)).unwrap();
            let top = step.next.unwrap();
            assert_eq!(top.offset, 95);
            let step = walk.seen(top, &by_hand(95, 5, later, 0, false)).unwrap();
            assert_eq!(
                has(&step, |s| matches!(s, Suspicion::TotalChanged { .. })),
                wild,
                "total 100 then {later}: {:?}",
                step.suspicions
            );
        }
    }

    #[test]
    fn a_short_page_below_the_top_is_normal_when_the_total_says_users_went_away() {
        // Exact listing of 12 in pages of 5: the top page (10) holds 2; by
        // the time the page at 5 is read, 4 users were deleted elsewhere and
        // the hub says 8: that page holds 3, and it is the last one.
        let mut walk = PageWalk::new(Filter::Exact, Some(5));
        let probe = walk.first();
        let step = walk.seen(probe, &by_hand(0, 5, 12, 5, true)).unwrap();
        let top = step.next.unwrap();
        assert_eq!(top.offset, 10);
        let step = walk.seen(top, &by_hand(10, 5, 12, 2, false)).unwrap();
        let below = step.next.unwrap();
        assert_eq!(below.offset, 5);
        let step = walk.seen(below, &by_hand(5, 5, 8, 3, false)).unwrap();
        assert!(step.act, "{step:?}");
        assert!(step.suspicions.is_empty(), "{:?}", step.suspicions);
        assert_eq!(step.next.map(|n| n.offset), Some(0));
    }
}
