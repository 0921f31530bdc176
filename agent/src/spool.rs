//! The disk spool: every batch is written here before it is sent, and removed only when the
//! collector has acknowledged it.
//!
//! # Invariants
//! - Batches are appended to segment files, `{first seq:020}.seg`; a record is `seq u64 LE |
//!   events u64 LE | len u32 LE | frame`, the frame exactly as sent (its own CRC is the
//!   checksum). One file per batch cost the agent a sixth of its time under load in the
//!   file system's inode allocation.
//! - Only the newest segment (the active one) is appended to; each start opens a new one, so
//!   a segment torn by a crash is only ever read. A torn record ends its segment's reading:
//!   it was never fully written, hence never handed to the shipper. A whole record whose
//!   frame fails its check is damage: counted, the segment copied to `corrupt/`.
//! - A segment file is deleted once none of its batches is left (acknowledged, dropped or
//!   rejected) and it is not the active one. Acknowledgements are not written down: after a
//!   restart the acknowledged batches of a segment that still holds others are sent again,
//!   and the collector answers `duplicate` (it deduplicates on batch ids).
//! - The spool never holds more than `max_bytes` of batches except for the one newest: when
//!   an append goes over the bound, the oldest segment is dropped whole, each of its batches
//!   logged and counted, and its file deleted, so that a drop holds across a restart.
//!   Segments are at most a quarter of the bound, so the files take at most about 1.25 times
//!   the bound, and a drop takes at most a quarter. (Only a batch of more than three
//!   quarters of the bound leaves older batches in the active segment when the bound is
//!   passed: those are dropped one by one, and come back if the agent restarts.)
//! - Sequence numbers only grow: a new segment is named after the next one, and every start
//!   continues after the newest segment's name and records. A number reserved but never
//!   written (a crash between the two) may be given again after a restart: safe, since the
//!   batch it named was never sent.
//! - Batches are handed out oldest first.
//! - One-file-per-batch spools of earlier versions (`{seq:020}-{events}.batch`) are moved
//!   into a segment at start, file by file, each deleted only once its copy is written.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use vigil_schema::wire;

use crate::metrics::Metrics;

/// Largest segment (smaller for small spools: see the invariants).
const SEGMENT_BYTES: u64 = 16 << 20;
const RECORD_HEADER: usize = 20;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: bool,
    inner: Mutex<Inner>,
    /// The active segment; held while a record is written, so appends are whole.
    active: Mutex<Active>,
    metrics: Arc<Metrics>,
    added: Notify,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<u64, Entry>,
    bytes: u64,
    next_seq: u64,
    /// Batches left in each segment, by segment id.
    segments: BTreeMap<u64, usize>,
    active: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    events: u64,
    bytes: u64,
    segment: u64,
    /// Where the frame starts in its segment.
    offset: u64,
}

struct Active {
    id: u64,
    file: File,
    len: u64,
}

/// One record read back from a segment.
struct Record {
    seq: u64,
    events: u64,
    offset: u64,
    len: u64,
}

