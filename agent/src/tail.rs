//! File source: tails the files that match the `[[file]]` globs, follows rotation, and
//! remembers where it was across restarts.
//!
//! Invariants:
//! - A file is known by its identity (device, inode) and by a fingerprint of its first bytes,
//!   not by its name. A renamed file (rotation by rename) is read to its end through the
//!   handle already open, for `rotate_wait` after its last new line; a new file at the old
//!   name is read from its start.
//! - A file that becomes shorter than the position, or whose first bytes change, was
//!   truncated in place (copytruncate): it is read again from the start. Lines written
//!   between the rotator's copy and its truncate are gone from the file before any tailer can
//!   read them; that window belongs to copytruncate itself.
//! - Only whole lines are sent (a line longer than `max_line_bytes` is cut there, flagged,
//!   and the rest of it skipped). A rotated file's last line without a newline is sent when
//!   the file is let go.
//! - Positions are saved (tmp file, fsync, rename) only after an [`Item::Sync`] has gone
//!   through the batcher, so a saved position never runs ahead of the spool. After a clean
//!   stop nothing is lost or read twice; after a crash the lines since the last save (about a
//!   second) are read again: at least once, never lost.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use vigil_schema::{Event, fields};

use crate::batcher::Item;
use crate::config::{AgentConfig, FileConfig, StartAt};
use crate::metrics::{Metrics, listener_label};
use crate::syslog::parse::{Origin, text, to_event};

/// Name of the positions file in the spool directory.
pub const POSITIONS_FILE: &str = "file-positions.json";
/// Bytes of a file's start that identify it beside its inode.
const FINGERPRINT_BYTES: u64 = 256;
/// Positions are saved at most this often while lines flow (and always at shutdown).
const SAVE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// What identifies a file's content: the CRC of its first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Fingerprint {
    len: u64,
    crc: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    id: FileId,
    path: PathBuf,
    offset: u64,
    fingerprint: Fingerprint,
}

struct Tailed {
    path: PathBuf,
    file: File,
    /// Bytes consumed: everything before it was sent (or skipped as the rest of a long line).
    offset: u64,
    fingerprint: Fingerprint,
    /// Inside an overlong line whose first part was sent: drop bytes up to the newline.
    skipping: bool,
    /// Index of the `[[file]]` section whose globs matched it.
    source: usize,
    /// No longer matched by any glob (renamed away or deleted): read for `rotate_wait` more.
    gone_since: Option<Instant>,
    last_data: Instant,
}

struct Counters {
    received: Counter,
    malformed: Counter,
    truncated: Counter,
}

/// Tails until `shutdown`, then saves the positions of what reached the spool. Blocking:
/// run it on a thread of its own (`spawn_blocking`).
pub fn run(
    agent: AgentConfig,
    tx: mpsc::Sender<Item>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut t = Tailer::new(agent, tx, &metrics);
    let poll = t.poll_interval();
    let mut first = true;
    let mut last_save = Instant::now();
    let mut unsaved = false;
    while !shutdown.is_cancelled() {
        unsaved |= t.poll(first);
        first = false;
        if unsaved && last_save.elapsed() >= SAVE_EVERY {
            if !t.save() {
                return;
            }
            unsaved = false;
            last_save = Instant::now();
        }
        // Short sleeps, so a shutdown is seen quickly.
        let until = Instant::now() + poll;
        while Instant::now() < until && !shutdown.is_cancelled() {
            std::thread::sleep(poll.min(Duration::from_millis(50)));
        }
    }
    t.save();
}

struct Tailer {
    agent: AgentConfig,
    host: String,
    tx: mpsc::Sender<Item>,
    counters: Counters,
    files: HashMap<FileId, Tailed>,
    /// Positions read at start, used once per file.
    saved: HashMap<FileId, Saved>,
    positions: PathBuf,
}

