//! Turns the stream of events from all sources into batches (by count, by size, by time)
//! and writes each one to the spool.
//!
//! Events arrive encoded by their sources ([`binary::Writer`]); a batch is bytes, not
//! events, and batching is appending.
//!
//! The batcher fills the next batch while the last one is compressed and synced, and waits
//! for that write before it starts another: a slow disk slows the channel down and, through
//! it, the TCP senders (UDP sources count their drops).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;
use vigil_schema::{Event, binary, wire};

use crate::config::BatchConfig;
use crate::spare::Spare;
use crate::spool::Spool;

/// What sources put on the batcher's channel.
#[derive(Debug)]
pub enum Item {
    /// Events their source has encoded (one, or several at once: the flows of a datagram,
    /// the messages of one read from a connection). Sources encode on their own threads, so
    /// the batcher only appends bytes, and an event is freed by the thread that built it
    /// (freeing on the batcher's thread left the sources' allocator with pages it could not
    /// reuse: fresh memory, and a page fault, for every few events).
    Encoded(binary::Writer),
    /// Answered once every event sent before it is in the spool: the checkpoint of sources
    /// that remember a position (the file tailer saves its offsets only then).
    Sync(oneshot::Sender<()>),
}

impl From<Event> for Item {
    fn from(ev: Event) -> Self {
        let mut one = binary::Writer::with_capacity(512);
        one.push(&ev);
        Item::Encoded(one)
    }
}

/// Writers the batcher has emptied, for sources to fill again (none larger than
/// [`SPARE_BYTES`]): the batcher frees items on another thread than the one that filled them.
static SPARE: Spare<binary::Writer> = Spare::new(64);
const SPARE_BYTES: usize = 256 * 1024;

/// An empty writer for an item: one the batcher gave back, else a new one of `capacity`
/// bytes.
pub fn writer(capacity: usize) -> binary::Writer {
    SPARE
        .take()
        .unwrap_or_else(|| binary::Writer::with_capacity(capacity))
}

fn give_back(mut w: binary::Writer) {
    if w.capacity() <= SPARE_BYTES {
        w.clear();
        SPARE.give(w);
    }
}

/// Runs until every sender of `rx` is gone, then writes what it holds and returns.
pub async fn run(
    mut rx: mpsc::Receiver<Item>,
    spool: Arc<Spool>,
    cfg: BatchConfig,
    agent_id: String,
) -> anyhow::Result<()> {
    // Sized for a whole batch (up to a point), so that it does not grow by copying.
    let capacity = cfg.max_bytes.min(64 << 20) + 64 * 1024;
    let (max_events, max_bytes) = (cfg.max_events as u64, cfg.max_bytes);
    let mut batch = binary::Writer::with_capacity(capacity);
    let mut writes = Writes {
        spool,
        agent_id: agent_id.into(),
        capacity,
        running: None,
        spare: None,
    };
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(Item::Encoded(events)) => {
                    // Events that would take the batch over a bound start the next one;
                    // only a batch of one item can be over (sources keep items small).
                    if batch.count() > 0
                        && (batch.count() + events.count() > max_events
                            || batch.size() + events.size() > max_bytes)
                    {
                        writes.start(&mut batch).await?;
                    }
                    if batch.count() == 0 {
                        deadline = Some(Instant::now() + cfg.max_wait);
                    }
                    batch.append(&events);
                    give_back(events);
                    if batch.count() >= max_events || batch.size() >= max_bytes {
                        writes.start(&mut batch).await?;
                    }
                }
                Some(Item::Sync(done)) => {
                    writes.start(&mut batch).await?;
                    writes.finish().await?;
                    let _ = done.send(());
                }
                None => break,
            },
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                writes.start(&mut batch).await?;
            }
        }
        if batch.count() == 0 {
            deadline = None;
        }
    }
    writes.start(&mut batch).await?;
    writes.finish().await
}

/// Batches on their way to the spool. Compressing and syncing one batch overlaps with
/// filling the next; at most one is on its way, so batches reach the spool in order and the
/// memory held is one batch more. The buffer of the batch written and zstd's context come
/// back for the next batch: fresh megabytes for each batch cost more in page faults than
/// compressing did.
struct Writes {
    spool: Arc<Spool>,
    agent_id: Arc<str>,
    capacity: usize,
    running: Option<JoinHandle<Written>>,
    spare: Option<(binary::Writer, wire::Compressor)>,
}

/// A finished write, and what it lends back.
type Written = (std::io::Result<()>, binary::Writer, wire::Compressor);

impl Writes {
    /// Starts writing `batch` (and empties it) once the previous batch is in the spool.
    async fn start(&mut self, batch: &mut binary::Writer) -> anyhow::Result<()> {
        if batch.count() == 0 {
            return Ok(());
        }
        self.finish().await?;
        let (next, mut zstd) = self.spare.take().unwrap_or_else(|| {
            (
                binary::Writer::with_capacity(self.capacity),
                wire::Compressor::new(),
            )
        });
        let events = std::mem::replace(batch, next);
        let (spool, agent_id) = (self.spool.clone(), self.agent_id.clone());
        let seq = spool.next_seq();
        // Compression and the fsync are blocking work: off the async workers.
        self.running = Some(tokio::task::spawn_blocking(move || {
            let frame = zstd.encode(&events, Uuid::now_v7(), &agent_id, seq);
            (spool.append(seq, events.count(), &frame), events, zstd)
        }));
        Ok(())
    }

    /// Waits until every batch started is in the spool.
    async fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(running) = self.running.take() {
            let (written, mut events, zstd) = running.await?;
            events.clear();
            self.spare = Some((events, zstd));
            written?;
        }
        Ok(())
    }
}
