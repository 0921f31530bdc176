//! The wire format of a batch between agent and collector (and in the agent's spool and
//! the collector's write-ahead log, which store frames exactly as they travel).
//!
//! ```text
//! offset size  field
//!  0     4     magic  b"VGLB"
//!  4     2     version (u16 LE)       1 = zstd(JSON batch), 2 = zstd(binary batch, see
//!                                      [`crate::binary`]), 3 = the same with names by
//!                                      reference, 4 = and times and addresses in
//!                                      binary, 5 = and shapes and repeated values by
//!                                      reference; this build writes 5
//!  6     2     flags   (u16 LE)       reserved, must be 0
//!  8     4     crc32   (u32 LE)       CRC-32/IEEE of the payload
//! 12     4     length  (u32 LE)       payload length in bytes
//! 16     n     payload
//! ```
//!
//! The checksum covers the compressed payload so a damaged frame is rejected before any
//! decompression. Decompression is bounded by [`MAX_DECODED_BYTES`] (a zstd bomb is an error,
//! not an out-of-memory).

use std::io::Read;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::binary;
use crate::event::Event;

pub const MAGIC: [u8; 4] = *b"VGLB";
pub const HEADER_LEN: usize = 16;
/// The version this build writes. Every version from 1 up to this one is decoded.
pub const CURRENT_VERSION: u16 = 5;
/// Upper bound of a decompressed batch body.
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// What decoding one frame may take, each checked before memory is reserved for it: a
/// frame is input from outside, and its counts are claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes the payload may decompress to (at most [`MAX_DECODED_BYTES`]).
    pub decoded_bytes: u64,
    /// Events in the batch.
    pub events: usize,
    /// Fields of one event, and elements of one array or object value.
    pub fields: usize,
    /// Bytes of one string (a name or a value).
    pub value_bytes: usize,
}

impl Default for Limits {
    /// The bounds of what any agent writes: its batches hold at most a few tens of
    /// thousands of events, and its longest values are log lines.
    fn default() -> Self {
        Limits {
            decoded_bytes: MAX_DECODED_BYTES,
            events: 1_000_000,
            fields: 4_096,
            value_bytes: 1 << 20,
        }
    }
}
const ZSTD_LEVEL: i32 = 1;

/// A batch of events from one agent. `batch_id` is unique per batch and is what the
/// collector deduplicates on; `seq` increases per agent and is for humans and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: Uuid,
    pub agent_id: String,
    pub seq: u64,
    pub events: Vec<Event>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame is truncated: {got} bytes, need at least {need}")]
    Truncated { got: usize, need: usize },
    #[error("not a vigil batch (bad magic)")]
    BadMagic,
    #[error("unsupported wire version {0} (this collector reads 1..={CURRENT_VERSION})")]
    UnsupportedVersion(u16),
    #[error("unknown flags {0:#06x}")]
    UnknownFlags(u16),
    #[error("payload length {declared} does not match the {actual} bytes that follow the header")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("checksum mismatch: frame says {expected:#010x}, payload has {actual:#010x}")]
    Checksum { expected: u32, actual: u32 },
    #[error("payload is not valid zstd: {0}")]
    Decompress(String),
    #[error("decompressed payload exceeds {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Limit(String),
    #[error("payload is not a valid batch: {0}")]
    Payload(String),
}

impl DecodeError {
    /// A stable machine-readable code, used in API errors and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::UnknownFlags(_) => "unknown_flags",
            DecodeError::LengthMismatch { .. } => "length_mismatch",
            DecodeError::Checksum { .. } => "bad_checksum",
            DecodeError::Decompress(_) => "bad_compression",
            DecodeError::TooLarge(_) | DecodeError::Limit(_) => "too_large",
            DecodeError::Payload(_) => "bad_payload",
        }
    }
}

/// The validated header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub crc32: u32,
    pub len: usize,
}

