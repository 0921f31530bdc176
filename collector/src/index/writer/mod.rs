//! The one thread that writes: it deduplicates batches, appends them to the write-ahead
//! log, acknowledges them once fsynced, enriches them, runs detection and hands the alerts
//! to the incident queue, and indexes them; [`partitions`] commits the index, rolls the day
//! and applies retention.
//!
//! # Invariants
//! - A batch is acknowledged (`Accepted` or `Duplicate`) only when it is durable: its WAL
//!   record is fsynced, or it is in a committed index.
//! - A batch id is in the WAL at most once and in the index at most once: before a batch is
//!   appended, its id is looked up among the WAL records not yet committed (`pending`) and
//!   in the committed index. One thread does all of this, so there is no race between the
//!   check and the append.
//! - Requests are handled in groups: one fsync acknowledges every batch of the group.
//! - A commit first rotates the WAL, then commits the index with the closed segment's id as
//!   payload, then deletes the covered segments. A crash between any two steps leaves
//!   either the segments (replayed, deduplicated by `pending`) or the commit.
//! - Only today's partition (by the writer's clock) has a writer, so every uncommitted
//!   document is in it. When the day changes, the old day is committed and its writer
//!   closed before any batch of the new day is appended to the WAL. Replay therefore starts
//!   after the newest commit of any partition and goes into today's partition.
//! - Retention runs after commits (at most once a minute) and never drops the partition
//!   that has a writer, nor a closed one still finishing its merges (on its own thread).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use vigil_schema::Batch;

mod partitions;

use partitions::finish_merges;

use super::IndexSchema;
use super::partition::{Day, Partition, Partitions};
use super::retention::Policy;
use crate::detect::Detector;
use crate::metrics::Metrics;
use crate::wal::{self, Wal};

/// Most requests handled under one fsync.
const GROUP_MAX: usize = 256;
/// Commit early when this many documents wait, whatever the interval.
const COMMIT_DOCS: usize = 500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted { events: usize },
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("storage failure: {0}")]
    Storage(String),
}

pub struct IngestRequest {
    pub batch: Batch,
    pub frame: Bytes,
    pub reply: oneshot::Sender<Result<Outcome, WriterError>>,
}

/// The agent id of the events the collector writes itself (watched CAP alerts, state
/// changes).
pub const SELF_AGENT: &str = "vigil";

/// Writes events the collector makes itself through the same path as agents' batches (the
/// write-ahead log, detection, the index); returns once they are durable.
pub async fn write_own(
    ingest: &mpsc::Sender<Msg>,
    events: Vec<vigil_schema::Event>,
) -> Result<(), WriterError> {
    let stopped = || WriterError::Storage("the index writer is not running".into());
    let batch = Batch {
        batch_id: Uuid::now_v7(),
        agent_id: SELF_AGENT.into(),
        seq: 0,
        events,
    };
    let frame = Bytes::from(batch.encode());
    let (reply, answer) = oneshot::channel();
    ingest
        .send(Msg::Ingest(IngestRequest {
            batch,
            frame,
            reply,
        }))
        .await
        .map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?.map(|_| ())
}

/// A change to the detection stage, run on the writer thread between batches.
pub type DetectChange = Box<dyn FnOnce(&mut Option<Detector>) + Send>;

pub enum Msg {
    Ingest(IngestRequest),
    /// Swap the detection engine (rule reload); answered once it is in place.
    Detect(DetectChange, oneshot::Sender<()>),
    /// Commit what is pending and stop; answered once done.
    Shutdown(oneshot::Sender<()>),
}

/// The writer's notion of now: the day of arrival and retention follow it (tests drive it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Segments of one size that make a merge. Commits every second make many small segments;
/// merging them in larger groups than Tantivy's 8 merges each document fewer times.
const MERGE_SEGMENTS: usize = 16;

