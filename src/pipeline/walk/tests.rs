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
