//! UDP sockets of the sources (syslog, NetFlow): bound with the receive buffer the config asks
//! for, received on a thread of their own into a bounded queue ([`Datagrams`]), and the
//! kernel's count of datagrams it dropped because that buffer was full.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use crate::spare::Spare;

/// Binds a UDP socket with `receive_buffer` bytes of kernel buffer (the kernel caps it at
/// `net.core.rmem_max`; what it granted is logged). `nonblocking` for sockets of the runtime.
pub fn bind(
    listen: SocketAddr,
    receive_buffer: usize,
    nonblocking: bool,
) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if let Err(e) = sock.set_recv_buffer_size(receive_buffer) {
        tracing::warn!(%listen, error = %e, "cannot set the UDP receive buffer");
    }
    sock.bind(&listen.into())?;
    sock.set_nonblocking(nonblocking)?;
    tracing::info!(
        %listen,
        asked = receive_buffer,
        granted = sock.recv_buffer_size().unwrap_or(0),
        "UDP receive buffer"
    );
    Ok(sock.into())
}

/// Counts what the kernel dropped for one socket since the last [`KernelDrops::poll`].
pub struct KernelDrops {
    inode: Option<u64>,
    seen: u64,
}

impl KernelDrops {
    pub fn new(sock: &impl AsRawFd) -> KernelDrops {
        let inode = socket_inode(sock);
        KernelDrops {
            inode,
            seen: inode.and_then(kernel_drops).unwrap_or(0),
        }
    }

    /// Datagrams dropped since the last call (0 where the OS does not tell).
    pub fn poll(&mut self) -> u64 {
        match self.inode.and_then(kernel_drops) {
            Some(now) => {
                let new = now.saturating_sub(self.seen);
                self.seen = now;
                new
            }
            None => 0,
        }
    }
}

/// The inode of a socket, which names it in `/proc/net/udp{,6}` (Linux; `None` elsewhere).
fn socket_inode(sock: &impl AsRawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", sock.as_raw_fd())).ok()?;
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Datagrams the kernel dropped for the socket with this inode: the last column (`drops`)
/// of its line in `/proc/net/udp` or `/proc/net/udp6`.
fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/self/net/udp", "/proc/self/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|table| {
            table.lines().skip(1).find_map(|line| {
                let cols: Vec<&str> = line.split_ascii_whitespace().collect();
                (cols.get(9)?.parse::<u64>().ok()? == inode)
                    .then(|| cols.last()?.parse().ok())
                    .flatten()
            })
        })
}

/// Most datagrams, and bytes, waiting between a receiving thread and its consumer.
const QUEUE_DATAGRAMS: usize = 262_144;
const QUEUE_BYTES: usize = 64 << 20;

/// Buffers a consumer gave back ([`Datagrams::give_back`]), for the receiving thread to fill
/// again, at most this many.
const SPARE_BUFFERS: usize = 256;

/// While datagrams keep coming, the receiving thread finds the socket empty, sleeps this
/// long and takes what came meanwhile, rather than sleeping in the socket and being woken
/// for each datagram: a wakeup per datagram cost the receiving thread a quarter of its time
/// and the sender (in the kernel) more, at 100,000 datagrams a second. The kernel's buffer
/// holds what comes meanwhile (at 4 Gbit/s, 250 KB).
const POLL: std::time::Duration = std::time::Duration::from_micros(500);

/// Sleeps of [`POLL`] in a row that found nothing, after which the thread waits in the socket
/// again (a quiet source costs no wakeups).
const QUIET_POLLS: u32 = 20;

