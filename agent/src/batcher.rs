//! Turns the stream of events from all sources into batches (by count, by size, by time)
//! and writes each one to the spool.
//!
//! The batcher awaits each spool write before it reads more events, so a slow disk slows
//! the channel down and, through it, the TCP senders (UDP sources count their drops).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;
use vigil_schema::{Batch, Event};

use crate::config::BatchConfig;
use crate::spool::Spool;

/// What sources put on the batcher's channel.
#[derive(Debug)]
pub enum Item {
    Event(Event),
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
    let mut events: Vec<Event> = Vec::with_capacity(cfg.max_events);
    let mut bytes = 0usize;
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(Item::Sync(done)) => {
                    flush(&mut events, &spool, &agent_id, cfg.max_events).await?;
                    bytes = 0;
                    deadline = None;
                    let _ = done.send(());
                }
                Some(Item::Event(ev)) => {
                    if events.is_empty() {
                        deadline = Some(Instant::now() + cfg.max_wait);
                    }
                    bytes += approx_len(&ev);
                    events.push(ev);
                    if events.len() >= cfg.max_events || bytes >= cfg.max_bytes {
                        flush(&mut events, &spool, &agent_id, cfg.max_events).await?;
                        bytes = 0;
                        deadline = None;
                    }
                }
                None => break,
            },
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                flush(&mut events, &spool, &agent_id, cfg.max_events).await?;
                bytes = 0;
                deadline = None;
            }
        }
    }
    flush(&mut events, &spool, &agent_id, cfg.max_events).await
}

async fn flush(
    events: &mut Vec<Event>,
    spool: &Arc<Spool>,
    agent_id: &str,
    capacity: usize,
) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let batch = Batch {
        batch_id: Uuid::now_v7(),
        agent_id: agent_id.to_owned(),
        seq: spool.next_seq(),
        events: std::mem::replace(events, Vec::with_capacity(capacity)),
    };
    let spool = spool.clone();
    // Encoding (JSON + zstd) and the fsync are blocking work: off the async workers.
    tokio::task::spawn_blocking(move || {
        let frame = batch.encode();
        spool.append(batch.seq, batch.events.len() as u64, &frame)
    })
    .await??;
    Ok(())
}

/// Cheap estimate of an event's JSON size, for the batch size bound: the message dominates,
/// every other field is counted at a typical size (exactness is not needed, speed is).
fn approx_len(ev: &Event) -> usize {
    ev.message().map_or(0, str::len) + 40 * ev.0.len()
}
