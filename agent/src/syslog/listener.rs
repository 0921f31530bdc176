//! Syslog listeners: TCP (RFC 6587 octet counting or newline framing, chosen per connection
//! from its first byte), the same over TLS (RFC 5425) and UDP (one datagram, one message).
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
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_schema::binary;

use super::parse::{Origin, encode, text};
use crate::batcher::Item;
use crate::config::{AgentConfig, SyslogConfig};
use crate::customer::CustomerMap;
use crate::metrics::{Metrics, listener_label};

/// What every message of one listener shares, with its metric handles resolved once.
pub struct Listener {
    pub name: String,
    agent_id: String,
    agent_name: String,
    listener_customer: Option<String>,
    agent_customer: Option<String>,
    customers: Arc<CustomerMap>,
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

impl Listener {
    pub fn new(
        name: String,
        agent: &AgentConfig,
        cfg: &SyslogConfig,
        customers: Arc<CustomerMap>,
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

    fn customer_for(&self, peer: IpAddr) -> Option<&str> {
        self.customers.attribute(
            self.listener_customer.as_deref(),
            peer,
            self.agent_customer.as_deref(),
        )
    }

    /// Parses one message into the next event of `out`.
    fn encode(
        &self,
        raw: &[u8],
        peer: SocketAddr,
        truncated: bool,
        customer: Option<&str>,
        out: &mut Pending,
    ) {
        let text = text(raw);
        let origin = Origin {
            agent_id: &self.agent_id,
            agent_name: &self.agent_name,
            customer,
            peer: Some(peer.ip()),
            received: Utc::now(),
            truncated,
            tz: self
                .tz
                .or_else(|| self.customers.zone(customer?))
                .unwrap_or(self.agent_tz),
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
    let customer = ctx.customer_for(peer.ip());
    let mut pending = Pending::new(ctx.chunk_events);
    let read = read_messages(
        &mut reader,
        octet_counted,
        (peer, customer),
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
    (peer, customer): (SocketAddr, Option<&str>),
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
                ctx.encode(frame, peer, truncated, customer, pending);
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
                ctx.encode(&buf, peer, true, customer, pending);
            }
            return Ok(());
        };
        let Some(truncated) = frame else {
            return Ok(());
        };
        if !buf.is_empty() {
            ctx.encode(&buf, peer, truncated, customer, pending);
        }
    }
}

/// RFC 6587 octet counting is `MSG-LEN SP SYSLOG-MSG` and a syslog message starts with
/// `<PRI>`: only `digits SP <` means octet counting. Plenty of newline-framed logs start
/// with digits too (`081109 203615 148 INFO ...`, `2015-10-18 18:01:47 ...`).
pub fn looks_octet_counted(start: &[u8]) -> bool {
    let digits = start.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=10).contains(&digits)
        && start.get(digits) == Some(&b' ')
        && start.get(digits + 1) == Some(&b'<')
}

/// The first frame of `buf` if it is whole there and well formed, as [`read_frame`] would
/// read it: (message, bytes it takes in `buf`, truncated). `None` leaves everything else
/// (a partial frame, a bad length prefix) to `read_frame`.
fn buffered_frame(buf: &[u8], max: usize, octet_counted: bool) -> Option<(&[u8], usize, bool)> {
    let (start, end, next) = if octet_counted {
        // Newlines between frames are skipped, as `read_frame` does.
        let skip = buf.iter().take_while(|&&b| b == b'\n').count();
        let digits = buf[skip..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=10).contains(&digits) || buf.get(skip + digits) != Some(&b' ') {
            return None;
        }
        let len: usize = std::str::from_utf8(&buf[skip..skip + digits])
            .ok()?
            .parse()
            .ok()?;
        let start = skip + digits + 1;
        let end = start.checked_add(len).filter(|&e| e <= buf.len())?;
        (start, end, end)
    } else {
        let end = memchr::memchr(b'\n', buf)?;
        (0, end, end + 1)
    };
    let frame = &buf[start..end];
    let truncated = frame.len() > max;
    Some((
        without_newline(&frame[..frame.len().min(max)]),
        next,
        truncated,
    ))
}

/// Reads one frame into `buf`. `Ok(None)` at a clean end of stream; `Ok(Some(truncated))`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
    octet_counted: bool,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    if octet_counted {
        // MSG-LEN SP SYSLOG-MSG; a bad length prefix falls back to a newline-framed line
        // that keeps the bytes read so far.
        let mut len: usize = 0;
        let mut digits = 0;
        loop {
            let avail = r.fill_buf().await?;
            let Some(&b) = avail.first() else {
                return Ok(if digits == 0 { None } else { Some(false) });
            };
            r.consume(1);
            match b {
                b'0'..=b'9' if digits < 10 => {
                    len = len * 10 + usize::from(b - b'0');
                    digits += 1;
                    buf.push(b);
                }
                b' ' if digits > 0 => {
                    buf.clear();
                    return read_exact_bounded(r, buf, len, max).await.map(Some);
                }
                b'\n' if digits == 0 => continue,
                _ => {
                    buf.push(b);
                    if b == b'\n' {
                        buf.pop();
                        return Ok(Some(false));
                    }
                    return read_line_bounded(r, buf, max)
                        .await
                        .map(|t| Some(t.unwrap_or(false)));
                }
            }
        }
    }
    read_line_bounded(r, buf, max).await
}

