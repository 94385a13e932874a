//! What the walk and the Lister exchange: the page to ask for, what was
//! seen of the page answered, and the walk's answer to it.

use super::Suspicion;
use crate::hub::{Pagination, UserList};

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