/// Datagrams received by a thread that does nothing else, waiting in a queue of at most
/// [`QUEUE_BYTES`] for whoever parses them. A burst, or a moment when the consumer waits on a
/// busy batcher, fills this queue rather than the kernel's smaller buffer.
///
/// Counted: datagrams the kernel dropped because the socket's buffer was full (`overrun`,
/// read once a second), and datagrams that found the queue full (`full`). At shutdown the
/// thread stops receiving; what is queued is still handed out, then [`Datagrams::recv`] ends.
pub struct Datagrams {
    rx: tokio::sync::mpsc::Receiver<(Vec<u8>, SocketAddr)>,
    /// Whether the thread waits in the socket (no datagram for a while) rather than polling.
    waiting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    spare: std::sync::Arc<Spare<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Datagrams {
    /// Starts receiving on `sock` (blocking; a read timeout is set). Each datagram keeps at
    /// most `keep` bytes: one more than a consumer's limit is enough to know it was cut.
    pub fn spawn(
        name: &str,
        sock: std::net::UdpSocket,
        keep: usize,
        overrun: prometheus_client::metrics::counter::Counter,
        full: prometheus_client::metrics::counter::Counter,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<Datagrams> {
        use std::sync::atomic::Ordering::Relaxed;
        // The timeout lets the thread see `shutdown` and count the kernel's drops.
        sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
        sock.set_nonblocking(false)?;
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE_DATAGRAMS);
        let waiting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let w = waiting.clone();
        let queued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let q = queued.clone();
        let spare = std::sync::Arc::new(Spare::new(SPARE_BUFFERS));
        let reuse = spare.clone();
        let thread = std::thread::Builder::new()
            .name(format!("udp-{name}"))
            .spawn(move || {
                let mut kernel = KernelDrops::new(&sock);
                let mut polled = std::time::Instant::now();
                let mut buf = vec![0u8; 65_536];
                // Sleeps in a row that found nothing since the last datagram, while the
                // socket does not block (`None`: it blocks, the source is quiet).
                let mut empty: Option<u32> = None;
                while !shutdown.is_cancelled() {
                    if polled.elapsed() >= std::time::Duration::from_secs(1) {
                        overrun.inc_by(kernel.poll());
                        polled = std::time::Instant::now();
                    }
                    let (n, peer) = match sock.recv_from(&mut buf) {
                        Ok(x) => {
                            if empty.is_none() && sock.set_nonblocking(true).is_ok() {
                                empty = Some(0);
                                w.store(false, Relaxed);
                            } else if let Some(e) = &mut empty {
                                *e = 0;
                            }
                            x
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            match &mut empty {
                                Some(e)
                                    if *e >= QUIET_POLLS && sock.set_nonblocking(false).is_ok() =>
                                {
                                    empty = None;
                                    w.store(true, Relaxed);
                                }
                                // (Also when the socket cannot block: never a spin.)
                                Some(e) => {
                                    *e = e.saturating_add(1);
                                    std::thread::sleep(POLL);
                                }
                                None => {}
                            }
                            continue;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "udp receive error");
                            continue;
                        }
                    };
                    let n = n.min(keep);
                    if q.load(Relaxed) + n > QUEUE_BYTES {
                        full.inc();
                        continue;
                    }
                    let mut copy: Vec<u8> = reuse.take().unwrap_or_default();
                    copy.clear();
                    copy.extend_from_slice(&buf[..n]);
                    match tx.try_send((copy, peer)) {
                        Ok(()) => {
                            q.fetch_add(n, Relaxed);
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            full.inc();
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                overrun.inc_by(kernel.poll());
            })?;
        Ok(Datagrams {
            rx,
            waiting,
            queued,
            spare,
            thread: Some(thread),
        })
    }

    /// Whether the thread waits in the socket, the source quiet for a while (else it polls).
    pub fn waiting(&self) -> bool {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hands a datagram's buffer back to be filled again (optional: a buffer not given back
    /// is freed).
    pub fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() <= 65_536 {
            self.spare.give(buf);
        }
    }

    /// The next datagram and its sender; `None` once the thread stopped and all are out.
    pub async fn recv(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        let d = self.rx.recv().await;
        self.taken(d)
    }

    /// A datagram already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        let d = self.rx.try_recv().ok();
        self.taken(d)
    }

    /// [`Datagrams::recv`] for a consumer on a thread of its own.
    pub fn blocking_recv(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        let d = self.rx.blocking_recv();
        self.taken(d)
    }

    fn taken(&self, d: Option<(Vec<u8>, SocketAddr)>) -> Option<(Vec<u8>, SocketAddr)> {
        if let Some((b, _)) = &d {
            self.queued
                .fetch_sub(b.len(), std::sync::atomic::Ordering::Relaxed);
        }
        d
    }

    /// Waits for the receiving thread (after `shutdown`). Blocks.
    pub fn join(mut self) {
        self.rx.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every datagram is handed out, in order, whether it comes while the thread polls (a
    /// burst) or finds it waiting in the socket (after a quiet spell), and the thread goes
    /// back to waiting once the source is quiet.
    #[test]
    fn datagrams_come_out_in_order_through_bursts_and_quiet_spells() {
        let sock = bind("127.0.0.1:0".parse().expect("addr"), 1 << 20, false).expect("bind");
        let to = sock.local_addr().expect("local addr");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (overrun, full) = (Default::default(), Default::default());
        let mut d =
            Datagrams::spawn("test", sock, 100, overrun, full, shutdown.clone()).expect("spawn");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let until = |what: &str, mut done: Box<dyn FnMut() -> bool + '_>| {
            while !done() {
                assert!(std::time::Instant::now() < deadline, "{what}: timed out");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        let (mut next, mut got) = (0u32, Vec::new());
        for burst in [100u32, 1, 100, 1] {
            assert!(d.waiting(), "the thread waits in the socket before a burst");
            for _ in 0..burst {
                tx.send_to(&next.to_be_bytes(), to).expect("send");
                next += 1;
            }
            until(
                "the burst handed out",
                Box::new(|| {
                    while let Some((b, _)) = d.try_recv() {
                        got.push(u32::from_be_bytes(b[..4].try_into().expect("4 bytes")));
                    }
                    got.len() == next as usize
                }),
            );
            // The thread took the burst polling, and waits in the socket again once
            // QUIET_POLLS polls found nothing.
            until("the thread waiting again", Box::new(|| d.waiting()));
        }
        assert_eq!(got, (0..next).collect::<Vec<_>>());
        shutdown.cancel();
        d.join();
    }
}
