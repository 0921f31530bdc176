//! Time partitions: one Tantivy index per UTC day of arrival, under `<index dir>/YYYY-MM-DD/`.
//!
//! Events go to the partition of the day the writer indexes them (as Quickwit splits,
//! Graylog index sets and Elasticsearch data streams do), not of their own `@timestamp`: a
//! device with a wrong clock or a backfill of old logs then costs no extra writers, and
//! retention by age drops what arrived long ago, whatever it claims about itself.
//!
//! # Invariants
//! - Each partition knows the `@timestamp` bounds of its committed documents; a search with
//!   a time range opens only the partitions whose bounds overlap it, so a query of the last
//!   hour touches today's partition (and yesterday's if it holds events of that hour).
//! - Only the writer thread creates, refreshes and drops partitions; searches take a
//!   snapshot ([`Partitions::overlapping`]) and keep using it even if a partition is dropped
//!   meanwhile (its files stay readable while mapped).
//! - A directory whose name is not a date is not ours: it is left alone, with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use tantivy::{Index, IndexReader};

use super::IndexSchema;

/// A partition's day (UTC).
pub type Day = NaiveDate;

/// One day's index, its reader, and the event-time bounds of what is committed in it.
#[derive(Clone)]
pub struct Partition {
    pub day: Day,
    pub index: Index,
    pub reader: IndexReader,
    /// Smallest and largest `@timestamp` (µs since the epoch), or `None` while empty.
    pub bounds: Option<(i64, i64)>,
    pub dir: PathBuf,
}

impl Partition {
    /// Whether any committed document can fall in `[from, to)`.
    pub fn overlaps(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
        let Some((min, max)) = self.bounds else {
            return false;
        };
        from.is_none_or(|f| max >= f.timestamp_micros())
            && to.is_none_or(|t| min < t.timestamp_micros())
    }