impl Tailer {
    fn new(agent: AgentConfig, tx: mpsc::Sender<Item>, metrics: &Metrics) -> Tailer {
        let l = listener_label("file");
        let positions = agent.spool.dir.join(POSITIONS_FILE);
        let saved = load_positions(&positions);
        Tailer {
            host: crate::config::hostname(),
            counters: Counters {
                received: metrics.events_received.get_or_create(&l).clone(),
                malformed: metrics.syslog_malformed.get_or_create(&l).clone(),
                truncated: metrics.syslog_truncated.get_or_create(&l).clone(),
            },
            agent,
            tx,
            files: HashMap::new(),
            saved,
            positions,
        }
    }

    fn poll_interval(&self) -> Duration {
        self.agent
            .file
            .iter()
            .map(|f| f.poll_interval)
            .min()
            .unwrap_or(Duration::from_millis(250))
    }

    /// One round: find files, read what is new. Returns whether anything was sent.
    fn poll(&mut self, first: bool) -> bool {
        let found = self.scan();
        for (id, (path, source)) in &found {
            match self.files.get_mut(id) {
                Some(t) => {
                    t.path.clone_from(path);
                    t.gone_since = None;
                }
                None => {
                    if let Some(t) = self.open(*id, path, *source, first) {
                        self.files.insert(*id, t);
                    }
                }
            }
        }
        if first {
            self.find_rotated_while_stopped();
        }
        let now = Instant::now();
        for (id, t) in &mut self.files {
            if !found.contains_key(id) && t.gone_since.is_none() {
                t.gone_since = Some(now);
            }
        }
        let mut sent = false;
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            let Some(mut t) = self.files.remove(&id) else {
                continue;
            };
            match self.read_new(&mut t) {
                Ok(n) => {
                    sent |= n > 0;
                    if n > 0 {
                        t.last_data = Instant::now();
                    }
                }
                Err(e) => {
                    tracing::warn!(file = %t.path.display(), error = %e, "cannot read file");
                }
            }
            let cfg = &self.agent.file[t.source];
            let let_go = t
                .gone_since
                .is_some_and(|_| t.last_data.elapsed() >= cfg.rotate_wait);
            if let_go {
                sent |= self.finish(&mut t);
                tracing::debug!(file = %t.path.display(), "rotated file read to its end");
            } else {
                self.files.insert(id, t);
            }
        }
        sent
    }

    /// Every file the globs match now, by identity (the first section that matches wins).
    fn scan(&self) -> HashMap<FileId, (PathBuf, usize)> {
        let mut found = HashMap::new();
        for (i, cfg) in self.agent.file.iter().enumerate() {
            for pattern in &cfg.paths {
                let Ok(paths) = glob::glob(pattern) else {
                    continue;
                };
                for path in paths.flatten() {
                    if let Ok(m) = std::fs::metadata(&path)
                        && m.is_file()
                    {
                        found.entry(id_of(&m)).or_insert((path, i));
                    }
                }
            }
        }
        found
    }

    fn open(&mut self, id: FileId, path: &Path, source: usize, first: bool) -> Option<Tailed> {
        let file = File::open(path)
            .inspect_err(|e| tracing::warn!(file = %path.display(), error = %e, "cannot open"))
            .ok()?;
        let size = file.metadata().ok()?.len();
        let fingerprint = fingerprint(&file, FINGERPRINT_BYTES.min(size)).ok()?;
        let resumed = self.saved.remove(&id).filter(|s| {
            s.offset <= size && fingerprint_of_prefix(&file, s.fingerprint).unwrap_or(false)
        });
        let offset = match resumed {
            Some(s) => s.offset,
            // A file that was not at this path when positions were saved, or appeared since
            // the agent started, is new: all of it is unread.
            None if first && !self.saved.values().any(|s| s.path == path) => {
                match self.agent.file[source].start_at {
                    StartAt::Beginning => 0,
                    StartAt::End => size,
                }
            }
            None => 0,
        };
        tracing::info!(file = %path.display(), offset, "tailing");
        Some(Tailed {
            path: path.to_owned(),
            file,
            offset,
            fingerprint,
            skipping: false,
            source,
            gone_since: None,
            last_data: Instant::now(),
        })
    }

    /// A file with a saved position that no glob matches now was rotated while the agent
    /// was stopped: look for it beside its old name and read the rest of it.
    fn find_rotated_while_stopped(&mut self) {
        let saved: Vec<Saved> = self.saved.drain().map(|(_, s)| s).collect();
        for s in saved {
            let Some(dir) = s.path.parent() else { continue };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let Some(path) = entries
                .flatten()
                .map(|e| e.path())
                .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && id_of(&m) == s.id))
            else {
                continue;
            };
            let source = self
                .agent
                .file
                .iter()
                .position(|f| f.paths.iter().any(|g| glob_matches(g, &s.path)))
                .unwrap_or(0);
            self.saved.insert(s.id, s.clone());
            if let Some(mut t) = self.open(s.id, &path, source, false) {
                t.gone_since = Some(Instant::now());
                self.files.insert(s.id, t);
            }
        }
        self.saved.clear();
    }

    /// Sends every whole line after the position; returns how many.
    fn read_new(&self, t: &mut Tailed) -> io::Result<usize> {
        let size = t.file.metadata()?.len();
        let same_start = fingerprint_of_prefix(&t.file, t.fingerprint)?;
        if size < t.offset || !same_start {
            tracing::info!(file = %t.path.display(), "file truncated in place; reading it from the start");
            t.offset = 0;
            t.skipping = false;
            t.fingerprint = Fingerprint::default();
        }
        if t.fingerprint.len < FINGERPRINT_BYTES.min(size) {
            t.fingerprint = fingerprint(&t.file, FINGERPRINT_BYTES.min(size))?;
        }
        if size == t.offset {
            return Ok(0);
        }
        let max = self.agent.file[t.source].max_line_bytes;
        let mut file = &t.file;
        file.seek(SeekFrom::Start(t.offset))?;
        let mut r = BufReader::with_capacity(64 * 1024, file.take(size - t.offset));
        let mut line = Vec::with_capacity(256);
        let mut sent = 0;
        loop {
            let Read1 { used, whole, cut } = read_line(&mut r, &mut line, max)?;
            if used == 0 || !(whole || cut) {
                break; // the writer is mid-line: wait for the rest
            }
            t.offset += used as u64;
            if std::mem::replace(&mut t.skipping, !whole) {
                continue; // the rest of a long line whose start was sent
            }
            if !self.send(t, &line, cut) {
                break;
            }
            sent += 1;
        }
        Ok(sent)
    }

    /// Sends the last line of a file that is let go even if it has no newline.
    fn finish(&self, t: &mut Tailed) -> bool {
        let mut rest = Vec::new();
        let mut file = &t.file;
        let read = file.seek(SeekFrom::Start(t.offset)).and_then(|_| {
            file.take(self.agent.file[t.source].max_line_bytes as u64)
                .read_to_end(&mut rest)
        });
        if read.is_err() || t.skipping {
            return false;
        }
        while rest.last() == Some(&b'\r') {
            rest.pop();
        }
        !rest.is_empty() && self.send(t, &rest, false)
    }

    fn send(&self, t: &Tailed, line: &[u8], truncated: bool) -> bool {
        let cfg: &FileConfig = &self.agent.file[t.source];
        let text = text(line);
        let customer = cfg.customer.as_deref().or(self.agent.customer.as_deref());
        let origin = Origin {
            agent_id: &self.agent.id,
            agent_name: &self.agent.name,
            customer,
            peer: None,
            received: Utc::now(),
            truncated,
            tz: self.agent.zone(cfg.timezone, customer),
        };
        let (mut ev, parsed): (Event, bool) = to_event(&text, &origin);
        ev.set_str(fields::LOG_FILE_PATH, t.path.to_string_lossy());
        if ev.get(fields::HOST_NAME).is_none() {
            ev.set_str(fields::HOST_NAME, &self.host);
        }
        self.counters.received.inc();
        if !parsed {
            self.counters.malformed.inc();
        }
        if truncated {
            self.counters.truncated.inc();
        }
        self.tx.blocking_send(ev.into()).is_ok()
    }

    /// Waits until everything sent is in the spool, then saves the positions. False when the
    /// batcher is gone (the agent is stopping without it).
    fn save(&self) -> bool {
        let (done, spooled) = oneshot::channel();
        if self.tx.blocking_send(Item::Sync(done)).is_err() || spooled.blocking_recv().is_err() {
            tracing::warn!("file positions not saved: the batcher has stopped");
            return false;
        }
        let saved: Vec<Saved> = self
            .files
            .iter()
            .map(|(id, t)| Saved {
                id: *id,
                path: t.path.clone(),
                offset: t.offset,
                fingerprint: t.fingerprint,
            })
            .collect();
        if let Err(e) = write_atomically(&self.positions, &saved) {
            tracing::warn!(file = %self.positions.display(), error = %e, "cannot save file positions");
        }
        true
    }
}

