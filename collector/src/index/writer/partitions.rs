//! The writer's partitions: today's Tantivy writer, opened on the first batch of a day and
//! closed when the day changes; commits, which rotate the write-ahead log and name the
//! segment they cover; the index's size on disk; retention, applied after commits.
//!
//! # Invariants
//! - Only today's partition has a writer; a closed day finishes its merges on a thread of
//!   its own, and retention never drops it (nor today's) while it does.
//! - A commit's payload names the last log segment it covers; segments are deleted only up
//!   to the saved correlation state's (the log is replayed from there after a crash).

use std::time::Instant;

use tantivy::IndexWriter;

use super::{MERGE_SEGMENTS, RETENTION_EVERY, Writer};
use crate::index::partition::Day;
use crate::index::retention;

impl Writer {
    /// Today's writer, opening today's partition when nothing was indexed today yet.
    pub(super) fn writer(&mut self) -> anyhow::Result<&mut IndexWriter> {
        if self.current.is_none() {
            let day = (self.cfg.clock)().date_naive();
            // A day closed earlier (the clock went back) holds its lock until merged.
            for (_, t) in self.closing.extract_if(.., |(d, _)| *d == day) {
                let _ = t.join();
            }
            let p = self.parts.create(day)?;
            let w: IndexWriter = p
                .index
                .writer_with_num_threads(self.cfg.threads, self.cfg.memory_budget_bytes)?;
            let mut policy = tantivy::indexer::LogMergePolicy::default();
            policy.set_min_num_segments(MERGE_SEGMENTS);
            w.set_merge_policy(Box::new(policy));
            self.current = Some((day, w));
            self.metrics.index_partitions.set(self.parts.len() as i64);
        }
        match &mut self.current {
            Some((_, w)) => Ok(w),
            None => anyhow::bail!("no partition writer"),
        }
    }

    /// When the day has changed, commits the old day's partition and closes its writer.
    pub(super) fn roll_day(&mut self) -> anyhow::Result<()> {
        let today = (self.cfg.clock)().date_naive();
        if self.current.as_ref().is_some_and(|(day, _)| *day != today) {
            self.commit()?;
            if let Some((day, w)) = self.current.take() {
                tracing::info!(%day, %today, "index partition closed; a new day starts");
                // Its last merges run beside the new day's indexing.
                self.closing.retain(|(_, t)| !t.is_finished());
                self.closing
                    .push((day, std::thread::spawn(move || finish_merges(day, w))));
            }
        }
        Ok(())
    }

    /// Commits today's partition; returns the log segment the commit covers.
    pub(super) fn commit(&mut self) -> anyhow::Result<u64> {
        let start = std::time::Instant::now();
        let closed = self.wal.rotate(self.cfg.fsync)?;
        if let Some((day, w)) = &mut self.current {
            let mut prepared = w.prepare_commit()?;
            prepared.set_payload(&serde_json::json!({ "wal_through": closed }).to_string());
            prepared.commit()?;
            self.parts.refresh(*day)?;
        }
        self.pending.clear();
        // The log stays from the saved correlation state on (see `snapshot_through`).
        if self.detector.is_none() || !self.detect_dirty {
            self.snapshot_through = closed;
        } else if self.snapshot_due.is_none_or(|t| Instant::now() >= t) {
            self.snapshot(closed);
        }
        self.wal.remove_through(self.snapshot_through)?;
        self.uncommitted_docs = 0;
        self.commit_due = None;
        self.metrics.index_commits.inc();
        crate::metrics::Metrics::time(&self.metrics.index_commit_duration, start);
        self.metrics.index_docs.set(self.parts.num_docs() as i64);
        self.retention();
        self.disk_bytes(false);
        Ok(closed)
    }

    /// Sets `vigil_index_disk_bytes`: the partition being written is measured now, the
    /// others too when `all` (else as last measured).
    pub(super) fn disk_bytes(&mut self, all: bool) {
        let today = self.current.as_ref().map(|(d, _)| *d);
        let mut current = 0;
        let mut others = 0;
        let m = &self.metrics;
        if all {
            // Partitions retention dropped lose their series.
            m.index_partition_bytes.clear();
            m.index_partition_docs.clear();
        }
        for p in self.parts.all().iter() {
            let measured = if Some(p.day) == today {
                current = p.disk_bytes();
                current
            } else if all {
                let b = p.disk_bytes();
                others += b;
                b
            } else {
                continue;
            };
            let label = vec![("partition", p.day.to_string())];
            m.index_partition_bytes
                .get_or_create(&label)
                .set(measured as i64);
            m.index_partition_docs
                .get_or_create(&label)
                .set(p.reader.searcher().num_docs() as i64);
        }
        if all {
            self.other_bytes = others;
        }
        self.metrics
            .index_disk_bytes
            .set((self.other_bytes + current) as i64);
    }

    /// Drops the partitions the policy says are too old or too many; logs and counts each.
    /// A failure is logged and retried at the next pass: ingest goes on.
    fn retention(&mut self) {
        let now = (self.cfg.clock)();
        if self.next_retention.is_some_and(|t| now < t) {
            return;
        }
        self.next_retention = Some(now + RETENTION_EVERY);
        // The partition being written, and closed ones still merging, are left for later.
        let busy: Vec<Day> = self
            .current
            .iter()
            .map(|(d, _)| *d)
            .chain(
                self.closing
                    .iter()
                    .filter(|(_, t)| !t.is_finished())
                    .map(|(d, _)| *d),
            )
            .collect();
        let sizes: Vec<(Day, u64)> = self
            .parts
            .all()
            .iter()
            .map(|p| (p.day, p.disk_bytes()))
            .collect();
        for (day, reason) in retention::plan(&sizes, now.date_naive(), self.cfg.retention) {
            if busy.contains(&day) {
                continue;
            }
            match self.parts.remove(day) {
                Ok(Some((docs, bytes))) => {
                    tracing::info!(%day, reason = reason.as_str(), docs, bytes, "index partition dropped by retention");
                    self.metrics
                        .index_partitions_dropped
                        .get_or_create(&vec![("reason", reason.as_str().to_owned())])
                        .inc();
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(%day, error = %e, "index partition could not be dropped; retried at the next pass")
                }
            }
        }
        if let Some(max) = self.cfg.retention.max_bytes
            && let Some(&(day, bytes)) = sizes.last()
            && day == now.date_naive()
            && bytes > max
        {
            tracing::warn!(%day, bytes, max, "today's index partition alone is over index.retention_max_mb; it is kept");
        }
        self.metrics.index_partitions.set(self.parts.len() as i64);
        self.disk_bytes(true);
        self.metrics.index_docs.set(self.parts.num_docs() as i64);
    }
}

/// Waits for a closed partition's merges; their superseded files are deleted when done.
pub(super) fn finish_merges(day: Day, w: IndexWriter) {
    if let Err(e) = w.wait_merging_threads() {
        tracing::warn!(%day, error = %e, "index partition merges did not finish; its files stay as committed");
    }
}
