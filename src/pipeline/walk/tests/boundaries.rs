//! What the walk says of each lie, and the boundaries of its judgements,
//! fed by hand.

use super::sim::*;
use std::collections::BTreeMap;

use crate::pipeline::walk::*;

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