impl Spool {
    /// Opens (creating) the spool directory: reads every segment, sets damaged ones aside in
    /// `corrupt/`, moves batch files of earlier versions in, and starts a new segment. Blocks
    /// on disk I/O.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        fsync: bool,
        metrics: Arc<Metrics>,
    ) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut inner = Inner::default();
        let mut legacy = Vec::new();
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                fs::remove_file(&path)?;
            } else if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                segments.push(id);
            } else if let Some((seq, events)) = parse_legacy_name(name) {
                legacy.push((seq, events, path));
            }
        }
        segments.sort_unstable();
        for id in segments {
            let path = segment_path(dir, id);
            let data = fs::read(&path)?;
            let (records, damage) = read_records(&data);
            if let Some(e) = damage {
                tracing::warn!(file = %path.display(), error = %e, "damaged spool segment: batches after the damage set aside");
                metrics.spool_corrupt.inc();
                let aside = dir.join("corrupt");
                fs::create_dir_all(&aside)?;
                fs::copy(&path, aside.join(format!("{id:020}.seg")))?;
            }
            if records.is_empty() {
                // Its name was never a batch's: the number is free again.
                inner.next_seq = inner.next_seq.max(id);
                fs::remove_file(&path)?;
                continue;
            }
            // Its name is taken (by its first batch, or by its start, for moved batches).
            inner.next_seq = inner.next_seq.max(id + 1);
            inner.segments.insert(id, records.len());
            for r in records {
                inner.next_seq = inner.next_seq.max(r.seq + 1);
                inner.bytes += r.len;
                inner.entries.insert(
                    r.seq,
                    Entry {
                        events: r.events,
                        bytes: r.len,
                        segment: id,
                        offset: r.offset,
                    },
                );
            }
        }
        // Earlier versions kept the next number in a file of its own.
        let stored_next = dir.join("next_seq");
        if let Some(n) = fs::read_to_string(&stored_next)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            inner.next_seq = inner.next_seq.max(n);
        }
        legacy.sort_unstable_by_key(|l| l.0);
        if let Some((last, ..)) = legacy.last() {
            inner.next_seq = inner.next_seq.max(last + 1);
        }
        inner.active = inner.next_seq;
        let spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: (max_bytes / 4).clamp(1, SEGMENT_BYTES),
            fsync,
            active: Mutex::new(Active {
                id: inner.next_seq,
                file: create_segment(dir, inner.next_seq, fsync)?,
                len: 0,
            }),
            inner: Mutex::new(inner),
            metrics,
            added: Notify::new(),
        };
        let _ = fs::remove_file(stored_next);
        for (seq, events, path) in legacy {
            let data = fs::read(&path)?;
            if let Err(e) = wire::check_frame(&data) {
                tracing::warn!(file = %path.display(), error = %e, "damaged spool file set aside");
                spool.metrics.spool_corrupt.inc();
                set_aside(dir, "corrupt", &path)?;
                continue;
            }
            spool.write(seq, events, &data)?;
            fs::remove_file(&path)?;
        }
        let inner = spool.lock();
        if !inner.entries.is_empty() {
            tracing::info!(
                batches = inner.entries.len(),
                bytes = inner.bytes,
                "spool holds unacknowledged batches; resending"
            );
        }
        spool.update_gauges(&inner);
        drop(inner);
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
        self.write(seq, events, frame)?;
        let mut dropped = Vec::new();
        {
            let mut inner = self.lock();
            while inner.bytes > self.max_bytes && inner.entries.len() > 1 {
                let Some((&oldest, first)) = inner.entries.first_key_value() else {
                    break;
                };
                let segment = first.segment;
                let seqs: Vec<u64> = if segment == inner.active {
                    vec![oldest]
                } else {
                    inner
                        .entries
                        .range(oldest..)
                        .take_while(|(_, e)| e.segment == segment)
                        .map(|(&seq, _)| seq)
                        .collect()
                };
                for seq in seqs {
                    if let Some(e) = self.take_locked(&mut inner, seq) {
                        dropped.push((seq, e));
                    }
                }
            }
            self.update_gauges(&inner);
        }
        for (old, e) in dropped {
            self.metrics.spool_dropped(old, e.events, e.bytes);
        }
        self.metrics.batches_spooled.inc();
        self.metrics.events_spooled.inc_by(events);
        self.added.notify_one();
        Ok(())
    }

    /// Appends one record to the active segment (starting a new one when it is full) and
    /// indexes it.
    fn write(&self, seq: u64, events: u64, frame: &[u8]) -> io::Result<()> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if active.len >= self.segment_bytes {
            // Named after its first batch (batches moved in from old files may be older).
            let id = seq.max(active.id + 1);
            let next = Active {
                id,
                file: create_segment(&self.dir, id, self.fsync)?,
                len: 0,
            };
            let full = std::mem::replace(&mut *active, next).id;
            let mut inner = self.lock();
            inner.active = id;
            if !inner.segments.contains_key(&full) {
                self.delete_segment(full);
            }
        }
        let len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "batch too large"))?;
        let mut record = Vec::with_capacity(RECORD_HEADER + frame.len());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&events.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(frame);
        let offset = active.len + RECORD_HEADER as u64;
        if let Err(e) = active.file.write_all(&record) {
            // Whatever part was written is a torn record at the end of this segment: go on
            // in a new one, so nothing is ever appended after it.
            active.len = u64::MAX;
            return Err(e);
        }
        if self.fsync {
            active.file.sync_data()?;
        }
        active.len += record.len() as u64;
        let mut inner = self.lock();
        *inner.segments.entry(active.id).or_default() += 1;
        inner.bytes += frame.len() as u64;
        inner.entries.insert(
            seq,
            Entry {
                events,
                bytes: frame.len() as u64,
                segment: active.id,
                offset,
            },
        );
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
        let file = match File::open(segment_path(&self.dir, e.segment)) {
            Ok(f) => f,
            // Its last batch was dropped after the lookup.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut frame = vec![0; e.bytes as usize];
        file.read_exact_at(&mut frame, e.offset)?;
        Ok(Some((e.events, frame)))
    }

    /// Forgets an acknowledged batch.
    pub fn remove(&self, seq: u64) {
        let mut inner = self.lock();
        self.take_locked(&mut inner, seq);
        self.update_gauges(&inner);
    }

    /// Copies a batch the collector refused as invalid to `rejected/`, for a human to look
    /// at, and forgets it.
    pub fn reject(&self, seq: u64) {
        if let Ok(Some((events, frame))) = self.read(seq) {
            let aside = self.dir.join("rejected");
            let written = fs::create_dir_all(&aside)
                .and_then(|()| fs::write(aside.join(format!("{seq:020}-{events}.batch")), frame));
            if let Err(e) = written {
                tracing::warn!(seq, error = %e, "cannot keep a rejected batch");
            }
        }
        self.remove(seq);
    }

    /// Takes a batch out of the index, deleting its segment when it was the segment's last.
    fn take_locked(&self, inner: &mut Inner, seq: u64) -> Option<Entry> {
        let e = inner.entries.remove(&seq)?;
        inner.bytes -= e.bytes;
        if let Some(left) = inner.segments.get_mut(&e.segment) {
            *left -= 1;
            if *left == 0 {
                inner.segments.remove(&e.segment);
                if e.segment != inner.active {
                    self.delete_segment(e.segment);
                }
            }
        }
        Some(e)
    }

    fn delete_segment(&self, id: u64) {
        if let Err(err) = fs::remove_file(segment_path(&self.dir, id)) {
            tracing::warn!(segment = id, error = %err, "cannot delete a spool segment");
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events in the batches held.
    pub fn events(&self) -> u64 {
        self.lock().entries.values().map(|e| e.events).sum()
    }

    /// Resolves when a batch was appended since the last call (a stored permit counts).
    pub async fn added(&self) {
        self.added.notified().await
    }

    fn update_gauges(&self, inner: &Inner) {
        self.metrics.spool_bytes.set(inner.bytes as i64);
        self.metrics.spool_batches.set(inner.entries.len() as i64);
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Creates an empty segment (and makes its name durable, per `fsync`).
fn create_segment(dir: &Path, id: u64, fsync: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, id))?;
    if fsync {
        File::open(dir)?.sync_all()?;
    }
    Ok(file)
}

/// The whole records of a segment, up to a torn end or the first damaged record (the error).
fn read_records(data: &[u8]) -> (Vec<Record>, Option<String>) {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len() - at >= RECORD_HEADER {
        let h = &data[at..at + RECORD_HEADER];
        let word = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or_default());
        let (seq, events) = (word(0), word(8));
        let len = u32::from_le_bytes(h[16..20].try_into().unwrap_or_default()) as usize;
        let start = at + RECORD_HEADER;
        let Some(frame) = data.get(start..start + len) else {
            break;
        };
        if let Err(e) = wire::check_frame(frame) {
            return (out, Some(format!("batch {seq}: {e}")));
        }
        out.push(Record {
            seq,
            events,
            offset: start as u64,
            len: len as u64,
        });
        at = start + len;
    }
    (out, None)
}

