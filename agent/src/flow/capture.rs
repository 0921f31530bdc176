//! Packet capture on an interface (an AF_PACKET socket that `pnet_datalink` binds, no system
//! library), on its own thread: frames → [`packet::decode`] → [`FlowTable`] → flow events.
//! Frames are read up to [`BATCH`] per system call (`recvmmsg`): one `recvfrom` per frame
//! could not keep up with a busy link.
//!
//! # Invariants
//! - The capture survives its interface going away or down: a read error closes the channel,
//!   and it is reopened once a second until the interface is back (each failure counted).
//! - At shutdown every flow still in the table is exported.
//! - Frames are read into 64 KiB buffers, so the segments GRO or TSO coalesce on virtual
//!   links still give their IP length (counted from the IP header, not the frame).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Flow;
use super::filter::Filter;
use super::packet::{self, Link, Skip};
use super::table::{End, FlowTable, TableConfig};
use crate::batcher::Item;
use crate::config::CaptureConfig;
use crate::metrics::Metrics;

/// Runs until `shutdown`. `customer` is set on every flow event.
pub fn run(
    cfg: CaptureConfig,
    customer: Option<String>,
    tx: mpsc::Sender<Item>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let iface = cfg.interface.clone();
    let label = vec![("interface", iface.clone())];
    let c = |fam: &prometheus_client::metrics::family::Family<
        Vec<(&'static str, String)>,
        Counter,
    >| { fam.get_or_create(&label).clone() };
    let (packets, malformed, fragments, errors, dropped) = (
        c(&metrics.capture_packets),
        c(&metrics.capture_malformed),
        c(&metrics.capture_fragments),
        c(&metrics.capture_errors),
        c(&metrics.capture_kernel_drops),
    );
    let filter = cfg.filter.as_deref().and_then(|f| Filter::parse(f).ok());
    let mut table = FlowTable::new(TableConfig {
        idle_timeout: cfg.idle_timeout,
        active_timeout: cfg.active_timeout,
        close_linger: cfg.close_linger,
        max_flows: cfg.max_flows,
    });
    let mut ended: Vec<(Flow, End)> = Vec::new();
    let send = |ended: &mut Vec<(Flow, End)>, table: &FlowTable| -> bool {
        metrics
            .capture_flows_active
            .get_or_create(&label)
            .set(table.len() as i64);
        let now = Utc::now();
        // The ended flows in one item, encoded here (see `Item::Encoded`).
        let mut events =
            vigil_schema::binary::Writer::with_capacity(ended.len() * super::EVENT_BYTES);
        for (mut fl, why) in ended.drain(..) {
            metrics
                .capture_flows
                .get_or_create(&vec![
                    ("interface", iface.clone()),
                    ("end", why.as_str().to_owned()),
                ])
                .inc();
            fl.extra.push((
                vigil_schema::fields::OBSERVER_NAME.into(),
                iface.as_str().into(),
            ));
            fl.encode(now, customer.as_deref(), &mut events);
        }
        events.count() == 0 || tx.blocking_send(Item::Encoded(events)).is_ok()
    };
    let mut frames = Frames::new();
    'open: while !shutdown.is_cancelled() {
        let Some(nic) = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
        else {
            errors.inc();
            tracing::warn!(interface = %iface, "capture: no such interface; retrying");
            wait(&shutdown, Duration::from_secs(1));
            continue;
        };
        let fd = match packet_socket(cfg.receive_buffer_bytes) {
            Ok(fd) => fd,
            Err(e) => {
                errors.inc();
                tracing::warn!(interface = %iface, error = %e, "capture: cannot open a packet socket; retrying");
                wait(&shutdown, Duration::from_secs(1));
                continue;
            }
        };
        let dl_cfg = pnet_datalink::Config {
            socket_fd: Some(fd),
            read_timeout: Some(Duration::from_millis(100)),
            read_buffer_size: 65_536,
            promiscuous: cfg.promiscuous,
            ..Default::default()
        };
        // pnet binds the socket to the interface (and sets promiscuous mode); its channel is
        // kept open for that, and the frames are read from the socket directly.
        let _channel = match pnet_datalink::channel(&nic, dl_cfg) {
            Ok(pnet_datalink::Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => {
                tracing::error!(interface = %iface, "capture: not an Ethernet channel");
                return;
            }
            Err(e) => {
                errors.inc();
                tracing::warn!(interface = %iface, error = %e, "capture: cannot open; retrying");
                wait(&shutdown, Duration::from_secs(1));
                continue;
            }
        };
        tracing::info!(interface = %iface, "capturing");
        let mut last_expire = Instant::now();
        // A new socket counts its drops from zero.
        frames.dropped = 0;
        let mut counted = 0u32;
        while !shutdown.is_cancelled() {
            match frames.receive(fd) {
                Ok(n) => {
                    if frames.dropped > counted {
                        dropped.inc_by(u64::from(frames.dropped - counted));
                        counted = frames.dropped;
                    }
                    for frame in frames.iter(n) {
                        packets.inc();
                        match packet::decode(Link::Ethernet, frame) {
                            Ok(p) => {
                                if p.fragment {
                                    fragments.inc();
                                }
                                if filter.as_ref().is_none_or(|f| f.matches(&p)) {
                                    table.add(&p, Utc::now(), &mut ended);
                                }
                            }
                            Err(Skip::Malformed) => {
                                malformed.inc();
                            }
                            Err(Skip::NotIp) => {}
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    errors.inc();
                    tracing::warn!(interface = %iface, error = %e, "capture: read failed; reopening");
                    wait(&shutdown, Duration::from_secs(1));
                    continue 'open;
                }
            }
            if last_expire.elapsed() >= Duration::from_millis(500) {
                last_expire = Instant::now();
                table.expire(Utc::now(), &mut ended);
            }
            if !ended.is_empty() && !send(&mut ended, &table) {
                return;
            }
        }
    }
    table.drain(&mut ended);
    send(&mut ended, &table);
}

/// An AF_PACKET socket with a large receive buffer, for pnet to bind. pnet's own socket keeps
/// the kernel's default buffer (about 200 KiB), which a port scan's burst overflows.
fn packet_socket(receive_buffer: usize) -> std::io::Result<i32> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::IntoRawFd;
    const ETH_P_ALL: u16 = 0x0003;
    let sock = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
    )?;
    if let Err(e) = sock.set_recv_buffer_size(receive_buffer) {
        tracing::warn!(error = %e, "capture: cannot set the receive buffer");
    }
    // Reads return at least this often, so the thread sees shutdown and expires flows.
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    // Each frame then carries the socket's count of frames the kernel dropped (its buffer
    // full): the drops are counted, never silent.
    if let Err(e) = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RxqOvfl, &1) {
        tracing::warn!(error = %e, "capture: the kernel's drops cannot be counted");
    }
    tracing::info!(
        asked = receive_buffer,
        granted = sock.recv_buffer_size().unwrap_or(0),
        "capture receive buffer (the kernel caps it at net.core.rmem_max)"
    );
    // pnet owns (and closes) the descriptor from here on.
    Ok(sock.into_raw_fd())
}