impl Batch {
    /// Encodes the batch as a frame of [`CURRENT_VERSION`].
    pub fn encode(&self) -> Vec<u8> {
        let mut w = binary::Writer::default();
        self.events.iter().for_each(|e| w.push(e));
        encode(&w, self.batch_id, &self.agent_id, self.seq)
    }

    /// Decodes and validates a frame (header, checksum, size bounds, body) within the
    /// default [`Limits`].
    pub fn decode(frame: &[u8]) -> Result<Batch, DecodeError> {
        Self::decode_within(frame, &Limits::default())
    }

    /// Decodes and validates a frame within `limits`.
    pub fn decode_within(frame: &[u8], limits: &Limits) -> Result<Batch, DecodeError> {
        let header = check_frame(frame)?;
        let payload = &frame[HEADER_LEN..HEADER_LEN + header.len];
        let body = decompress(payload, limits.decoded_bytes.min(MAX_DECODED_BYTES))?;
        match header.version {
            1 => {
                let b: Batch = serde_json::from_slice(&body)
                    .map_err(|e| DecodeError::Payload(e.to_string()))?;
                if b.events.len() > limits.events {
                    return Err(DecodeError::Limit(format!(
                        "batch has {} events; at most {} are accepted",
                        b.events.len(),
                        limits.events
                    )));
                }
                Ok(b)
            }
            v @ (2..=CURRENT_VERSION) => binary::decode(&body, v, limits),
            v => Err(DecodeError::UnsupportedVersion(v)),
        }
    }
}

/// The frame of [`CURRENT_VERSION`] of the events in `events`, as batch `batch_id`.
pub fn encode(events: &binary::Writer, batch_id: Uuid, agent_id: &str, seq: u64) -> Vec<u8> {
    Compressor::new().encode(events, batch_id, agent_id, seq)
}

/// Makes frames of [`CURRENT_VERSION`], keeping zstd's context from one batch to the next:
/// a fresh context sets up megabytes of tables, which cost the agent more (fresh memory,
/// page faults) than compressing a batch did.
pub struct Compressor {
    cctx: zstd::zstd_safe::CCtx<'static>,
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    pub fn new() -> Self {
        let mut cctx = zstd::zstd_safe::CCtx::create();
        // Only fails for a level out of range.
        let _ = cctx.set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(ZSTD_LEVEL));
        Compressor { cctx }
    }

    /// The frame of the events in `events`, as batch `batch_id`.
    pub fn encode(
        &mut self,
        events: &binary::Writer,
        batch_id: Uuid,
        agent_id: &str,
        seq: u64,
    ) -> Vec<u8> {
        use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::{ZSTD_e_continue, ZSTD_e_end};
        use zstd::zstd_safe::{InBuffer, OutBuffer, ResetDirective, compress_bound};
        let header = events.header(batch_id, agent_id, seq);
        let total = header.len() + events.size();
        // Compressed straight into the frame, behind room for its header.
        let mut out = Vec::with_capacity(HEADER_LEN + compress_bound(total));
        out.resize(HEADER_LEN, 0);
        let mut compress = || -> Result<(), usize> {
            let cctx = &mut self.cctx;
            cctx.reset(ResetDirective::SessionOnly)?;
            cctx.set_pledged_src_size(Some(total as u64))?;
            let mut dst = OutBuffer::around_pos(&mut out, HEADER_LEN);
            let mut src = InBuffer::around(&header);
            while src.pos() < header.len() {
                cctx.compress_stream2(&mut dst, &mut src, ZSTD_e_continue)?;
            }
            let mut src = InBuffer::around(events.events());
            // With room for the whole bound, one call ends the frame; loop all the same.
            while cctx.compress_stream2(&mut dst, &mut src, ZSTD_e_end)? > 0 {}
            Ok(())
        };
        if compress().is_err() {
            // Only with a bad parameter or no memory; an empty payload is refused downstream.
            out.truncate(HEADER_LEN);
        }
        let payload_len = out.len() - HEADER_LEN;
        let crc = crc32fast::hash(&out[HEADER_LEN..]);
        write_header(&mut out[..HEADER_LEN], CURRENT_VERSION, crc, payload_len);
        out
    }
}