async fn read_exact_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
    max: usize,
) -> std::io::Result<bool> {
    let mut left = len;
    while left > 0 {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = avail.len().min(left);
        let room = max.saturating_sub(buf.len()).min(n);
        buf.extend_from_slice(&avail[..room]);
        r.consume(n);
        left -= n;
    }
    trim_newline(buf);
    Ok(len > max)
}

/// Reads up to `\n`, keeping at most `max` bytes. `None` at end of stream with nothing read.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let mut truncated = false;
    let mut any = !buf.is_empty();
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(any.then_some(truncated));
        }
        any = true;
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            truncated = true;
            buf.extend_from_slice(&chunk[..room]);
        } else {
            buf.extend_from_slice(chunk);
        }
        r.consume(used);
        if done {
            trim_newline(buf);
            return Ok(Some(truncated));
        }
    }
}

fn trim_newline(buf: &mut Vec<u8>) {
    buf.truncate(without_newline(buf).len());
}

/// `frame` without the line ends and NULs some senders put after a message.
fn without_newline(mut frame: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | 0] = frame {
        frame = rest;
    }
    frame
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
        let mut next = Some(first);
        while let Some((mut msg, peer)) = next {
            let truncated = msg.len() > ctx.max_message_bytes;
            msg.truncate(ctx.max_message_bytes);
            trim_newline(&mut msg);
            if !msg.is_empty() {
                ctx.encode(
                    &msg,
                    peer,
                    truncated,
                    ctx.customer_for(peer.ip()),
                    &mut pending,
                );
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut r = BufReader::new(input);
        let octet = looks_octet_counted(input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Ok(Some(t)) = read_frame(&mut r, &mut buf, max, octet).await {
            out.push((String::from_utf8_lossy(&buf).into_owned(), t));
        }
        out
    }

    /// Frames as `read_messages` reads them: whole ones where they lie, the others with
    /// `read_frame`; up to the end or the first error.
    async fn buffered_then_read(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let octet = looks_octet_counted(input);
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            if let Some((frame, len, t)) = buffered_frame(&input[at..], max, octet) {
                if !frame.is_empty() {
                    out.push((String::from_utf8_lossy(frame).into_owned(), t));
                }
                at += len;
                continue;
            }
            let mut r = BufReader::new(&input[at..]);
            let mut buf = Vec::new();
            let Ok(Some(t)) = read_frame(&mut r, &mut buf, max, octet).await else {
                return out;
            };
            if !buf.is_empty() {
                out.push((String::from_utf8_lossy(&buf).into_owned(), t));
            }
            at = input.len() - r.buffer().len() - r.into_inner().len();
        }
    }

    proptest::proptest! {
        /// Frames parsed in place from the buffer are the frames `read_frame` reads.
        #[test]
        fn buffered_frames_are_read_frames(
            // Octet counted half the time.
            start in proptest::sample::select(vec!["", "3 <", "12 <"]),
            rest in proptest::collection::vec(
                proptest::sample::select(b"0159 <\n\r\0a".to_vec()), 0..64),
            max in 1usize..12,
        ) {
            let input = [start.as_bytes(), &rest].concat();
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let (mut a, b) = rt.block_on(async {
                (frames(&input, max).await, buffered_then_read(&input, max).await)
            });
            // An empty frame is no message.
            a.retain(|(m, _)| !m.is_empty());
            proptest::prop_assert_eq!(a, b);
        }
    }

    #[tokio::test]
    async fn newline_framing_with_truncation() {
        let got = frames(b"<13>a b\r\n<13>0123456789abcdef\nlast", 10).await;
        assert_eq!(
            got,
            vec![
                ("<13>a b".into(), false),
                ("<13>012345".into(), true),
                ("last".into(), false)
            ]
        );
    }

    #[tokio::test]
    async fn octet_counting_with_embedded_newlines() {
        let got = frames(b"11 <13>a\nb c d6 <13>xy13 <13>toolong!!", 12).await;
        assert_eq!(
            got,
            vec![
                ("<13>a\nb c d".into(), false),
                ("<13>xy".into(), false),
                ("<13>toolong!".into(), true)
            ]
        );
    }

    #[test]
    fn only_length_space_pri_is_octet_counting() {
        assert!(looks_octet_counted(b"57 <13>1 - h a - - - m"));
        assert!(!looks_octet_counted(b"081109 203615 148 INFO dfs.DataNode"));
        assert!(!looks_octet_counted(b"2015-10-18 18:01:47,978 INFO"));
        assert!(!looks_octet_counted(b"<13>Nov 22 10:00:00 h a: m"));
        assert!(!looks_octet_counted(b"12345678901 <13>"));
    }

    #[tokio::test]
    async fn a_line_that_starts_with_digits_is_newline_framed() {
        assert_eq!(
            frames(b"081109 203615 148 INFO a\n081109 203616 149 INFO b\n", 100).await,
            vec![
                ("081109 203615 148 INFO a".into(), false),
                ("081109 203616 149 INFO b".into(), false)
            ]
        );
    }

    #[tokio::test]
    async fn half_an_octet_frame_is_an_error_not_a_message() {
        let mut r = BufReader::new(&b"50 <13>short"[..]);
        let mut buf = Vec::new();
        assert!(read_frame(&mut r, &mut buf, 100, true).await.is_err());
    }
}
