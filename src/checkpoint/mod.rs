//! Checkpoints: a partition's engine state and the input offset it reflects, written to a
//! durable store so that a restart or a partition's next owner carries on where it stopped.
//!
//! As in Flink or Kafka Streams, the offset is part of the checkpoint, not of the consumer
//! group: recovery loads the snapshot and seeks to its `next_offset`, so every event after the
//! snapshot is applied exactly once to the restored state, whatever the group had committed.
//!
//! # Format
//!
//! ```text
//!   magic "OVRGCKPT" | version u16 LE | reserved u16 | body length u64 LE | xxh3-64 of body u64 LE
//!   body: postcard (compact varint binary) of { meta: Meta, engine: EngineState }
//! ```
//!
//! A file is read only if its magic, version, length and checksum all match; anything else is
//! refused with a message that says which ([`CheckpointError`]), never misread. Changing
//! [`EngineState`] or anything it contains changes the body: bump [`FORMAT_VERSION`] (and read
//! the old version, or let the fallback policy rebuild state).
//!
//! [`store`] says where checkpoints live (a local directory, S3-compatible object storage);
//! the consumer decides when they are taken (`service::consumer`).

pub mod store;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::engine::EngineState;
use crate::time::Millis;

pub use store::Store;

pub const MAGIC: [u8; 8] = *b"OVRGCKPT";
/// Version of the body encoding this build writes and reads. 2: dedupe ids of late events
/// are also kept by arrival. 5: alerts keep when they were last over their threshold, scope
/// counters count calls. 8: quiet clients may be packed. 9: scope counters count each
/// violation's calls and keep the share it ran at; call counters are 32-bit. 10: unit moments
/// keep the largest call. 11: a ring's unit and call columns share one head; call counters
/// count calls since (16-bit, saturating); month bounds in hours. 12: the baseline keeps the
/// hour its client's last resolved volume incident ended. 13: the baseline learns how
/// front-loaded its client's hours are, and counts a day's frozen hours. 14: the baseline keeps
/// its level as the day began, and whether the last day was far under its prediction. 15: unit
/// moments keep the largest call of the hour whose slot the newest hour took.
pub const FORMAT_VERSION: u16 = 15;
const HEADER_LEN: usize = 8 + 2 + 2 + 8 + 8;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("corrupt checkpoint: {0}")]
    Corrupt(String),
    #[error(
        "checkpoint format version {found} is not readable by this build (it reads version \
         {FORMAT_VERSION}); it was written by a {} overage",
        if *found > FORMAT_VERSION { "newer" } else { "older" }
    )]
    Incompatible { found: u16 },
    #[error("encoding a checkpoint: {0}")]
    Encode(postcard::Error),
    #[error("checkpoint store {store}: {source}")]
    Store {
        store: String,
        source: object_store::Error,
    },
    #[error("checkpoint store `{0}`: {1}")]
    Config(String, String),
}

impl CheckpointError {
    /// Bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckpointError::Corrupt(_) => "corrupt",
            CheckpointError::Incompatible { .. } => "incompatible",
            CheckpointError::Encode(_) => "encode",
            CheckpointError::Store { .. } => "store",
            CheckpointError::Config(..) => "config",
        }
    }
}

/// What a checkpoint is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub topic: String,
    pub partition: i32,
    /// The first offset not reflected in the state: where consumption resumes.
    pub next_offset: i64,
    /// Wall-clock time it was taken (for operators; recovery does not use it).
    pub written_at: Millis,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    meta: &'a Meta,
    engine: &'a EngineState,
}

#[derive(Deserialize)]
struct Body {
    meta: Meta,
    engine: EngineState,
}