fn parse_legacy_name(name: &str) -> Option<(u64, u64)> {
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

    fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("ls")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn survives_reopen_torn_ends_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Arc::new(Metrics::new());
        let spool = Spool::open(dir.path(), 1 << 20, true, m.clone()).expect("open");
        let frames: Vec<_> = (1..=3).map(frame).collect();
        for f in &frames {
            let seq = spool.next_seq();
            spool.append(seq, 5, f).expect("append");
        }
        drop(spool);
        // A crash in the middle of a record: a torn end, not damage.
        let seg = &files(dir.path(), "seg")[0];
        let whole = fs::read(seg).expect("read");
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..RECORD_HEADER + 10]);
        fs::write(seg, &torn).expect("write");

        let spool = Spool::open(dir.path(), 1 << 20, true, m.clone()).expect("reopen");
        assert_eq!(spool.len(), 3);
        assert_eq!(m.spool_corrupt.get(), 0);
        for (seq, f) in frames.iter().enumerate() {
            assert_eq!(spool.read(seq as u64).expect("read"), Some((5, f.clone())));
        }
        assert_eq!(spool.next_seq(), 3);
        // Acknowledged batches are forgotten; the segment is deleted with its last one.
        spool.remove(0);
        drop(spool);

        // Damage the second batch: it and what follows it are set aside.
        let mut data = fs::read(seg).expect("read");
        let second = 2 * RECORD_HEADER + frames[0].len() + 20;
        data[second] ^= 0xff;
        fs::write(seg, data).expect("write");
        let spool = Spool::open(dir.path(), 1 << 20, true, m.clone()).expect("reopen");
        assert_eq!(m.spool_corrupt.get(), 1);
        // Acknowledgements are not written down: batch 0 is back, to be sent again.
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.oldest_except(&HashSet::new()), Some(0));
        assert_eq!(files(&dir.path().join("corrupt"), "seg").len(), 1);
        // Numbers go on after the batches; one reserved but never written is free again.
        assert_eq!(spool.next_seq(), 3);
        spool.remove(0);
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20, true, m.clone()).expect("reopen");
        assert!(spool.is_empty());
        assert_eq!(files(dir.path(), "seg").len(), 1, "only the new segment");
        assert_eq!(spool.next_seq(), 3);
    }

    #[test]
    fn segments_rotate_and_go_when_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Arc::new(Metrics::new());
        let f = frame(30);
        let spool = Spool::open(dir.path(), 1 << 30, false, m.clone()).expect("open");
        let per_segment = (spool.segment_bytes as usize).div_ceil(f.len() + RECORD_HEADER);
        let n = per_segment * 3;
        for _ in 0..n {
            let seq = spool.next_seq();
            spool.append(seq, 30, &f).expect("append");
        }
        assert_eq!(files(dir.path(), "seg").len(), 3);
        // Out of order, as the shipper's window acknowledges them.
        for seq in (0..n as u64).rev().filter(|s| s % 2 == 0) {
            spool.remove(seq);
        }
        assert_eq!(files(dir.path(), "seg").len(), 3);
        for seq in (0..2 * per_segment as u64).filter(|s| s % 2 == 1) {
            spool.remove(seq);
        }
        assert_eq!(files(dir.path(), "seg").len(), 1, "the active one is kept");
        assert_eq!(spool.len(), per_segment / 2);
        assert_eq!(spool.events(), 30 * spool.len() as u64);
    }

    #[test]
    fn batch_files_of_earlier_versions_move_into_a_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Arc::new(Metrics::new());
        let frames: Vec<_> = (1..=3).map(frame).collect();
        for (seq, f) in frames.iter().enumerate() {
            let name = format!("{:020}-{}.batch", seq + 7, seq + 1);
            fs::write(dir.path().join(name), f).expect("write");
        }
        let mut bad = frame(1);
        bad[30] ^= 0xff;
        fs::write(dir.path().join("00000000000000000011-1.batch"), bad).expect("write");
        fs::write(dir.path().join("00000000000000000012-1.tmp"), b"half").expect("tmp");
        fs::write(dir.path().join("next_seq"), "20").expect("next_seq");

        let spool = Spool::open(dir.path(), 1 << 20, true, m.clone()).expect("open");
        assert_eq!(spool.len(), 3);
        assert_eq!(m.spool_corrupt.get(), 1);
        for (i, f) in frames.iter().enumerate() {
            let seq = i as u64 + 7;
            assert_eq!(
                spool.read(seq).expect("read"),
                Some((i as u64 + 1, f.clone()))
            );
        }
        assert!(files(dir.path(), "batch").is_empty());
        assert!(files(dir.path(), "tmp").is_empty());
        assert_eq!(files(&dir.path().join("corrupt"), "batch").len(), 1);
        assert_eq!(spool.next_seq(), 20);
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20, true, m).expect("reopen");
        assert_eq!(spool.len(), 3);
        assert_eq!(spool.next_seq(), 21);
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
        // The newest survive, and the drops hold across a restart.
        let left = spool.len();
        assert_eq!(spool.oldest_except(&HashSet::new()), Some(10 - left as u64));
        drop(spool);
        let spool = Spool::open(dir.path(), bound, false, m).expect("reopen");
        assert_eq!(spool.len(), left);
    }
}
