//! UDP sockets of the sources (syslog, NetFlow): bound with the receive buffer the config asks
//! for, and the kernel's count of datagrams it dropped because that buffer was full.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

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