/// How often retention looks at the partitions.
const RETENTION_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Clone)]
pub struct WriterConfig {
    pub wal_dir: PathBuf,
    pub commit_interval: Duration,
    pub fsync: bool,
    pub memory_budget_bytes: usize,
    pub threads: usize,
    /// Where the correlation state is saved (at shutdown, and at commits).
    pub detect_state: PathBuf,
    /// Least time between two saves of the correlation state at commits.
    pub snapshot_interval: Duration,
    pub retention: Policy,
    pub clock: Clock,
    /// Where alerts go before their batch is indexed.
    pub incidents: Option<crate::incidents::Queue>,
}

struct Writer {
    parts: Partitions,
    /// Today's partition and its writer, once something was indexed today.
    current: Option<(Day, IndexWriter)>,
    /// Writers of closed days, finishing their merges.
    closing: Vec<(Day, std::thread::JoinHandle<()>)>,
    next_retention: Option<DateTime<Utc>>,
    /// Bytes on disk of the partitions other than the one being written, as of the last
    /// full count (at start and at each retention pass); the one being written is counted
    /// at each commit.
    other_bytes: u64,
    /// The write-ahead-log segment the saved correlation state is as of; the log is kept
    /// after it, so a crash replays what the saved state lacks.
    snapshot_through: u64,
    snapshot_due: Option<Instant>,
    /// Events went through detection since the state was last saved.
    detect_dirty: bool,
    wal: Wal,
    pending: HashSet<Uuid>,
    uncommitted_docs: usize,
    commit_due: Option<Instant>,
    cfg: WriterConfig,
    metrics: Arc<Metrics>,
    detector: Option<Detector>,
}

/// Opens the writer, replays the write-ahead log into the index and commits, then starts
/// the writer thread. Blocks (replay) until the index holds every acknowledged batch.
/// Returns the channel to the thread and its handle; searches see each commit through `parts`.
pub fn start(
    parts: Partitions,
    cfg: WriterConfig,
    metrics: Arc<Metrics>,
    detector: Option<Detector>,
    healthy: Arc<AtomicBool>,
    rt: Handle,
) -> anyhow::Result<(mpsc::Sender<Msg>, std::thread::JoinHandle<()>)> {
    let mut committed_through = 0;
    for p in parts.all() {
        committed_through = committed_through.max(p.wal_through()?);
    }
    let mut detector = detector;
    let restored = detector
        .as_mut()
        .and_then(|d| d.restore(&cfg.detect_state))
        .map(|through| through.min(committed_through));
    let mut w = Writer {
        parts,
        current: None,
        closing: Vec::new(),
        next_retention: None,
        other_bytes: 0,
        snapshot_through: 0,
        snapshot_due: None,
        detect_dirty: false,
        wal: Wal::open(&cfg.wal_dir)?,
        pending: HashSet::new(),
        uncommitted_docs: 0,
        commit_due: None,
        cfg,
        metrics,
        detector,
    };
    w.replay(committed_through, restored)?;
    w.disk_bytes(true);
    let (tx, rx) = mpsc::channel(64);
    let handle = std::thread::Builder::new()
        .name("index-writer".into())
        .spawn(move || {
            if let Err(e) = w.run(rx, &rt) {
                tracing::error!(error = %e, "index writer stopped on an error; ingest is refused until restart (nothing acknowledged is lost: it is in the write-ahead log)");
            }
            healthy.store(false, Ordering::SeqCst);
        })?;
    Ok((tx, handle))
}

