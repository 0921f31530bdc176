//! Syslog listeners: TCP (framed as [`super::framing`] says: RFC 6587 octet counting or newline
//! framing, chosen per connection from its first bytes), the same over TLS (RFC 5425) and UDP
//! (one datagram, one message).
//!
//! Bounds: a semaphore caps TCP connections (an extra connection is closed at once and
//! counted); a message longer than `max_message_bytes` is cut there and flagged; TCP senders
//! are slowed by the bounded channel; UDP cannot push back, so a full channel is a counted drop.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chrono::Utc;
use chrono_tz::Tz;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_schema::binary;

use super::framing::{buffered_frame, looks_octet_counted, read_frame, trim_newline};
use super::parse::{Origin, encode, text};
use crate::batcher::Item;
use crate::config::{AgentConfig, SyslogConfig};
use crate::customer::{CustomerMap, Customers};
use crate::metrics::{Metrics, listener_label};

/// What every message of one listener shares, with its metric handles resolved once.
pub struct Listener {
    pub name: String,
    agent_id: String,
    agent_name: String,
    listener_customer: Option<String>,
    agent_customer: Option<String>,
    customers: Arc<Customers>,
    max_message_bytes: usize,
    max_connections: usize,
    /// The most events of one item (the batch's most).
    chunk_events: u64,
    idle_timeout: Duration,
    /// The listener's zone, if it names one; else the customer's, else `agent_tz`.
    tz: Option<Tz>,
    agent_tz: Tz,
    tls: Option<(TlsAcceptor, Duration)>,
    tx: mpsc::Sender<Item>,
    received: Counter,
    malformed: Counter,
    truncated: Counter,
    dropped_full: Counter,
    dropped_overrun: Counter,
    refused: Counter,
    timed_out: Counter,
    open: Gauge,
    tls_failed: Counter,
}

/// Whose a sender's events are, and the zone of their timestamps without an offset.
struct Whose<'a> {
    customer: Option<&'a str>,
    tz: Tz,
}

impl Listener {
    pub fn new(
        name: String,
        agent: &AgentConfig,
        cfg: &SyslogConfig,
        customers: Arc<Customers>,
        tx: mpsc::Sender<Item>,
        metrics: &Metrics,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let l = listener_label(&name);
        let reason = |r: &str| {
            let mut l = l.clone();
            l.push(("reason", r.into()));
            l
        };
        // One statement each: a family's guard lives to the end of its statement, and a
        // second label of the same family in one statement would wait for it forever.
        let dropped_full = metrics
            .events_dropped
            .get_or_create(&reason("channel_full"))
            .clone();
        let dropped_overrun = metrics
            .events_dropped
            .get_or_create(&reason("receive_buffer"))
            .clone();
        Listener {
            received: metrics.events_received.get_or_create(&l).clone(),
            malformed: metrics.syslog_malformed.get_or_create(&l).clone(),
            truncated: metrics.syslog_truncated.get_or_create(&l).clone(),
            dropped_full,
            dropped_overrun,
            refused: metrics.connections_refused.get_or_create(&l).clone(),
            timed_out: metrics.connections_timed_out.get_or_create(&l).clone(),
            open: metrics.connections_open.get_or_create(&l).clone(),
            tls_failed: metrics.tls_failed.get_or_create(&l).clone(),
            name,
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            listener_customer: cfg.customer.clone(),
            agent_customer: agent.customer.clone(),
            customers,
            max_message_bytes: cfg.max_message_bytes,
            max_connections: cfg.max_connections,
            chunk_events: agent.batch.max_events as u64,
            idle_timeout: cfg.idle_timeout,
            tz: cfg.timezone,
            agent_tz: agent.timezone,
            tls: tls.zip(cfg.tls.as_ref().map(|t| t.handshake_timeout)),
            tx,
        }
    }

    /// Whose the events from `peer` are, and the zone of their timestamps without an offset,
    /// by `map` (the customers in force).
    fn attribute<'a>(&'a self, map: &'a CustomerMap, peer: IpAddr) -> Whose<'a> {
        let customer = map.attribute(
            self.listener_customer.as_deref(),
            peer,
            self.agent_customer.as_deref(),
        );
        let tz = self
            .tz
            .or_else(|| map.zone(customer?))
            .unwrap_or(self.agent_tz);
        Whose { customer, tz }
    }

