//! The media repository's periodic clean-up: media IDs reserved with `/create` whose upload
//! never came (checked lazily on use, but a user who never comes back would leave them
//! forever), and URL previews past their cache lifetime.

use std::{sync::Arc, time::Duration};

use myelin_storage::Batch;

use super::{MEDIA, Media, PENDING, UploadClaim};
use crate::{error::Result, service::Services, util::now_millis};

/// The sweep runs this often at most, and at least once per pending-upload lifetime (so a
/// short lifetime, as in tests, is swept promptly).
const LONGEST_INTERVAL: Duration = Duration::from_secs(3_600);

/// Starts the sweep task; abort it to stop (`ServerHandle::shutdown`).
pub fn spawn(services: Arc<Services>) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_millis(services.media.pending_expiry_ms).clamp(Duration::from_secs(1), LONGEST_INTERVAL);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match services.media.delete_expired_pending().await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "expired pending media IDs deleted"),
                Err(error) => tracing::warn!(%error, "cannot sweep expired pending media IDs"),
            }
            match services.url_previews.delete_expired().await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "expired URL previews deleted"),
                Err(error) => tracing::warn!(%error, "cannot sweep expired URL previews"),
            }
        }
    })
}

impl Media {
    /// Deletes every pending media ID past its expiry that has no content; returns how many.
    pub async fn delete_expired_pending(&self) -> Result<usize> {
        let now = now_millis();
        let mut expired = Vec::new();
        for entry in PENDING.iter_all(&self.db)? {
            let ((user, media_id), expires) = entry?;
            if expires <= now {
                expired.push((user, media_id));
            }
        }
        let mut batch = Batch::new();
        let mut claims = Vec::new();
        for (user, media_id) in expired {
            // Claimed, an upload cannot store its content while the record goes; an upload
            // already streaming keeps its ID (it began before the expiry).
            let Ok(claim) = UploadClaim::take(&self.uploading, &media_id) else { continue };
            let key = (self.server_name.to_string(), media_id.clone());
            if MEDIA.get(&self.db, &key)?.is_some_and(|record| record.file.is_none()) {
                MEDIA.delete(&mut batch, &key);
            }
            PENDING.delete(&mut batch, &(user, media_id));
            claims.push(claim);
        }
        let deleted = claims.len();
        if deleted > 0 {
            self.db.write_async(batch).await?;
        }
        Ok(deleted)
    }
}
