//! Erasure in a running server: the store transaction ([`kindred_store::Store::erase_user`]),
//! then everything this process holds about the id, and the writes that would bring it back.
//!
//! Erasing a user also drops their real-time overlay, their cached lists and the recent lists
//! online monitoring remembers for attribution, and rebuilds the snapshot (with the new
//! tombstones) before answering: from then on the user is served as one never seen, and an
//! erased item is never listed. Writes naming an erased id are refused with 400 `erased_id`
//! (feedback, user and item records), so a client cannot bring the id back; the tombstone set
//! they are checked against is refreshed at each erasure here and at each snapshot rebuild, so
//! a server learns of another server's erasure within its watch interval. Contextual bandits
//! forget the user's waiting list and the item's statistics, here and in the store.

use kindred_store::{ErasedKind, ErasureReport, Erasures, Feedback};

use crate::error::{Error, Result};
use crate::monitor::Monitor;
use crate::state::ServingState;

/// The refusal of a write naming an erased id; `index` is the record's place in a batch.
fn refusal(index: Option<usize>, kind: ErasedKind, id: &str) -> Error {
    let at = index.map_or(String::new(), |i| format!("record {i}: "));
    Error::invalid(
        "erased_id",
        format!(
            "{at}{} `{id}` was erased; data naming it is no longer accepted",
            kind.as_str()
        ),
    )
}

/// Refuses a feedback batch naming an erased user or item, naming the first such record.
pub(crate) fn refuse_erased_feedback(erasures: &Erasures, events: &[Feedback]) -> Result<()> {
    if erasures.is_empty() {
        return Ok(());
    }
    for (i, event) in events.iter().enumerate() {
        if erasures.user_erased(&event.user) {
            return Err(refusal(Some(i), ErasedKind::User, &event.user));
        }
        if erasures.item_erased(&event.item) {
            return Err(refusal(Some(i), ErasedKind::Item, &event.item));
        }
    }
    Ok(())
}

/// Refuses records of `kind` whose id was erased; a batch of one is not numbered.
pub(crate) fn refuse_erased_records<'a>(
    erasures: &Erasures,
    kind: ErasedKind,
    ids: impl ExactSizeIterator<Item = &'a str>,
) -> Result<()> {
    if erasures.is_empty() {
        return Ok(());
    }
    let numbered = ids.len() > 1;
    for (i, id) in ids.enumerate() {
        if erasures.erased(kind, id) {
            return Err(refusal(numbered.then_some(i), kind, id));
        }
    }
    Ok(())
}

/// Erases `id` from the store and from this process (see the module doc); answers the rows the
/// store removed.
pub(crate) async fn erase(
    state: &ServingState,
    monitor: &Monitor,
    kind: ErasedKind,
    id: &str,
) -> Result<ErasureReport> {
    // Exposures still queued may name the user: stored first, so the transaction removes them.
    state.flush_exposures().await;
    let report = match kind {
        ErasedKind::User => state.store.erase_user(id).await?,
        ErasedKind::Item => state.store.erase_item(id).await?,
    };
    state.refresh_erasures().await?;
    if kind == ErasedKind::User {
        state.forget_user(id);
        monitor.online.forget_user(id);
        state.bandits.forget_user(id);
    } else {
        state.bandits.forget_item(id);
        // A bandit flush that merged between the store's erasure and the tombstones reaching
        // this process may have carried the item back: scrub once more.
        state.store.scrub_bandit_item(id).await?;
    }
    state.catalog_changed();
    state.rebuild().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erasures() -> Erasures {
        // Built through the public path a server uses: a store's tombstones.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("kindred-erasure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let _ = std::fs::remove_file(&path);
        let erasures = runtime.block_on(async {
            let store = kindred_store::Store::open(path.to_str().unwrap())
                .await
                .unwrap();
            store.erase_user("gone").await.unwrap();
            store.erase_item("i-gone").await.unwrap();
            let erasures = store.erasures().await.unwrap();
            store.close().await.unwrap();
            erasures
        });
        std::fs::remove_dir_all(&dir).unwrap();
        erasures
    }

    fn event(user: &str, item: &str) -> Feedback {
        Feedback {
            user: user.into(),
            item: item.into(),
            event_type: "click".into(),
            value: None,
            timestamp: 0,
            event_id: None,
        }
    }

    #[test]
    fn writes_naming_erased_ids_are_refused_with_the_record_index() {
        let e = erasures();
        refuse_erased_feedback(&e, &[event("u1", "i1")]).unwrap();
        refuse_erased_feedback(&Erasures::default(), &[event("gone", "i1")]).unwrap();
        let err =
            refuse_erased_feedback(&e, &[event("u1", "i1"), event("gone", "i1")]).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { code: "erased_id", message }
                if message.starts_with("record 1: user `gone` was erased")),
            "{err:?}"
        );
        let err = refuse_erased_feedback(&e, &[event("u1", "i-gone")]).unwrap_err();
        assert!(err.to_string().contains("record 0: item `i-gone`"), "{err}");

        refuse_erased_records(&e, ErasedKind::User, ["u1", "i-gone"].into_iter()).unwrap();
        let err =
            refuse_erased_records(&e, ErasedKind::Item, ["i1", "i-gone"].into_iter()).unwrap_err();
        assert!(
            err.to_string().starts_with("record 1: item `i-gone`"),
            "{err}"
        );
        let err = refuse_erased_records(&e, ErasedKind::User, ["gone"].into_iter()).unwrap_err();
        assert!(
            err.to_string().starts_with("user `gone` was erased"),
            "{err}"
        );
    }
}
