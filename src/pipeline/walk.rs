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

mod findings;
mod page;

pub use findings::{Suspicion, WalkError};
pub use page::{PageRequest, PageSeen, Step};

use crate::hub::Pagination;
use std::mem::Discriminant;

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
}

/// The offset of the last page of a list of `total` users.
fn last_offset(total: u64, limit: u64) -> u64 {
    total.saturating_sub(1) / limit * limit
}

#[cfg(test)]
mod tests;
