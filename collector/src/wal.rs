//! The collector's write-ahead log: a batch is acknowledged once its frame is here and
//! fsynced; the index catches up from it after a crash.
//!
//! # Invariants
//! - Segments are `{id:020}.wal`, ids increase; records are `len u32 LE | crc32 u32 LE | frame`.
//! - Only the newest segment is ever appended to. At start a fresh segment is opened, so a
//!   segment torn by a crash is only ever read, never extended.
//! - A torn or damaged record ends the reading of its segment: it was never fsynced, hence
//!   never acknowledged.
//! - A segment is deleted only after an index commit that covers it (see `index::writer`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const RECORD_HEADER: usize = 8;
/// A record larger than this is damage, not data (the ingest body limit is far below).
const MAX_RECORD: usize = 1 << 30;

pub struct Wal {
    dir: PathBuf,
    current_id: u64,
    current: BufWriter<File>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    pub segments: usize,
    pub records: usize,
    pub torn: usize,
}

impl Wal {
    /// Opens the log for appending in a new segment after every existing one. Blocks.
    pub fn open(dir: &Path) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().map_or(1, |id| id + 1);
        let current = create_segment(dir, next)?;
        Ok(Wal {
            dir: dir.to_owned(),
            current_id: next,
            current,
        })
    }

    pub fn current_id(&self) -> u64 {
        self.current_id
    }

    /// Appends a record (buffered; durable only after [`Wal::sync`]).
    pub fn append(&mut self, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("record too large"))?;
        self.current.write_all(&len.to_le_bytes())?;
        self.current
            .write_all(&crc32fast::hash(frame).to_le_bytes())?;
        self.current.write_all(frame)
    }

    /// Makes every appended record durable. Blocks on fsync when `fsync`.
    pub fn sync(&mut self, fsync: bool) -> io::Result<()> {
        self.current.flush()?;
        if fsync {
            self.current.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Closes the current segment and starts the next; returns the id of the closed one.
    pub fn rotate(&mut self, fsync: bool) -> io::Result<u64> {
        self.sync(fsync)?;
        let closed = self.current_id;
        self.current = create_segment(&self.dir, closed + 1)?;
        self.current_id = closed + 1;
        Ok(closed)
    }

    /// Deletes every segment with an id up to `id`.
    pub fn remove_through(&self, id: u64) -> io::Result<()> {
        for s in segments(&self.dir)? {
            if s <= id {
                fs::remove_file(segment_path(&self.dir, s))?;
            }
        }
        Ok(())
    }
}

/// Calls `f` with the segment id and every intact record of the segments with an id above
/// `after`, in order. Blocks on disk I/O.
pub fn replay(dir: &Path, after: u64, mut f: impl FnMut(u64, &[u8])) -> io::Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    if !dir.exists() {
        return Ok(stats);
    }
    for id in segments(dir)?.into_iter().filter(|&s| s > after) {
        stats.segments += 1;
        let mut data = Vec::new();
        File::open(segment_path(dir, id))?.read_to_end(&mut data)?;
        let mut pos = 0;
        while pos < data.len() {
            let Some(header) = data.get(pos..pos + RECORD_HEADER) else {
                stats.torn += 1;
                break;
            };
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let body = data.get(pos + RECORD_HEADER..pos + RECORD_HEADER + len);
            match body {
                Some(body) if len <= MAX_RECORD && crc32fast::hash(body) == crc => {
                    f(id, body);
                    stats.records += 1;
                    pos += RECORD_HEADER + len;
                }
                _ => {
                    tracing::warn!(
                        segment = id,
                        offset = pos,
                        "torn write-ahead log record ignored (never acknowledged)"
                    );
                    stats.torn += 1;
                    break;
                }
            }
        }
    }
    Ok(stats)
}

fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn create_segment(dir: &Path, id: u64) -> io::Result<BufWriter<File>> {
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, id))?;
    // Make the new name durable, or a crash could lose a segment whose records were synced.
    File::open(dir)?.sync_all()?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_intact_records_and_stops_at_a_torn_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path()).expect("open");
        wal.append(b"one").expect("append");
        wal.append(b"two").expect("append");
        wal.sync(true).expect("sync");
        let first = wal.rotate(true).expect("rotate");
        wal.append(b"three").expect("append");
        wal.sync(true).expect("sync");
        let second = wal.current_id();
        drop(wal);
        // A crash in the middle of a fourth record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(dir.path(), second))
            .expect("open");
        f.write_all(&[10, 0, 0, 0, 1, 2, 3, 4, b'x'])
            .expect("write");
        drop(f);

        let mut seen = Vec::new();
        let stats = replay(dir.path(), 0, |_, r| seen.push(r.to_vec())).expect("replay");
        assert_eq!(
            seen,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!((stats.records, stats.torn), (3, 1));

        let mut after = Vec::new();
        replay(dir.path(), first, |s, r| after.push((s, r.to_vec()))).expect("replay");
        assert_eq!(after, vec![(second, b"three".to_vec())]);

        // Reopening never appends to the torn segment.
        let wal = Wal::open(dir.path()).expect("reopen");
        assert_eq!(wal.current_id(), second + 1);
        wal.remove_through(second).expect("remove");
        assert_eq!(segments(dir.path()).expect("ls"), vec![second + 1]);
    }
}
