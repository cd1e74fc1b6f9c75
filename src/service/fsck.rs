//! Consistency check between the metadata database and blob storage: objects no row references,
//! rows whose object is missing, and upload sessions (with their multipart uploads) left behind.
//! `repair` fixes what can be fixed without guessing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::GcService;
use crate::error::Result;
use crate::meta::now_millis;
use crate::storage::{upload_id_of, Staging};

/// What fsck found (and, with repair, fixed).
#[derive(Debug, Default)]
pub struct FsckReport {
    pub blobs_checked: usize,
    pub objects_checked: usize,
    /// `(digest, object key, repositories, manifests referencing it)`.
    pub missing_objects: Vec<(String, String, Vec<String>, Vec<String>)>,
    /// Objects with a size different from the blob row's.
    pub size_mismatches: Vec<(String, u64, u64)>,
    /// Keys of objects nothing references (older than the grace period).
    pub orphan_objects: Vec<String>,
    /// Upload sessions idle for longer than the purge age.
    pub stale_uploads: Vec<String>,
    pub repaired: bool,
}

impl FsckReport {
    pub fn problems(&self) -> usize {
        self.missing_objects.len()
            + self.size_mismatches.len()
            + self.orphan_objects.len()
            + self.stale_uploads.len()
    }
}

impl GcService {
    /// Compares database and storage. Objects younger than `grace` are never called orphans (an
    /// upload may be between creating its object and its row).
    pub async fn fsck(
        &self,
        repair: bool,
        grace: Duration,
        stale_after: Duration,
    ) -> Result<FsckReport> {
        let mut report = FsckReport {
            repaired: repair,
            ..Default::default()
        };
        let blobs = self.blob_index.all_blobs().await?;
        let uploads = self.uploads.all_uploads().await?;
        let objects = self.core.blobs.list_objects().await?;
        report.blobs_checked = blobs.len();
        report.objects_checked = objects.len();
        let by_key: HashMap<&str, u64> = objects.iter().map(|o| (o.key.as_str(), o.size)).collect();
        let blob_keys: HashSet<&str> = blobs.iter().map(|b| b.object_key.as_str()).collect();
        let upload_ids: HashSet<&str> = uploads.iter().map(|u| u.id.as_str()).collect();

        for blob in &blobs {
            match by_key.get(blob.object_key.as_str()) {
                None => report.missing_objects.push((
                    blob.digest.clone(),
                    blob.object_key.clone(),
                    Vec::new(),
                    Vec::new(),
                )),
                Some(&size) if size != blob.size => {
                    report
                        .size_mismatches
                        .push((blob.digest.clone(), blob.size, size))
                }
                Some(_) => {}
            }
        }
        let cutoff = now_millis() - grace.as_millis() as i64;
        for object in &objects {
            let referenced = blob_keys.contains(object.key.as_str())
                || upload_id_of(&object.key).is_some_and(|id| upload_ids.contains(id));
            if !referenced && object.modified_millis < cutoff {
                report.orphan_objects.push(object.key.clone());
            }
        }
        let stale_before = now_millis() - stale_after.as_millis() as i64;
        report.stale_uploads = uploads
            .iter()
            .filter(|u| u.updated_at < stale_before)
            .map(|u| u.id.clone())
            .collect();

        if repair {
            // Bytes first: on a full disk, deleting them frees the space the database writes
            // below need.
            for key in &report.orphan_objects {
                self.core.blobs.delete_object(key).await?;
            }
            for row in uploads.iter().filter(|u| u.updated_at < stale_before) {
                let staging = Staging::from_json(&row.staging)?;
                self.core
                    .blobs
                    .discard_upload(&row.id, row.size, &staging)
                    .await?;
                self.uploads.delete_upload(&row.id).await?;
            }
            for (digest, _, repos, manifests) in &mut report.missing_objects {
                let (r, m) = self.blob_index.forget_blob(digest).await?;
                self.core.cache.invalidate_all();
                *repos = r;
                *manifests = m;
            }
        }
        Ok(report)
    }
}
