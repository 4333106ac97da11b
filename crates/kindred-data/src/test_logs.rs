//! Test fixtures of the export round trips: a log exercising every field, and the check that
//! two logs hold the same rows. Shared by the CSV/JSON Lines and the Parquet tests, which live in
//! files that must not depend on each other.

use kindred_core::{Interaction, Interactions, InteractionsBuilder};

/// A log exercising every field: missing ratings and timestamps, custom events, odd ids.
pub fn sample_log() -> Interactions {
    let mut b = InteractionsBuilder::new();
    b.push(Interaction::rating(
        "u1",
        "item, with comma",
        4.5,
        Some(1_700_000_000),
    ));
    b.push(Interaction::rating("u\"2", "i2", 0.1, None));
    let purchase = b.event_type("purchase");
    let custom = b.event_type("wishlist");
    let row = b.push(Interaction::implicit("Zoë", "i2", purchase, Some(-5)));
    b.push_context(row, "device", "mobile");
    let mut heavy = Interaction::implicit("u1", "i3", custom, Some(0));
    heavy.weight = 2.75;
    b.push(heavy);
    b.build()
}

/// Asserts two logs hold the same rows with the same external ids and values.
pub fn assert_same_log(a: &Interactions, b: &Interactions) {
    assert_eq!(a.len(), b.len());
    for row in 0..a.len() {
        assert_eq!(
            a.user_ids().try_external(a.users()[row]),
            b.user_ids().try_external(b.users()[row]),
            "row {row}"
        );
        assert_eq!(
            a.item_ids().try_external(a.items()[row]),
            b.item_ids().try_external(b.items()[row]),
            "row {row}"
        );
        let (ra, rb) = (a.ratings()[row], b.ratings()[row]);
        assert!(
            ra == rb || (ra.is_nan() && rb.is_nan()),
            "row {row}: rating {ra} vs {rb}"
        );
        assert_eq!(a.weights()[row], b.weights()[row], "row {row}");
        assert_eq!(
            a.event_name(a.events()[row]),
            b.event_name(b.events()[row]),
            "row {row}"
        );
        assert_eq!(a.timestamps()[row], b.timestamps()[row], "row {row}");
    }
}
