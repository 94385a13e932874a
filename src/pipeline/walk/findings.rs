//! What a walk reports: the hub's figures that do not add up
//! ([`Suspicion`], the walk goes on) and those it cannot walk past
//! ([`WalkError`]).

use super::{PageSeen, PageWalk, Previous};
use std::fmt;
use std::mem::discriminant;

/// One thing the hub said that does not add up, with the figures seen. The
/// walk goes on (adapted); the Lister logs it as a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Suspicion {
    /// `total` is beyond [`MAX_PLAUSIBLE_USERS`](super::MAX_PLAUSIBLE_USERS): not planned from.
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
    /// Users are listed beyond [`MAX_PLAUSIBLE_USERS`](super::MAX_PLAUSIBLE_USERS).
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

/// The checks of what the hub said, on every page.
impl PageWalk {
    /// A page equal to the previous one at another offset: `offset` ignored.
    pub(super) fn check_repeat(&mut self, offset: u64, page: &PageSeen) -> Result<(), WalkError> {
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
    pub(super) fn check_total(
        &mut self,
        offset: u64,
        page: &PageSeen,
        total: u64,
        out: &mut Vec<Suspicion>,
    ) {
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

    /// Records a suspicion unless one of its kind was raised in this walk
    /// already: one line per kind keeps a lying hub from flooding the log.
    pub(super) fn raise(&mut self, out: &mut Vec<Suspicion>, suspicion: Suspicion) {
        let kind = discriminant(&suspicion);
        if !self.raised.contains(&kind) {
            self.raised.push(kind);
            out.push(suspicion);
        }
    }
}