/// Encode a checkpoint of `engine` (a live engine's [`Engine::state`](crate::engine::Engine::state),
/// or a [`snapshot`](crate::engine::Engine::snapshot) of it).
pub fn encode(meta: &Meta, engine: &EngineState) -> Result<Vec<u8>, CheckpointError> {
    let mut buf = vec![0u8; HEADER_LEN];
    let mut buf = postcard::to_extend(&BodyRef { meta, engine }, std::mem::take(&mut buf))
        .map_err(CheckpointError::Encode)?;
    let body_len = (buf.len() - HEADER_LEN) as u64;
    let sum = xxh3_64(&buf[HEADER_LEN..]);
    buf[0..8].copy_from_slice(&MAGIC);
    buf[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    buf[10..12].copy_from_slice(&[0, 0]);
    buf[12..20].copy_from_slice(&body_len.to_le_bytes());
    buf[20..28].copy_from_slice(&sum.to_le_bytes());
    Ok(buf)
}

/// Decode and verify a checkpoint.
pub fn decode(bytes: &[u8]) -> Result<(Meta, EngineState), CheckpointError> {
    if bytes.len() < HEADER_LEN || bytes[0..8] != MAGIC {
        return Err(CheckpointError::Corrupt(
            "not an overage checkpoint (bad magic)".into(),
        ));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(CheckpointError::Incompatible { found: version });
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[12..20]);
    let len = u64::from_le_bytes(n);
    n.copy_from_slice(&bytes[20..28]);
    let sum = u64::from_le_bytes(n);
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(CheckpointError::Corrupt(format!(
            "truncated or padded: header says {len} bytes of body, found {}",
            body.len()
        )));
    }
    if xxh3_64(body) != sum {
        return Err(CheckpointError::Corrupt("checksum mismatch".into()));
    }
    let b: Body = postcard::from_bytes(body)
        .map_err(|e| CheckpointError::Corrupt(format!("undecodable body: {e}")))?;
    Ok((b.meta, b.engine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::contract::Contracts;
    use crate::engine::Engine;
    use std::sync::Arc;

    fn engine_with_data() -> Engine {
        let cfg = Config::default();
        let mut e = Engine::new(&cfg, Arc::new(Contracts::default()));
        let decoder = cfg.input.decoder();
        let mut out = vec![];
        // ten days of one client before, so its usage history has hours and days sealed
        let start = crate::time::parse_rfc3339("2026-08-31T00:10:00Z").unwrap();
        // (and a client of the same calls gone quiet the evening before, to be packed)
        for i in 0..80 {
            for client in ["c0", "q0"] {
                let line = format!(
                    r#"{{"ts":"{}","client_id":"{client}","units":{i},"product":"p1"}}"#,
                    crate::time::format_rfc3339(start + i * 3 * crate::time::HOUR_MS)
                );
                e.ingest(&decoder, line.as_bytes(), None, &mut out);
            }
        }
        for i in 0..500 {
            let line = format!(
                r#"{{"ts":"2026-09-10T10:{:02}:{:02}Z","client_id":"c{}","event_id":"e{i}","units":{},"product":"p{}","origin_country":"FR"}}"#,
                i / 60 % 60,
                i % 60,
                i % 7,
                1 + i % 3,
                i % 2
            );
            e.ingest(&decoder, line.as_bytes(), None, &mut out);
        }
        // and two clients of a few calls, kept sparse
        for (i, client) in ["s0", "s1", "s1"].iter().enumerate() {
            let line = format!(
                r#"{{"ts":"2026-09-10T10:08:0{i}Z","client_id":"{client}","units":2,"origin_asn":64500}}"#
            );
            e.ingest(&decoder, line.as_bytes(), None, &mut out);
        }
        assert_eq!(e.sparse_count(), 2);
        assert!(e.is_packed("q0") && e.packed_count() == 1);
        e
    }

    fn meta() -> Meta {
        Meta {
            topic: "events".into(),
            partition: 3,
            next_offset: 500,
            written_at: 1,
        }
    }

    #[test]
    fn round_trips() {
        let e = engine_with_data();
        let owned = encode(&meta(), &e.snapshot()).unwrap();
        let (m, state) = decode(&owned).unwrap();
        assert_eq!(m, meta());
        let cfg = Config::default();
        let mut r = Engine::restore(&cfg, Arc::new(Contracts::default()), state);
        assert_eq!(r.client_count(), e.client_count());
        assert_eq!(r.sparse_count(), e.sparse_count());
        assert_eq!(r.packed_count(), e.packed_count());
        assert_eq!(r.watermark(), e.watermark());
        for c in e.clients() {
            let restored = r.client(&c.id).expect("every client restored");
            assert_eq!(format!("{c:?}"), format!("{restored:?}"));
        }
        // the dedupe ids came along: a redelivered event is still recognised
        let decoder = cfg.input.decoder();
        let again = r#"{"ts":"2026-09-10T10:08:19Z","client_id":"c2","event_id":"e499","units":2}"#;
        r.ingest(&decoder, again.as_bytes(), None, &mut vec![]);
        assert_eq!(r.stats().count("duplicate"), 1);
    }

    /// The committed bytes of this format version's checkpoint of [`engine_with_data`].
    /// postcard is not self-describing: a reordered field of the same type, or a changed
    /// encoding of anything inside a client, would decode silently into the wrong fields. This
    /// pins the bytes, so such a change fails here until `FORMAT_VERSION` is bumped and a
    /// fixture for the new version is recorded (`OVERAGE_BLESS=1 cargo test --release --lib
    /// checkpoint`, which writes it and still fails once, to be committed).
    #[test]
    fn the_encoding_of_this_version_matches_its_committed_fixture() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/checkpoint/v{FORMAT_VERSION}.bin"));
        let bytes = encode(&meta(), &engine_with_data().snapshot()).unwrap();
        if std::env::var_os("OVERAGE_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            panic!("recorded {}: commit it and run again", path.display());
        }
        let fixture = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; a new FORMAT_VERSION needs its fixture (OVERAGE_BLESS=1)",
                path.display()
            )
        });
        assert!(
            fixture == bytes,
            "the checkpoint encoding changed without a FORMAT_VERSION bump ({} bytes committed in \
             {}, {} now): bump the version and record its fixture",
            fixture.len(),
            path.display(),
            bytes.len()
        );
        // and the committed bytes still decode into the state they were written from
        let (m, state) = decode(&fixture).unwrap();
        assert_eq!(m, meta());
        let restored = Engine::restore(&Config::default(), Arc::new(Contracts::default()), state);
        for c in engine_with_data().clients() {
            let r = restored.client(&c.id).expect("every client restored");
            assert_eq!(format!("{c:?}"), format!("{r:?}"));
        }
    }

    /// The previous version's committed checkpoint, as an upgraded instance finds it on disk:
    /// refused with the version message, not misread.
    #[test]
    fn the_previous_versions_checkpoint_is_refused_with_the_version_message() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
            "tests/fixtures/checkpoint/v{}.bin",
            FORMAT_VERSION - 1
        ));
        let old = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let err = decode(&old).unwrap_err();
        assert!(matches!(err, CheckpointError::Incompatible { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("version {}", FORMAT_VERSION - 1))
                && message.contains("older"),
            "{message}"
        );
    }

    #[test]
    fn every_damage_is_refused_with_its_reason() {
        let good = encode(&meta(), &engine_with_data().snapshot()).unwrap();

        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(
            matches!(decode(&flipped), Err(CheckpointError::Corrupt(m)) if m.contains("checksum"))
        );

        let truncated = &good[..good.len() - 10];
        assert!(
            matches!(decode(truncated), Err(CheckpointError::Corrupt(m)) if m.contains("truncated"))
        );

        assert!(
            matches!(decode(b"hello"), Err(CheckpointError::Corrupt(m)) if m.contains("magic"))
        );

        let mut newer = good.clone();
        newer[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let err = decode(&newer).unwrap_err();
        assert!(matches!(err, CheckpointError::Incompatible { .. }));
        assert!(err.to_string().contains("newer"), "{err}");

        // every older body is laid out differently (v1: dedupe ids by event time only; v3:
        // clients without their driver mix; v4: alerts without when they were last over their
        // threshold, scope counters without calls; v7: no packed clients, which it would
        // take for corruption) and must be refused, not misread
        for v in 1..FORMAT_VERSION {
            let mut old = good.clone();
            old[8..10].copy_from_slice(&v.to_le_bytes());
            let err = decode(&old).unwrap_err();
            assert!(
                err.to_string().contains(&format!("version {v}"))
                    && err.to_string().contains("older"),
                "{err}"
            );
        }
    }
}