/// Builds a frame around an already encoded payload.
pub fn frame(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN];
    write_header(&mut out, version, crc32fast::hash(payload), payload.len());
    out.extend_from_slice(payload);
    out
}

/// Fills the `HEADER_LEN` bytes of `out` in front of a payload of `len` bytes.
fn write_header(out: &mut [u8], version: u16, crc: u32, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&version.to_le_bytes());
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out[12..16].copy_from_slice(&len.to_le_bytes());
}

/// Checks everything about a frame except its body: magic, version, flags, length and
/// checksum. Cheap enough to run on every spooled file at start.
pub fn check_frame(frame: &[u8]) -> Result<Header, DecodeError> {
    if frame.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            got: frame.len(),
            need: HEADER_LEN,
        });
    }
    if frame[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let u16_at = |i: usize| u16::from_le_bytes([frame[i], frame[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
    let version = u16_at(4);
    if version == 0 || version > CURRENT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let flags = u16_at(6);
    if flags != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let crc = u32_at(8);
    let len = u32_at(12) as usize;
    let actual = frame.len() - HEADER_LEN;
    if actual < len {
        return Err(DecodeError::Truncated {
            got: frame.len(),
            need: HEADER_LEN + len,
        });
    }
    if actual != len {
        return Err(DecodeError::LengthMismatch {
            declared: len,
            actual,
        });
    }
    let got = crc32fast::hash(&frame[HEADER_LEN..]);
    if got != crc {
        return Err(DecodeError::Checksum {
            expected: crc,
            actual: got,
        });
    }
    Ok(Header {
        version,
        crc32: crc,
        len,
    })
}

/// The size a frame's payload says it decompresses to, when its zstd header says (the
/// agent's always do); a claim, which [`Batch::decode_within`] holds it to.
pub fn declared_size(frame: &[u8]) -> Option<u64> {
    let payload = frame.get(HEADER_LEN..)?;
    match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(n)) => Some(n),
        _ => None,
    }
}

/// The payload decompressed, refused as soon as it passes `limit` bytes (or says it will).
fn decompress(payload: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    let declared = match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(n)) if n > limit => return Err(DecodeError::TooLarge(limit)),
        Ok(Some(n)) => Some(n),
        _ => None,
    };
    let mut decoder =
        zstd::stream::Decoder::new(payload).map_err(|e| DecodeError::Decompress(e.to_string()))?;
    // Grown as bytes arrive, doubling but never past the limit (`read_to_end` doubles past
    // it: 32 MiB held to find that a body passes 16), and reserved ahead only up to what the
    // frame claims: a claim that is a lie costs nothing.
    let most = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut body = vec![0; declared.unwrap_or(0).min(limit).clamp(64 << 10, 1 << 20) as usize];
    let mut len = 0;
    loop {
        if len == body.len() {
            if len >= most {
                break;
            }
            let grown = len.saturating_mul(2).min(most);
            body.reserve_exact(grown - len);
            body.resize(grown, 0);
        }
        match decoder.read(&mut body[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DecodeError::Decompress(e.to_string())),
        }
    }
    body.truncate(len);
    if body.len() as u64 > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    if let Some(n) = declared.filter(|&n| n != body.len() as u64) {
        return Err(DecodeError::Decompress(format!(
            "the frame says {n} bytes and holds {}",
            body.len()
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};
    use proptest::prelude::*;
    use serde_json::Value;

    fn batch_with(events: Vec<Event>) -> Batch {
        Batch {
            batch_id: Uuid::now_v7(),
            agent_id: "edge-1".into(),
            seq: 7,
            events,
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::String),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        proptest::collection::btree_map("[a-z@][a-z._]{0,20}", arb_value(), 0..12)
            .prop_map(|m| m.into_iter().collect::<Event>())
    }

    proptest! {
        #[test]
        fn any_batch_round_trips(events in proptest::collection::vec(arb_event(), 0..20), seq in any::<u64>(), agent in ".{0,40}") {
            let mut b = batch_with(events);
            b.seq = seq;
            b.agent_id = agent;
            let decoded = Batch::decode(&b.encode()).expect("decodes");
            prop_assert_eq!(decoded, b);
        }

        #[test]
        fn any_byte_flip_is_detected(events in proptest::collection::vec(arb_event(), 1..5), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let frame = batch_with(events).encode();
            let mut bad = frame.clone();
            let i = pos.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert!(Batch::decode(&bad).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Batch::decode(&bytes);
        }

        /// Hostile bodies inside valid frames, so that decoding gets past the header and the
        /// checksum: random bytes as the payload itself, and random bytes compressed (which
        /// reach the body readers of every version). Each is an error or a batch, never a
        /// panic, and an error is never a checksum or header error.
        #[test]
        fn arbitrary_bodies_in_valid_frames_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            version in 1u16..=CURRENT_VERSION,
        ) {
            for payload in [body.clone(), zstd::bulk::compress(&body, 1).expect("compress")] {
                match Batch::decode(&frame(version, &payload)) {
                    Ok(_) => {}
                    Err(e) => prop_assert!(
                        matches!(
                            e,
                            DecodeError::Decompress(_)
                                | DecodeError::Payload(_)
                                | DecodeError::Limit(_)
                                | DecodeError::TooLarge(_)
                        ),
                        "{e:?}"
                    ),
                }
            }
        }

        /// A real batch's body with bytes changed, inside a valid frame: the readers meet
        /// counts, tags and references that lie.
        #[test]
        fn damaged_bodies_in_valid_frames_never_panic(
            events in proptest::collection::vec(arb_event(), 1..6),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let b = batch_with(events);
            let mut w = binary::Writer::default();
            b.events.iter().for_each(|e| w.push(e));
            let mut body = w.header(b.batch_id, &b.agent_id, b.seq);
            body.extend_from_slice(w.events());
            for (at, byte) in flips {
                let n = body.len();
                body[at % n] = byte;
            }
            let payload = zstd::bulk::compress(&body, 1).expect("compress");
            let _ = Batch::decode(&frame(CURRENT_VERSION, &payload));
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let frame = batch_with(vec![Event::new(EventKind::Syslog, chrono::Utc::now())]).encode();
        assert_eq!(
            Batch::decode(&frame[..10]).map(|_| ()),
            Err(DecodeError::Truncated { got: 10, need: 16 })
        );
        assert!(matches!(
            Batch::decode(&frame[..frame.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut v9 = frame.clone();
        v9[4] = 9;
        assert_eq!(
            Batch::decode(&v9).map(|_| ()),
            Err(DecodeError::UnsupportedVersion(9))
        );
        let mut bad_crc = frame.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert!(matches!(
            Batch::decode(&bad_crc),
            Err(DecodeError::Checksum { .. })
        ));
        let mut magic = frame;
        magic[0] = b'X';
        assert_eq!(
            Batch::decode(&magic).map(|_| ()),
            Err(DecodeError::BadMagic)
        );
    }

    #[test]
    fn zstd_bomb_is_bounded() {
        // 300 MB of zeros compresses to a few KB; decoding must refuse it, not allocate it.
        let zeros = vec![b' '; (MAX_DECODED_BYTES + 1024) as usize];
        let payload = zstd::bulk::compress(&zeros, 3).expect("compress");
        drop(zeros);
        let frame = frame(1, &payload);
        assert_eq!(
            Batch::decode(&frame).map(|_| ()),
            Err(DecodeError::TooLarge(MAX_DECODED_BYTES))
        );
    }

    /// A small frame whose counts or sizes claim more than the collector takes is refused
    /// as too large, before the claim is reserved, whether the zstd frame declares its size
    /// or not.
    #[test]
    fn memory_grows_with_small_requests_that_claim_much() {
        let event = |fields: usize, value: &str| -> Event {
            (0..fields)
                .map(|i| (format!("f{i}"), Value::String(value.to_owned())))
                .collect()
        };
        let too_large = |frame: &[u8], limits: &Limits| {
            matches!(
                Batch::decode_within(frame, limits),
                Err(DecodeError::Limit(_) | DecodeError::TooLarge(_))
            )
        };
        let ok = Limits {
            decoded_bytes: 1 << 20,
            events: 3,
            fields: 5,
            value_bytes: 10,
        };
        let b = batch_with(vec![event(5, "0123456789"); 3]);
        assert_eq!(Batch::decode_within(&b.encode(), &ok), Ok(b.clone()));
        let frame = b.encode();
        for limits in [
            Limits { events: 2, ..ok },
            Limits { fields: 4, ..ok },
            Limits {
                value_bytes: 9,
                ..ok
            },
            Limits {
                decoded_bytes: 100,
                ..ok
            },
        ] {
            assert!(too_large(&frame, &limits), "{limits:?}");
        }
        // The same body compressed without a declared size is stopped at the limit.
        let header = binary::Writer::default();
        let mut w = header;
        b.events.iter().for_each(|e| w.push(e));
        let mut body = w.header(b.batch_id, &b.agent_id, b.seq);
        body.extend_from_slice(w.events());
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).expect("encoder");
        enc.include_contentsize(false).expect("no size");
        std::io::Write::write_all(&mut enc, &body).expect("write");
        let undeclared = super::frame(CURRENT_VERSION, &enc.finish().expect("finish"));
        assert_eq!(declared_size(&undeclared), None);
        assert_eq!(declared_size(&frame), Some(body.len() as u64));
        assert_eq!(Batch::decode_within(&undeclared, &ok), Ok(b.clone()));
        assert!(too_large(
            &undeclared,
            &Limits {
                decoded_bytes: body.len() as u64 - 1,
                ..ok
            }
        ));
        // A count of a million events in a few bytes: refused by the count, not by the
        // bytes that do not follow.
        let mut inflated = binary::Writer::default().header(b.batch_id, "a", 0);
        inflated.pop();
        inflated.extend_from_slice(&[0xc0, 0x84, 0x3d]);
        let payload = zstd::bulk::compress(&inflated, 1).expect("compress");
        assert!(matches!(
            Batch::decode_within(&super::frame(CURRENT_VERSION, &payload), &ok),
            Err(DecodeError::Limit(m)) if m.contains("1000000 events")
        ));
    }

    #[test]
    fn payload_that_is_not_a_batch_is_rejected() {
        let payload = zstd::bulk::compress(b"[1,2,3]", 1).expect("compress");
        for version in [1, 2, 3, 4, 5] {
            assert!(matches!(
                Batch::decode(&frame(version, &payload)),
                Err(DecodeError::Payload(_))
            ));
        }
    }

    /// Spools and write-ahead logs written before version 2 still decode.
    #[test]
    fn version_1_frames_still_decode() {
        let b = batch_with(vec![
            [
                ("@timestamp", Value::from("2026-11-23T10:00:00Z")),
                ("source.port", Value::from(443)),
                ("tags", serde_json::json!(["a"])),
            ]
            .into_iter()
            .collect(),
        ]);
        let json = serde_json::to_vec(&b).expect("json");
        let v1 = frame(1, &zstd::bulk::compress(&json, 1).expect("compress"));
        assert_eq!(Batch::decode(&v1), Ok(b.clone()));
        assert_eq!(b.encode()[4], 5, "this build writes version 5");
    }
}