/// What [`read_line`] consumed.
#[derive(Debug, PartialEq, Eq)]
struct Read1 {
    /// Bytes consumed from the file.
    used: usize,
    /// A newline ended the line.
    whole: bool,
    /// The line was longer than `max` and was cut.
    cut: bool,
}

/// Reads up to and including `\n`, keeping at most `max` bytes of the line (without the
/// newline and a `\r` before it); the bytes past `max` are consumed and dropped. At the end
/// of the input without a newline, `whole` is false: a cut line is sent anyway (the caller
/// skips the rest of it when it comes), an uncut one is left for the writer to finish.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<Read1> {
    line.clear();
    let mut used = 0;
    let mut cut = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(Read1 {
                used,
                whole: false,
                cut,
            });
        }
        let (chunk, n, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = max.saturating_sub(line.len()).min(chunk.len());
        cut |= room < chunk.len() && !(done && chunk[room..] == [b'\r']);
        line.extend_from_slice(&chunk[..room]);
        r.consume(n);
        used += n;
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Read1 {
                used,
                whole: true,
                cut,
            });
        }
    }
}

fn id_of(m: &std::fs::Metadata) -> FileId {
    FileId {
        dev: m.dev(),
        ino: m.ino(),
    }
}

fn fingerprint(file: &File, len: u64) -> io::Result<Fingerprint> {
    let mut buf = vec![0u8; len as usize];
    let mut f = file;
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut buf)?;
    Ok(Fingerprint {
        len,
        crc: crc32fast::hash(&buf),
    })
}

