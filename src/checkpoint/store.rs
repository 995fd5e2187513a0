//! Where checkpoints live, through the `object_store` crate: a local directory (atomic
//! rename on write), S3 and S3-compatible stores, or memory (tests).
//!
//! Layout under the store's root: `<group>/<topic>/<partition>.ckpt` for snapshots and
//! `<group>/<topic>/<partition>.alerts` for the delivered-alerts mark (the event time up to
//! which every alert transition of the partition has been delivered; see
//! `service::consumer`). The consumer group is part of the key: two groups reading the same
//! topic are two pipelines with their own state.

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use super::CheckpointError;
use crate::config::{CheckpointConfig, StoreLocation};
use crate::time::Millis;

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    group: String,
    /// For messages: the location as configured.
    name: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.name).finish()
    }
}

impl Store {
    /// Open the configured store for consumer group `group` (a directory is created).
    pub fn open(cfg: &CheckpointConfig, group: &str) -> Result<Option<Store>, CheckpointError> {
        let Some(location) = &cfg.store else {
            return Ok(None);
        };
        let name = location.to_string();
        let config_error = |m: String| CheckpointError::Config(name.clone(), m);
        let store_error = |source| CheckpointError::Store {
            store: name.clone(),
            source,
        };
        let (inner, root): (Arc<dyn ObjectStore>, Path) = match location {
            StoreLocation::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| config_error(format!("creating {}: {e}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(store_error)?;
                (Arc::new(fs), Path::default())
            }
            StoreLocation::Memory => (Arc::new(InMemory::new()), Path::default()),
            StoreLocation::Url(url) => {
                // from_env: credentials and region the usual way (AWS_ACCESS_KEY_ID,
                // AWS_REGION, web identity on EKS...); `options` on top, each key checked.
                let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
                for (k, v) in &cfg.options {
                    let key: AmazonS3ConfigKey = k.parse().map_err(|_| {
                        config_error(format!(
                            "unknown object-store option `{k}` (see object_store's \
                                 AmazonS3ConfigKey: aws_region, aws_endpoint, aws_allow_http...)"
                        ))
                    })?;
                    b = b.with_config(key, v);
                }
                let root =
                    Path::from_url_path(url.path()).map_err(|e| config_error(e.to_string()))?;
                (Arc::new(b.build().map_err(store_error)?), root)
            }
        };
        Ok(Some(Store {
            inner,
            root,
            group: group.to_owned(),
            name,
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn key(&self, topic: &str, partition: i32, ext: &str) -> Path {
        let file = format!("{partition}.{ext}");
        let parts = self
            .root
            .parts()
            .chain([self.group.as_str(), topic, file.as_str()].map(Into::into));
        Path::from_iter(parts)
    }

    fn error(&self, source: object_store::Error) -> CheckpointError {
        CheckpointError::Store {
            store: self.name.clone(),
            source,
        }
    }

    async fn get_bytes(&self, key: &Path) -> Result<Option<Bytes>, CheckpointError> {
        match self.inner.get(key).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| self.error(e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Replace the partition's snapshot (atomically: readers see the old or the new one).
    pub async fn put(
        &self,
        topic: &str,
        partition: i32,
        bytes: Vec<u8>,
    ) -> Result<(), CheckpointError> {
        self.inner
            .put(&self.key(topic, partition, "ckpt"), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The partition's snapshot, if there is one.
    pub async fn get(&self, topic: &str, partition: i32) -> Result<Option<Bytes>, CheckpointError> {
        self.get_bytes(&self.key(topic, partition, "ckpt")).await
    }

    /// Record that every alert transition of the partition up to event time `through` has been
    /// delivered.
    pub async fn put_mark(
        &self,
        topic: &str,
        partition: i32,
        through: Millis,
    ) -> Result<(), CheckpointError> {
        self.inner
            .put(
                &self.key(topic, partition, "alerts"),
                PutPayload::from(through.to_string().into_bytes()),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub async fn get_mark(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Millis>, CheckpointError> {
        let Some(b) = self
            .get_bytes(&self.key(topic, partition, "alerts"))
            .await?
        else {
            return Ok(None);
        };
        std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| CheckpointError::Corrupt("unreadable delivered-alerts mark".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_store_round_trips_and_keys_by_group() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CheckpointConfig {
            store: Some(StoreLocation::Dir(dir.path().join("ck"))),
            ..Default::default()
        };
        let a = Store::open(&cfg, "group-a").unwrap().unwrap();
        let b = Store::open(&cfg, "group-b").unwrap().unwrap();
        assert_eq!(a.get("t", 0).await.unwrap(), None);
        a.put("t", 0, b"one".to_vec()).await.unwrap();
        a.put("t", 0, b"two".to_vec()).await.unwrap();
        assert_eq!(a.get("t", 0).await.unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(
            b.get("t", 0).await.unwrap(),
            None,
            "other group, other state"
        );
        a.put_mark("t", 0, 1234).await.unwrap();
        assert_eq!(a.get_mark("t", 0).await.unwrap(), Some(1234));
        assert!(dir.path().join("ck/group-a/t/0.ckpt").exists());
    }

    #[test]
    fn s3_options_are_checked_by_name() {
        let cfg = |k: &str| CheckpointConfig {
            store: Some("s3://bucket/prefix".parse().unwrap()),
            options: [(k.to_owned(), "x".to_owned())].into(),
            ..Default::default()
        };
        let err = Store::open(&cfg("aws_regoin"), "g")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown object-store option `aws_regoin`"),
            "{err}"
        );
        let s = Store::open(&cfg("aws_region"), "g").unwrap().unwrap();
        assert_eq!(s.key("t", 1, "ckpt").as_ref(), "prefix/g/t/1.ckpt");
    }
}
