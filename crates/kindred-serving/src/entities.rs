//! [`EntityService`]: users and items written (within the `[limits]`), read, deleted and
//! erased. Every write schedules a catalog rebuild so new items become servable (as fallbacks)
//! and hidden ones disappear within `catalog_refresh_ms`; a deleted user's real-time state goes
//! with them. Erasure goes further ([`crate::erasure`]): every row naming the id, with a
//! tombstone that refuses later writes naming it. Written items are counted for the feature
//! skew check ([`crate::monitor::skew`]).

use std::sync::Arc;

use kindred_store::{ErasedKind, ErasureReport, Item, User};

use crate::erasure::{self, refuse_erased_records};
use crate::error::{Error, Result};
use crate::item_text::ItemTextEncoder;
use crate::monitor::Monitor;
use crate::state::ServingState;

/// Users and items of the store the server serves.
#[derive(Clone)]
pub struct EntityService {
    state: Arc<ServingState>,
    monitor: Arc<Monitor>,
    /// Turns written items' text into a vector feature (`[encoder]`), when configured.
    item_text: Option<Arc<ItemTextEncoder>>,
}

impl EntityService {
    pub fn new(
        state: Arc<ServingState>,
        monitor: Arc<Monitor>,
        item_text: Option<Arc<ItemTextEncoder>>,
    ) -> Self {
        Self {
            state,
            monitor,
            item_text,
        }
    }

    /// Writes (inserts or replaces) `users`.
    pub async fn upsert_users(&self, users: &[User]) -> Result<()> {
        refuse_erased_records(
            &self.state.erasures(),
            ErasedKind::User,
            users.iter().map(|u| u.id.as_str()),
        )?;
        self.state.write_limits.check_users(users)?;
        self.state.store.upsert_users(users).await?;
        self.state.catalog_changed();
        Ok(())
    }

    /// Writes (inserts or replaces) `items`; with an `[encoder]`, each item's text gets its
    /// vector first (checked against the limits again, as one more feature).
    pub async fn upsert_items(&self, items: &[Item]) -> Result<()> {
        refuse_erased_records(
            &self.state.erasures(),
            ErasedKind::Item,
            items.iter().map(|i| i.id.as_str()),
        )?;
        self.state.write_limits.check_items(items)?;
        let encoded;
        let items = match &self.item_text {
            Some(encoder) => {
                let mut owned = items.to_vec();
                encoder.embed(&mut owned).await?;
                self.state.write_limits.check_items(&owned)?;
                encoded = owned;
                &encoded[..]
            }
            None => items,
        };
        self.state.store.upsert_items(items).await?;
        self.state.catalog_changed();
        let snapshot = self.state.snapshot();
        if let Some((live, profile)) = snapshot
            .live
            .as_ref()
            .and_then(|l| Some((l, l.profile.as_ref()?)))
        {
            self.monitor
                .skew
                .observe_items(&live.version, profile, items);
        }
        Ok(())
    }

    /// The stored user `id`.
    pub async fn user(&self, id: &str) -> Result<User> {
        self.state
            .store
            .get_user(id)
            .await?
            .ok_or_else(|| Error::not_found("user", id))
    }

    /// The stored item `id`.
    pub async fn item(&self, id: &str) -> Result<Item> {
        self.state
            .store
            .get_item(id)
            .await?
            .ok_or_else(|| Error::not_found("item", id))
    }

    /// Deletes user `id` and forgets their real-time state.
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        if !self.state.store.delete_user(id).await? {
            return Err(Error::not_found("user", id));
        }
        self.state.forget_user(id);
        self.state.catalog_changed();
        Ok(())
    }

    /// Deletes item `id`.
    pub async fn delete_item(&self, id: &str) -> Result<()> {
        if !self.state.store.delete_item(id).await? {
            return Err(Error::not_found("item", id));
        }
        self.state.catalog_changed();
        Ok(())
    }

    /// Erases user `id`: every row naming them, a tombstone, and this server's state about them
    /// (see [`crate::erasure`]); answers the rows removed per table. Erasing an id the store
    /// never had is allowed (it leaves the tombstone). The work runs as a task of its own, so a
    /// caller that stops waiting never leaves it half done.
    pub async fn erase_user(&self, id: &str) -> Result<ErasureReport> {
        self.erase(ErasedKind::User, id).await
    }

    /// Erases item `id` likewise (see [`EntityService::erase_user`]).
    pub async fn erase_item(&self, id: &str) -> Result<ErasureReport> {
        self.erase(ErasedKind::Item, id).await
    }

    async fn erase(&self, kind: ErasedKind, id: &str) -> Result<ErasureReport> {
        kindred_store::check_id(&format!("{} id", kind.as_str()), id)?;
        let (state, monitor, id) = (
            Arc::clone(&self.state),
            Arc::clone(&self.monitor),
            id.to_owned(),
        );
        tokio::spawn(async move { erasure::erase(&state, &monitor, kind, &id).await })
            .await
            .map_err(|e| Error::Task(format!("erasure: {e}")))?
    }
}