    /// Parses one message into the next event of `out`.
    fn encode(
        &self,
        raw: &[u8],
        peer: SocketAddr,
        truncated: bool,
        whose: &Whose<'_>,
        out: &mut Pending,
    ) {
        let text = text(raw);
        let origin = Origin {
            agent_id: &self.agent_id,
            agent_name: &self.agent_name,
            customer: whose.customer,
            peer: Some(peer.ip()),
            received: Utc::now(),
            truncated,
            tz: whose.tz,
        };
        let parsed = encode(&text, &origin, &mut out.events);
        self.received.inc();
        if !parsed {
            self.malformed.inc();
        }
        if truncated {
            self.truncated.inc();
        }
    }
}

/// Accepts TCP connections until `shutdown`; connection tasks are tracked by `tasks` so the
/// caller can wait for them to finish their current message.
pub async fn run_tcp(
    listener: TcpListener,
    ctx: Arc<Listener>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(ctx.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = %ctx.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            ctx.refused.inc();
            tracing::debug!(listener = %ctx.name, %peer, "connection limit reached; refused");
            continue;
        };
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        ctx.open.inc();
        tasks.spawn(async move {
            let handled = match &ctx.tls {
                None => handle_tcp(stream, peer, &ctx, &shutdown).await,
                Some((acceptor, limit)) => {
                    match tokio::time::timeout(*limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => handle_tcp(tls, peer, &ctx, &shutdown).await,
                        Ok(Err(e)) => {
                            ctx.tls_failed.inc();
                            Err(e)
                        }
                        Err(_) => {
                            ctx.timed_out.inc();
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = handled {
                tracing::debug!(listener = %ctx.name, %peer, error = %e, "connection ended with an error");
            }
            ctx.open.dec();
            drop(permit);
        });
    }
}

async fn handle_tcp<S: AsyncRead + Unpin>(
    stream: S,
    peer: SocketAddr,
    ctx: &Listener,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let octet_counted = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = tokio::time::timeout(ctx.idle_timeout, reader.fill_buf()) => match r {
            Ok(r) => looks_octet_counted(r?),
            Err(_) => {
                ctx.timed_out.inc();
                return Ok(());
            }
        },
    };
    // Once per connection: a change of the customers applies to the next ones.
    let map = ctx.customers.load();
    let whose = ctx.attribute(&map, peer.ip());
    let mut pending = Pending::new(ctx.chunk_events);
    let read = read_messages(
        &mut reader,
        octet_counted,
        (peer, &whose),
        ctx,
        shutdown,
        &mut pending,
    )
    .await;
    // Whatever ended the connection, the messages it had sent go on.
    pending.send(&ctx.tx).await;
    read
}

/// Messages of one connection (or of the UDP datagrams already queued), parsed and encoded,
/// on their way to the batcher in one item: one channel send and one wake-up of the batcher
/// per read from the socket, not per message.
struct Pending {
    events: binary::Writer,
    max_events: u64,
}

/// An item is sent once it holds this many bytes (or the batch's most events): small items
/// keep the channel's memory bounded.
const CHUNK_BYTES: usize = 8 * 1024;

impl Pending {
    fn new(max_events: u64) -> Self {
        Pending {
            events: binary::Writer::with_capacity(CHUNK_BYTES + 1024),
            max_events,
        }
    }

    fn full(&self) -> bool {
        self.events.size() >= CHUNK_BYTES || self.events.count() >= self.max_events
    }

    /// Sends what is pending; false when the batcher is gone.
    async fn send(&mut self, tx: &mpsc::Sender<Item>) -> bool {
        if self.events.count() == 0 {
            return true;
        }
        let ready = std::mem::replace(
            &mut self.events,
            binary::Writer::with_capacity(CHUNK_BYTES + 1024),
        );
        tx.send(Item::Encoded(ready)).await.is_ok()
    }
}

/// Reads and parses messages into `pending`, which goes to the batcher when the connection
/// has to wait for more bytes (or is full). No message waits in `pending` for the network.
async fn read_messages<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
    octet_counted: bool,
    (peer, whose): (SocketAddr, &Whose<'_>),
    ctx: &Listener,
    shutdown: &CancellationToken,
    pending: &mut Pending,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        // A sender that never pauses is still stopped by a shutdown.
        if shutdown.is_cancelled() {
            return Ok(());
        }
        if pending.full() && !pending.send(&ctx.tx).await {
            return Ok(());
        }
        // The frames already whole in the buffer, parsed where they lie: no copy, and no
        // await per frame.
        let mut used = 0;
        while !pending.full() {
            let Some((frame, len, truncated)) = buffered_frame(
                &reader.buffer()[used..],
                ctx.max_message_bytes,
                octet_counted,
            ) else {
                break;
            };
            if !frame.is_empty() {
                ctx.encode(frame, peer, truncated, whose, pending);
            }
            used += len;
        }
        if used > 0 {
            reader.consume(used);
            continue;
        }
        // A frame that is not whole in the buffer (or a framing error, which `read_frame`
        // treats as RFC 6587 says) is read and copied piece by piece.
        // `None`: the connection was idle for too long (or we are shutting down).
        let frame = {
            let read = read_frame(reader, &mut buf, ctx.max_message_bytes, octet_counted);
            tokio::pin!(read);
            // One poll first: a frame that is already buffered needs no wait.
            match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                Poll::Ready(r) => Some(r?),
                Poll::Pending => {
                    if !pending.send(&ctx.tx).await {
                        return Ok(());
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        r = tokio::time::timeout(ctx.idle_timeout, read) => match r {
                            Ok(r) => Some(r?),
                            Err(_) => None,
                        },
                    }
                }
            }
        };
        let Some(frame) = frame else {
            ctx.timed_out.inc();
            tracing::debug!(listener = %ctx.name, %peer, "idle connection closed");
            // Keep what an unfinished message had sent: cut short, never dropped.
            if !buf.is_empty() {
                ctx.encode(&buf, peer, true, whose, pending);
            }
            return Ok(());
        };
        let Some(truncated) = frame else {
            return Ok(());
        };
        if !buf.is_empty() {
            ctx.encode(&buf, peer, truncated, whose, pending);
        }
    }
}

