//! The disk spool: every batch is written here before it is sent, and removed only when the
//! collector has acknowledged it.
//!
//! # Invariants
//! - One file per batch, `{seq:020}-{events}.batch`, holding the wire frame exactly as sent;
//!   the frame's own CRC is the checksum. A file appears under its final name only after it
//!   is complete (written as `.tmp`, optionally fsynced, then renamed), so a crash leaves a
//!   whole batch or a `.tmp` that is deleted at start.
//! - The spool never holds more than `max_bytes` except for the one newest batch: when an
//!   append goes over the bound, the oldest batches are dropped, each one logged and counted.
//! - Batches are handed out oldest first.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use vigil_schema::wire;

use crate::metrics::Metrics;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    fsync: bool,
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
    added: Notify,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<u64, Entry>,
    bytes: u64,
    next_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    events: u64,
    bytes: u64,
}

impl Spool {
    /// Opens (creating) the spool directory, deletes unfinished `.tmp` files, checks every
    /// batch file and sets damaged ones aside in `corrupt/`. Blocks on disk I/O.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        fsync: bool,
        metrics: Arc<Metrics>,
    ) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut inner = Inner::default();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                fs::remove_file(&path)?;
                continue;
            }
            let Some((seq, events)) = parse_name(name) else {
                continue;
            };
            let data = fs::read(&path)?;
            if let Err(e) = wire::check_frame(&data) {
                tracing::warn!(file = %path.display(), error = %e, "damaged spool file set aside");
                metrics.spool_corrupt.inc();
                set_aside(dir, "corrupt", &path)?;
                continue;
            }
            let bytes = data.len() as u64;
            inner.bytes += bytes;
            inner.entries.insert(seq, Entry { events, bytes });
        }
        let stored_next = fs::read_to_string(dir.join("next_seq"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let after_last = inner.entries.keys().next_back().map_or(0, |s| s + 1);
        inner.next_seq = stored_next.max(after_last);
        if !inner.entries.is_empty() {
            tracing::info!(
                batches = inner.entries.len(),
                bytes = inner.bytes,
                "spool holds unacknowledged batches; resending"
            );
        }
        let spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            fsync,
            inner: Mutex::new(inner),
            metrics,
            added: Notify::new(),
        };
        spool.update_gauges(&spool.lock());
        Ok(spool)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves the next sequence number.
    pub fn next_seq(&self) -> u64 {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        seq
    }

    /// Writes a batch durably (per `fsync`) and makes it available to the shipper; drops
    /// the oldest batches if the spool is over its bound. Blocks on disk I/O.
    pub fn append(&self, seq: u64, events: u64, frame: &[u8]) -> io::Result<()> {
        let path = self.path(seq, events);
        let tmp = path.with_extension("tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(frame)?;
            if self.fsync {
                f.sync_data()?;
            }
        }
        fs::rename(&tmp, &path)?;
        if self.fsync {
            fs::File::open(&self.dir)?.sync_all()?;
        }
        let mut dropped = Vec::new();
        {
            let mut inner = self.lock();
            inner.entries.insert(
                seq,
                Entry {
                    events,
                    bytes: frame.len() as u64,
                },
            );
            inner.bytes += frame.len() as u64;
            while inner.bytes > self.max_bytes && inner.entries.len() > 1 {
                let Some((old, e)) = inner.entries.pop_first() else {
                    break;
                };
                inner.bytes -= e.bytes;
                dropped.push((old, e));
            }
            // Not fsynced: after a crash the number is re-derived from the files, and batch
            // ids (not seqs) are what the collector deduplicates on.
            let _ = fs::write(self.dir.join("next_seq"), inner.next_seq.to_string());
            self.update_gauges(&inner);
        }
        for (old, e) in dropped {
            let _ = fs::remove_file(self.path(old, e.events));
            self.metrics.spool_dropped(old, e.events, e.bytes);
        }
        self.metrics.batches_spooled.inc();
        self.metrics.events_spooled.inc_by(events);
        self.added.notify_one();
        Ok(())
    }

    /// The oldest batch not in `skip`.
    pub fn oldest_except(&self, skip: &HashSet<u64>) -> Option<u64> {
        self.lock()
            .entries
            .keys()
            .find(|s| !skip.contains(s))
            .copied()
    }

    /// Reads a batch's frame; `None` if it was dropped meanwhile. Blocks on disk I/O.
    pub fn read(&self, seq: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        let Some(e) = self.lock().entries.get(&seq).copied() else {
            return Ok(None);
        };
        match fs::read(self.path(seq, e.events)) {
            Ok(data) => Ok(Some((e.events, data))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Forgets an acknowledged batch.
    pub fn remove(&self, seq: u64) {
        if let Some(e) = self.take(seq)
            && let Err(err) = fs::remove_file(self.path(seq, e.events))
        {
            tracing::warn!(seq, error = %err, "cannot delete acknowledged spool file");
        }
    }

    /// Moves a batch the collector refused as invalid to `rejected/`, for a human to look at.
    pub fn reject(&self, seq: u64) {
        if let Some(e) = self.take(seq) {
            let _ = set_aside(&self.dir, "rejected", &self.path(seq, e.events));
        }
    }

    /// Takes a batch out of the index (its file is the caller's to handle).
    fn take(&self, seq: u64) -> Option<Entry> {
        let mut inner = self.lock();
        let e = inner.entries.remove(&seq)?;
        inner.bytes -= e.bytes;
        self.update_gauges(&inner);
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when a batch was appended since the last call (a stored permit counts).
    pub async fn added(&self) {
        self.added.notified().await
    }

    fn path(&self, seq: u64, events: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}-{events}.batch"))
    }

    fn update_gauges(&self, inner: &Inner) {
        self.metrics.spool_bytes.set(inner.bytes as i64);
        self.metrics.spool_batches.set(inner.entries.len() as i64);
    }
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".batch")?;
    let (seq, events) = stem.split_once('-')?;
    Some((seq.parse().ok()?, events.parse().ok()?))
}

fn set_aside(dir: &Path, sub: &str, path: &Path) -> io::Result<()> {
    let target = dir.join(sub);
    fs::create_dir_all(&target)?;
    if let Some(name) = path.file_name() {
        fs::rename(path, target.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_schema::{Batch, Event, EventKind};

    fn frame(n: usize) -> Vec<u8> {
        Batch {
            batch_id: uuid::Uuid::now_v7(),
            agent_id: "a".into(),
            seq: 0,
            events: (0..n)
                .map(|i| {
                    let mut e = Event::new(EventKind::Syslog, chrono::Utc::now());
                    e.set_str("message", format!("event {i} {}", "x".repeat(100)));
                    e
                })
                .collect(),
        }
        .encode()
    }

    #[test]
    fn survives_reopen_and_sets_damaged_files_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Arc::new(Metrics::new());
        let spool = Spool::open(dir.path(), 1 << 20, true, m.clone()).expect("open");
        for _ in 0..3 {
            let seq = spool.next_seq();
            spool.append(seq, 5, &frame(5)).expect("append");
        }
        drop(spool);
        // Damage the second batch and leave a half-written temp file behind.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "batch"))
            .collect();
        names.sort();
        let mut data = fs::read(&names[1]).expect("read");
        let n = data.len();
        data[n - 1] ^= 0xff;
        fs::write(&names[1], data).expect("write");
        fs::write(dir.path().join("00000000000000000009-1.tmp"), b"half").expect("tmp");

        let spool = Spool::open(dir.path(), 1 << 20, true, m.clone()).expect("reopen");
        assert_eq!(spool.len(), 2);
        assert_eq!(m.spool_corrupt.get(), 1);
        assert_eq!(spool.oldest_except(&HashSet::new()), Some(0));
        assert_eq!(spool.oldest_except(&HashSet::from([0])), Some(2));
        assert_eq!(spool.next_seq(), 3);
        assert!(!dir.path().join("00000000000000000009-1.tmp").exists());
    }

    #[test]
    fn full_spool_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Arc::new(Metrics::new());
        let one = frame(10);
        let bound = one.len() as u64 * 3;
        let spool = Spool::open(dir.path(), bound, false, m.clone()).expect("open");
        for _ in 0..10 {
            let seq = spool.next_seq();
            spool.append(seq, 10, &frame(10)).expect("append");
        }
        assert!(spool.len() <= 3, "{}", spool.len());
        assert_eq!(m.spool_dropped_batches.get() as usize, 10 - spool.len());
        assert_eq!(
            m.spool_dropped_events.get() as usize,
            10 * (10 - spool.len())
        );
        // The newest survive.
        assert_eq!(
            spool.oldest_except(&HashSet::new()),
            Some(10 - spool.len() as u64)
        );
    }
}
