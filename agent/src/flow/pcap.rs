//! Reads classic pcap files (the format `tcpdump -w` writes): for replaying captures into the
//! flow sources in tests and benchmarks. Both byte orders and both time resolutions.

use std::io::Read;
use std::path::Path;

use super::packet::Link;

/// One captured frame: seconds and nanoseconds since the epoch, and the bytes captured.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ts_ns: i128,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a classic pcap file (magic {0:08x}; pcapng is not read)")]
    Magic(u32),
    #[error("link type {0} is not read")]
    Link(u32),
    #[error("record {0} claims {1} bytes, more than the file's snap length")]
    Record(usize, u32),
}

/// All frames of `path`, with the file's link layer.
pub fn read(path: &Path) -> Result<(Link, Vec<Frame>), PcapError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    parse(&bytes)
}

pub fn parse(bytes: &[u8]) -> Result<(Link, Vec<Frame>), PcapError> {
    let short = || PcapError::Io(std::io::ErrorKind::UnexpectedEof.into());
    let hdr = bytes.get(..24).ok_or_else(short)?;
    let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let (le, nanos) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        m => return Err(PcapError::Magic(m)),
    };
    let u32_at = |b: &[u8], i: usize| {
        let x = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }
    };
    let snaplen = u32_at(hdr, 16).max(65_535);
    let linktype = u32_at(hdr, 20) & 0x0fff_ffff;
    let link = Link::from_linktype(linktype).ok_or(PcapError::Link(linktype))?;
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let rec = &bytes[at..at + 16];
        let (sec, frac, incl) = (u32_at(rec, 0), u32_at(rec, 4), u32_at(rec, 8));
        if incl > snaplen.max(262_144) {
            return Err(PcapError::Record(frames.len(), incl));
        }
        let start = at + 16;
        let end = start + incl as usize;
        let data = bytes.get(start..end).ok_or_else(short)?;
        let ns = if nanos {
            frac as i128
        } else {
            frac as i128 * 1000
        };
        frames.push(Frame {
            ts_ns: sec as i128 * 1_000_000_000 + ns,
            data: data.to_vec(),
        });
        at = end;
    }
    Ok((link, frames))
}