    /// The write-ahead-log segment the last commit of this partition covers (0: none).
    pub fn wal_through(&self) -> tantivy::Result<u64> {
        let meta = self.index.load_metas()?;
        Ok(meta
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|v| v.get("wal_through").and_then(|n| n.as_u64()))
            .unwrap_or(0))
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// The set of partitions, shared by the writer (which changes it) and searches (which read it).
#[derive(Clone)]
pub struct Partitions {
    root: PathBuf,
    schema: IndexSchema,
    set: Arc<RwLock<BTreeMap<Day, Partition>>>,
}

impl Partitions {
    /// Opens every partition under `root` (created if missing). Blocks on disk I/O.
    pub fn open(root: &Path, schema: IndexSchema) -> tantivy::Result<Partitions> {
        std::fs::create_dir_all(root)?;
        let parts = Partitions {
            root: root.to_owned(),
            schema,
            set: Arc::default(),
        };
        migrate_single_index(root)?;
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name();
            let day = name
                .to_str()
                .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok());
            match day {
                Some(day) if entry.path().is_dir() => {
                    parts.create(day)?;
                }
                _ => {
                    tracing::warn!(path = %entry.path().display(), "not an index partition (its name is not a YYYY-MM-DD day); left alone")
                }
            }
        }
        Ok(parts)
    }

    pub fn schema(&self) -> &IndexSchema {
        &self.schema
    }

    /// The partition of `day`, opened or created. Blocks on disk I/O.
    pub fn create(&self, day: Day) -> tantivy::Result<Partition> {
        if let Some(p) = self.get(day) {
            return Ok(p);
        }
        let dir = self.root.join(day.format("%Y-%m-%d").to_string());
        let index = self.schema.open_or_create(&dir).map_err(|e| match e {
            tantivy::TantivyError::SchemaError(m) => tantivy::TantivyError::SchemaError(format!(
                "{}: {m}: it was written by an earlier version of Vigil with other fields; move it out of {} to start",
                dir.display(),
                self.root.display()
            )),
            e => e,
        })?;
        let reader = super::writer::reader(&index)?;
        let mut p = Partition {
            day,
            index,
            reader,
            bounds: None,
            dir,
        };
        p.bounds = bounds(&p.reader)?;
        self.write().insert(day, p.clone());
        Ok(p)
    }

    pub fn get(&self, day: Day) -> Option<Partition> {
        self.read().get(&day).cloned()
    }

    /// Every partition, oldest first.
    pub fn all(&self) -> Vec<Partition> {
        self.read().values().cloned().collect()
    }

    /// The partitions that can hold events of `[from, to)`, newest first.
    pub fn overlapping(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<Partition> {
        self.read()
            .values()
            .rev()
            .filter(|p| p.overlaps(from, to))
            .cloned()
            .collect()
    }

    /// Makes the last commit of `day` visible to searches, bounds included.
    pub fn refresh(&self, day: Day) -> tantivy::Result<()> {
        let Some(p) = self.get(day) else {
            return Ok(());
        };
        p.reader.reload()?;
        let b = bounds(&p.reader)?;
        if let Some(p) = self.write().get_mut(&day) {
            p.bounds = b;
        }
        Ok(())
    }

    /// Removes `day` from searches, then deletes its files. Returns what it held.
    pub fn remove(&self, day: Day) -> std::io::Result<Option<(u64, u64)>> {
        let Some(p) = self.write().remove(&day) else {
            return Ok(None);
        };
        let docs = p.reader.searcher().num_docs();
        let bytes = p.disk_bytes();
        std::fs::remove_dir_all(&p.dir)?;
        Ok(Some((docs, bytes)))
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Documents committed over all partitions.
    pub fn num_docs(&self) -> u64 {
        self.read()
            .values()
            .map(|p| p.reader.searcher().num_docs())
            .sum()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Day, Partition>> {
        // A panic elsewhere while holding the lock leaves the map itself consistent.
        self.set.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Day, Partition>> {
        self.set.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// An index written before partitions existed (its files right in `root`) becomes the
/// partition of today, so nothing it holds is lost or hidden.
fn migrate_single_index(root: &Path) -> std::io::Result<()> {
    if !root.join("meta.json").exists() {
        return Ok(());
    }
    let dir = root.join(Utc::now().date_naive().format("%Y-%m-%d").to_string());
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::rename(entry.path(), dir.join(entry.file_name()))?;
        }
    }
    tracing::info!(to = %dir.display(), "an index of the single-index layout became a partition");
    Ok(())
}

/// The smallest and largest `@timestamp` over the committed segments.
fn bounds(reader: &IndexReader) -> tantivy::Result<Option<(i64, i64)>> {
    let searcher = reader.searcher();
    let mut out: Option<(i64, i64)> = None;
    for seg in searcher.segment_readers() {
        if seg.num_docs() == 0 {
            continue;
        }
        let col = seg.fast_fields().date(vigil_schema::fields::TIMESTAMP)?;
        let (lo, hi) = (
            col.min_value().into_timestamp_micros(),
            col.max_value().into_timestamp_micros(),
        );
        out = Some(out.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    Ok(out)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_of_the_single_index_layout_becomes_a_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = IndexSchema::new();
        let index = schema.open_or_create(dir.path()).expect("index");
        let mut w: tantivy::IndexWriter = index.writer(15_000_000).expect("writer");
        let mut e = vigil_schema::Event::default();
        e.set_str(vigil_schema::fields::MESSAGE, "kept");
        let at = Utc::now();
        w.add_document(schema.document(&e, at, "b")).expect("add");
        w.commit().expect("commit");
        drop((w, index));
        std::fs::create_dir(dir.path().join("not-a-day")).expect("mkdir");

        let parts = Partitions::open(dir.path(), schema).expect("open");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts.num_docs(), 1);
        let p = &parts.all()[0];
        assert_eq!(p.day, Utc::now().date_naive());
        let t = at.timestamp_micros();
        assert_eq!(p.bounds, Some((t, t)));
        assert!(!dir.path().join("meta.json").exists());
        assert!(dir.path().join("not-a-day").exists());
    }
}
