//! Walks over hubs that lie: about the total, the limit, `next`, the offset.

use super::sim::*;
use crate::hub::Pagination;
use crate::pipeline::walk::*;
use std::mem::discriminant;

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