/// Receives datagrams until `shutdown` ([`crate::udp::Datagrams`]: a thread of its own and a
/// bounded queue) and parses them here, waiting for the batcher when it is busy. Kernel
/// overruns and a full queue are counted (`reason="receive_buffer"`, `"channel_full"`).
pub async fn run_udp(sock: std::net::UdpSocket, ctx: Arc<Listener>, shutdown: CancellationToken) {
    let datagrams = crate::udp::Datagrams::spawn(
        &ctx.name,
        sock,
        ctx.max_message_bytes + 1,
        ctx.dropped_overrun.clone(),
        ctx.dropped_full.clone(),
        shutdown,
    );
    let mut datagrams = match datagrams {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(listener = %ctx.name, error = %e, "cannot start the udp receiver");
            return;
        }
    };
    let mut pending = Pending::new(ctx.chunk_events);
    // The datagrams already queued go to the batcher as one item, as a connection's read does.
    while let Some(first) = datagrams.recv().await {
        // The customers in force for the datagrams queued now.
        let map = ctx.customers.load();
        let mut next = Some(first);
        while let Some((mut msg, peer)) = next {
            let truncated = msg.len() > ctx.max_message_bytes;
            msg.truncate(ctx.max_message_bytes);
            trim_newline(&mut msg);
            if !msg.is_empty() {
                let whose = ctx.attribute(&map, peer.ip());
                ctx.encode(&msg, peer, truncated, &whose, &mut pending);
            }
            datagrams.give_back(msg);
            next = if pending.full() {
                None
            } else {
                datagrams.try_recv()
            };
        }
        if !pending.send(&ctx.tx).await {
            break;
        }
    }
    let _ = tokio::task::spawn_blocking(move || datagrams.join()).await;
}