/// Whether batch `id` is in a committed partition. A batch is indexed on or after the day
/// its (time-ordered) id was made, so older partitions are not looked at (a day of slack
/// covers an agent whose clock is ahead); the two newest always are, for an agent whose clock
/// is far ahead.
fn committed(parts: &[Partition], schema: &IndexSchema, id: &Uuid) -> tantivy::Result<bool> {
    let made = id.get_timestamp().and_then(|ts| {
        let (s, _) = ts.to_unix();
        DateTime::from_timestamp(s as i64, 0)
    });
    let since = made.map_or(Day::MIN, |t| t.date_naive() - chrono::Days::new(1));
    let term = schema.batch_term(id);
    for (i, p) in parts.iter().rev().enumerate() {
        if i >= 2 && p.day < since {
            break;
        }
        if p.reader.searcher().doc_freq(&term)? > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Writer {
    /// Indexes what the log holds beyond the last commit. With a saved correlation state as of
    /// segment `restored`, the committed batches after it go through detection once more
    /// (their alerts are already indexed and are not raised again), so the state is whole.
    fn replay(&mut self, committed_through: u64, restored: Option<u64>) -> anyhow::Result<()> {
        let mut batches = Vec::new();
        let stats = wal::replay(
            &self.cfg.wal_dir,
            restored.unwrap_or(committed_through),
            |segment, frame| match Batch::decode(frame) {
                Ok(b) => batches.push((segment, b)),
                // The frame was validated before it was appended; this is disk damage.
                Err(e) => tracing::error!(error = %e, "undecodable write-ahead log record skipped"),
            },
        )?;
        let parts = self.parts.all();
        let mut redetected = 0;
        for (segment, b) in batches {
            if segment <= committed_through
                || self.pending.contains(&b.batch_id)
                || committed(&parts, self.parts.schema(), &b.batch_id)?
            {
                if let Some(d) = &mut self.detector {
                    let b = crate::ingest::enrich(b);
                    d.process(&b.events, &b.batch_id);
                    redetected += 1;
                    self.metrics.detect_replayed_batches.inc();
                }
                continue;
            }
            self.pending.insert(b.batch_id);
            self.index(b)?;
            self.metrics.wal_replayed_batches.inc();
        }
        if stats.records > 0 {
            tracing::info!(
                segments = stats.segments,
                records = stats.records,
                torn = stats.torn,
                redetected,
                "write-ahead log replayed"
            );
        }
        self.snapshot_through = restored.unwrap_or(committed_through);
        // Whatever was replayed, the state is saved at this first commit.
        self.detect_dirty = self.detector.is_some();
        self.commit().map(|_| ())
    }

    fn run(&mut self, mut rx: mpsc::Receiver<Msg>, rt: &Handle) -> anyhow::Result<()> {
        let mut group = Vec::with_capacity(GROUP_MAX);
        loop {
            let wait = self.commit_due.map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(Instant::now())
            });
            let first = rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            match first {
                Err(_) => {
                    self.roll_day()?;
                    self.commit()?;
                    continue;
                }
                Ok(None) => return self.commit().map(|_| ()),
                Ok(Some(Msg::Shutdown(done))) => {
                    self.shutdown()?;
                    let _ = done.send(());
                    return Ok(());
                }
                Ok(Some(Msg::Ingest(req))) => group.push(req),
                Ok(Some(Msg::Detect(change, done))) => {
                    change(&mut self.detector);
                    self.detect_dirty = true;
                    let _ = done.send(());
                    continue;
                }
            }
            let mut shutdown = None;
            while group.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(Msg::Ingest(req)) => group.push(req),
                    Ok(Msg::Shutdown(done)) => {
                        shutdown = Some(done);
                        break;
                    }
                    Ok(Msg::Detect(change, done)) => {
                        change(&mut self.detector);
                        self.detect_dirty = true;
                        let _ = done.send(());
                    }
                    Err(_) => break,
                }
            }
            self.handle_group(&mut group)?;
            if let Some(done) = shutdown {
                self.shutdown()?;
                let _ = done.send(());
                return Ok(());
            }
            if self.uncommitted_docs >= COMMIT_DOCS
                || self.commit_due.is_some_and(|t| t <= Instant::now())
            {
                self.commit()?;
            }
        }
    }

    fn handle_group(&mut self, group: &mut Vec<IngestRequest>) -> anyhow::Result<()> {
        // Before anything of this group is in the WAL, so the new day's commit covers it.
        self.roll_day()?;
        let parts = self.parts.all();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut appended = false;
        for req in group.iter() {
            let id = req.batch.batch_id;
            if req.batch.events.is_empty() {
                outcomes.push(Outcome::Accepted { events: 0 });
                continue;
            }
            if self.pending.contains(&id) || committed(&parts, self.parts.schema(), &id)? {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            if let Err(e) = self.wal.append(&req.frame) {
                return Err(self.fail(group, e.into()));
            }
            self.metrics.wal_bytes.inc_by(req.frame.len() as u64);
            self.pending.insert(id);
            appended = true;
            outcomes.push(Outcome::Accepted {
                events: req.batch.events.len(),
            });
        }
        if appended {
            if let Err(e) = self.wal.sync(self.cfg.fsync) {
                return Err(self.fail(group, e.into()));
            }
            self.metrics.wal_syncs.inc();
        }
        let mut to_index = Vec::new();
        for (req, outcome) in group.drain(..).zip(outcomes) {
            if let Outcome::Accepted { .. } = outcome {
                to_index.push(req.batch);
            }
            let _ = req.reply.send(Ok(outcome));
        }
        for b in to_index {
            self.index(b)?;
        }
        Ok(())
    }

    /// Answers every request of the group with the error; the caller stops the thread.
    fn fail(&self, group: &mut Vec<IngestRequest>, e: anyhow::Error) -> anyhow::Error {
        for req in group.drain(..) {
            let _ = req.reply.send(Err(WriterError::Storage(e.to_string())));
        }
        e
    }

    /// Indexes a batch and the alerts its events raise (under the same batch id, so they
    /// commit, deduplicate and replay together), once the incident queue has the alerts:
    /// blocks while the incident database refuses them.
    fn index(&mut self, b: Batch) -> anyhow::Result<()> {
        let b = crate::ingest::enrich(b);
        let alerts = match &mut self.detector {
            Some(d) => {
                self.detect_dirty = true;
                d.process(&b.events, &b.batch_id)
            }
            None => Vec::new(),
        };
        if let Some(q) = &self.cfg.incidents {
            q.hand(&alerts);
        }
        self.uncommitted_docs += b.events.len() + alerts.len();
        let schema = self.parts.schema().clone();
        let w = self.writer()?;
        for (e, at) in b.events.iter().zip(&b.times) {
            w.add_document(schema.document(e, *at, &b.batch_id))?;
        }
        for a in &alerts {
            let at = a.timestamp().unwrap_or_default();
            w.add_document(schema.document(a, at, &b.batch_id))?;
        }
        if self.commit_due.is_none() {
            self.commit_due = Some(Instant::now() + self.cfg.commit_interval);
        }
        Ok(())
    }

    /// Commits, saves the correlation state, and lets the partition's merges finish (so its
    /// superseded files are gone).
    fn shutdown(&mut self) -> anyhow::Result<()> {
        let closed = self.commit()?;
        if let Some((day, w)) = self.current.take() {
            self.closing
                .push((day, std::thread::spawn(move || finish_merges(day, w))));
        }
        if self.detect_dirty {
            self.snapshot(closed);
            self.wal.remove_through(self.snapshot_through)?;
        }
        for (_, t) in self.closing.drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    /// Saves the correlation state as of log segment `closed`. A failure is logged, and the
    /// log is kept from the previous save on.
    fn snapshot(&mut self, closed: u64) {
        let Some(d) = &self.detector else {
            return;
        };
        match d.save(&self.cfg.detect_state, closed) {
            Ok(()) => {
                self.snapshot_through = closed;
                self.detect_dirty = false;
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %self.cfg.detect_state.display(), "correlation state not saved; the write-ahead log is kept until it is");
            }
        }
        self.snapshot_due = Some(Instant::now() + self.cfg.snapshot_interval);
    }
}

/// A reader that only moves when the writer says so (after each commit).
pub fn reader(index: &Index) -> tantivy::Result<IndexReader> {
    index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
}

pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}
