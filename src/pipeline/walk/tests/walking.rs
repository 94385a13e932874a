//! Walks over honest hubs: the order, the page sizes, what is acted on.

use super::sim::*;
use crate::hub::UserList;
use crate::pipeline::walk::*;

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