/// Most frames read by one system call.
const BATCH: usize = 32;
/// Largest frame kept whole (a GRO/TSO super-frame on a virtual link).
const FRAME_BYTES: usize = 65_536;

/// Buffers for [`BATCH`] frames and their headers, reused for every read.
struct Frames {
    bufs: Vec<Vec<u8>>,
    headers: nix::sys::socket::MultiHeaders<()>,
    lens: [usize; BATCH],
    /// The socket's count of frames the kernel dropped, as the newest frame read carried it
    /// (`SO_RXQ_OVFL`; absent until the first drop).
    dropped: u32,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            bufs: vec![vec![0; FRAME_BYTES]; BATCH],
            headers: nix::sys::socket::MultiHeaders::preallocate(
                BATCH,
                Some(nix::cmsg_space!(u32)),
            ),
            lens: [0; BATCH],
            dropped: 0,
        }
    }

    /// Reads up to [`BATCH`] frames: waits for the first (up to the socket's read timeout),
    /// then takes what is already there. Returns how many.
    fn receive(&mut self, fd: i32) -> nix::Result<usize> {
        use nix::sys::socket::{MsgFlags, MultiHeaders, recvmmsg};
        // The kernel shrinks each header's control length to what the last message used
        // (none, mostly) and nix does not restore it: fresh headers each time, so every
        // frame can carry the drop count.
        self.headers = MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(u32)));
        let mut slices: Vec<[std::io::IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [std::io::IoSliceMut::new(b)])
            .collect();
        let got = recvmmsg(
            fd,
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        let mut n = 0;
        for (len, msg) in self.lens.iter_mut().zip(got) {
            *len = msg.bytes;
            n += 1;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let nix::sys::socket::ControlMessageOwned::RxqOvfl(d) = c {
                        self.dropped = self.dropped.max(d);
                    }
                }
            }
        }
        Ok(n)
    }

    /// The first `n` frames read.
    fn iter(&self, n: usize) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .zip(self.lens)
            .take(n)
            .map(|(b, len)| &b[..len.min(b.len())])
    }
}

fn wait(shutdown: &CancellationToken, d: Duration) {
    let until = Instant::now() + d;
    while !shutdown.is_cancelled() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}
