//! Turns the stream of events from all sources into batches (by count, by size, by time)
//! and writes each one to the spool.
//!
//! An event is encoded as soon as it arrives (the batch is bytes, not events): see
//! [`binary::Writer`].
//!
//! The batcher awaits each spool write before it reads more events, so a slow disk slows
//! the channel down and, through it, the TCP senders (UDP sources count their drops).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;
use vigil_schema::{Event, binary, wire};

use crate::config::BatchConfig;
use crate::spool::Spool;

/// What sources put on the batcher's channel.
#[derive(Debug)]
pub enum Item {
    Event(Event),
    /// Several events at once (all the flows of a datagram): one send instead of one each.
    Events(Vec<Event>),
    /// Answered once every event sent before it is in the spool: the checkpoint of sources
    /// that remember a position (the file tailer saves its offsets only then).
    Sync(oneshot::Sender<()>),
}

impl From<Event> for Item {
    fn from(ev: Event) -> Self {
        Item::Event(ev)
    }
}

/// Runs until every sender of `rx` is gone, then writes what it holds and returns.
pub async fn run(
    mut rx: mpsc::Receiver<Item>,
    spool: Arc<Spool>,
    cfg: BatchConfig,
    agent_id: String,
) -> anyhow::Result<()> {
    let agent_id: Arc<str> = agent_id.into();
    // Sized for a whole batch (up to a point), so that it does not grow by copying.
    let capacity = cfg.max_bytes.min(64 << 20) + 64 * 1024;
    let mut batch = binary::Writer::with_capacity(capacity);
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            item = rx.recv() => {
                // One event or several, through one loop (an empty Vec does not allocate).
                let (one, many) = match item {
                    Some(Item::Sync(done)) => {
                        flush(&mut batch, capacity, &spool, &agent_id).await?;
                        deadline = None;
                        let _ = done.send(());
                        continue;
                    }
                    Some(Item::Event(ev)) => (Some(ev), Vec::new()),
                    Some(Item::Events(evs)) => (None, evs),
                    None => break,
                };
                for ev in one.into_iter().chain(many) {
                    if batch.count() == 0 {
                        deadline = Some(Instant::now() + cfg.max_wait);
                    }
                    batch.push(&ev);
                    drop(ev);
                    if batch.count() >= cfg.max_events as u64 || batch.size() >= cfg.max_bytes {
                        flush(&mut batch, capacity, &spool, &agent_id).await?;
                        deadline = None;
                    }
                }
            }
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                flush(&mut batch, capacity, &spool, &agent_id).await?;
                deadline = None;
            }
        }
    }
    flush(&mut batch, capacity, &spool, &agent_id).await
}

async fn flush(
    batch: &mut binary::Writer,
    capacity: usize,
    spool: &Arc<Spool>,
    agent_id: &Arc<str>,
) -> anyhow::Result<()> {
    if batch.count() == 0 {
        return Ok(());
    }
    let events = std::mem::replace(batch, binary::Writer::with_capacity(capacity));
    let (spool, agent_id) = (spool.clone(), agent_id.clone());
    let seq = spool.next_seq();
    // Compression and the fsync are blocking work: off the async workers.
    tokio::task::spawn_blocking(move || {
        let frame = wire::encode(&events, Uuid::now_v7(), &agent_id, seq);
        spool.append(seq, events.count(), &frame)
    })
    .await??;
    Ok(())
}