/// Whether the file still starts with the bytes `fp` was taken from.
fn fingerprint_of_prefix(file: &File, fp: Fingerprint) -> io::Result<bool> {
    if file.metadata()?.len() < fp.len {
        return Ok(false);
    }
    Ok(fingerprint(file, fp.len)? == fp)
}

fn glob_matches(pattern: &str, path: &Path) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches_path(path))
}

fn load_positions(path: &Path) -> HashMap<FileId, Saved> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    match serde_json::from_str::<Vec<Saved>>(&text) {
        Ok(v) => v.into_iter().map(|s| (s.id, s)).collect(),
        Err(e) => {
            // A damaged positions file costs re-reading from `start_at`, not the agent.
            tracing::warn!(file = %path.display(), error = %e, "file positions unreadable; ignored");
            HashMap::new()
        }
    }
}

fn write_atomically(path: &Path, saved: &[Saved]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(saved).map_err(io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_whole_or_cut_at_max() {
        let read = |used, whole, cut| Read1 { used, whole, cut };
        // A small buffer, so long lines span several reads.
        let mut r = BufReader::with_capacity(
            4,
            &b"exactly8\nshort\r\nthis one is long\nthis one is cut at the end"[..],
        );
        let mut line = Vec::new();
        let mut next = |line: &mut Vec<u8>| read_line(&mut r, line, 8).expect("read");
        assert_eq!(next(&mut line), read(9, true, false));
        assert_eq!(line, b"exactly8");
        assert_eq!(next(&mut line), read(7, true, false));
        assert_eq!(line, b"short");
        assert_eq!(next(&mut line), read(17, true, true));
        assert_eq!(line, b"this one");
        // No newline yet, but already too long: sent cut, the rest skipped when it comes.
        assert_eq!(next(&mut line), read(26, false, true));
        assert_eq!(line, b"this one");
        assert_eq!(next(&mut line), read(0, false, false));
        let mut r = BufReader::new(&b"partial"[..]);
        // No newline yet and short: left for the writer to finish.
        assert_eq!(
            read_line(&mut r, &mut line, 8).expect("read"),
            read(7, false, false)
        );
    }
}
