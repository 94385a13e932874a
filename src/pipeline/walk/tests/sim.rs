//! A hub in memory that pages like JupyterHub and lies on request, and a
//! driver that walks it as the Lister does.

use crate::hub::Pagination;
use crate::pipeline::walk::*;
use std::mem::{discriminant, Discriminant};

/// A hub in memory that pages like JupyterHub, with knobs for each lie.
pub(super) struct Hub {
    /// Every user in list order, with whether the listing shows them
    /// (`false`: pending, filtered out after offset/limit).
    pub(super) users: Vec<(String, bool)>,
    pub(super) default_limit: u64,
    pub(super) max_limit: u64,
    pub(super) lies: Lies,
    pub(super) calls: usize,
}

#[derive(Clone, Default)]
pub(super) struct Lies {
    /// The total sent (from the first answer on).
    pub(super) total: Option<u64>,
    /// The total sent from the second answer on.
    pub(super) later_total: Option<u64>,
    /// The limit sent, whatever the hub pages by.
    pub(super) limit: Option<u64>,
    /// How many users it really pages by, whatever the limit.
    pub(super) serves: Option<u64>,
    /// From answer number `.0` (0-based) on, it pages by `.1`.
    pub(super) serves_later: Option<(usize, u64)>,
    /// `next` is set on every page.
    pub(super) next_always: bool,
    /// `next` is what an honest hub sends whatever the other lies:
    /// set when more users follow the users it really paged over, at
    /// the offset where they start.
    pub(super) honest_next: bool,
    /// With `honest_next`: `next` carries no offset.
    pub(super) next_without_offset: bool,
    /// Every page starts at 0, whatever was asked.
    pub(super) ignore_offset: bool,
    /// The offset sent back, whatever was asked.
    pub(super) echo_offset: Option<u64>,
    /// From answer number `.0` on, a plain list.
    pub(super) plain_from: Option<usize>,
}

impl Hub {
    pub(super) fn new(users: usize, default_limit: u64) -> Self {
        Hub {
            users: (0..users).map(|i| (format!("u{i:03}"), true)).collect(),
            default_limit,
            max_limit: 200,
            lies: Lies::default(),
            calls: 0,
        }
    }

    pub(super) fn lying(mut self, lies: Lies) -> Self {
        self.lies = lies;
        self
    }

    /// Hides (marks pending) the users whose index satisfies `hidden`.
    pub(super) fn pending(mut self, hidden: impl Fn(usize) -> bool) -> Self {
        for (i, user) in self.users.iter_mut().enumerate() {
            user.1 = !hidden(i);
        }
        self
    }

    pub(super) fn shown(&self) -> Vec<String> {
        let shown = self.users.iter().filter(|(_, shown)| *shown);
        shown.map(|(name, _)| name.clone()).collect()
    }

    pub(super) fn answer(&mut self, request: PageRequest) -> (PageSeen, Vec<String>) {
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

    pub(super) fn cull(&mut self, names: &[String]) {
        self.users.retain(|(name, _)| !names.contains(name));
    }
}

/// What a walk did, driven to its end.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) requested: Vec<PageRequest>,
    pub(super) acted: Vec<u64>,
    pub(super) acted_users: Vec<String>,
    pub(super) suspicions: Vec<Suspicion>,
    pub(super) error: Option<WalkError>,
    pub(super) pages_requested: u64,
}

impl Run {
    pub(super) fn offsets(&self) -> Vec<u64> {
        self.requested
            .iter()
            .map(|request| request.offset)
            .collect()
    }

    /// Each of `users` acted on exactly once, and no one else.
    pub(super) fn assert_each_once(&self, users: &[String]) {
        let mut acted = self.acted_users.clone();
        acted.sort();
        let mut expected = users.to_vec();
        expected.sort();
        assert_eq!(acted, expected, "{self:#?}");
    }

    /// Each of `users` acted on at least once.
    pub(super) fn assert_none_skipped(&self, users: &[String]) {
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
pub(super) fn drive(hub: &mut Hub, mut walk: PageWalk, cull: bool) -> Run {
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

pub(super) fn walk(hub: &mut Hub, filter: Filter, page_size: Option<u64>) -> Run {
    drive(hub, PageWalk::new(filter, page_size), false)
}

pub(super) fn kinds(run: &Run) -> Vec<Discriminant<Suspicion>> {
    run.suspicions.iter().map(discriminant).collect()
}

pub(super) const FILTERS: [Filter; 2] = [Filter::PostFiltered, Filter::Exact];

/// A page fed to the planner by hand, for boundaries the simulated hub
/// does not reach.
pub(super) fn by_hand(offset: u64, limit: u64, total: u64, items: u64, has_next: bool) -> PageSeen {
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

pub(super) fn has(step: &Step, kind: fn(&Suspicion) -> bool) -> bool {
    step.suspicions.iter().any(kind)
}
