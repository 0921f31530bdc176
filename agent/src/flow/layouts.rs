//! The fast path of the NetFlow v9 / IPFIX receiver: data templates whose elements all have
//! a fixed length, compiled once into a [`Layout`] (per element its length, the parser's
//! data type and the [`Target`] of [`super::elements`]), so that a datagram of data sets only
//! is read straight from its bytes, without the parser's per-record allocations and the
//! per-element table lookups.
//!
//! Templates are read from the template sets of the datagrams the parser decoded (the
//! shape of a template record, and its validity by the parser's own rules, are read here
//! from the bytes: the parser keeps its templates to itself) and, after a restart, from the
//! persisted store ([`Layouts::seed`]).
//!
//! # Invariants
//! - A layout exists only for a template the parser holds too, with the same elements: it
//!   is learned only from a datagram the parser decoded without error, in the order of its
//!   sets; a withdrawal, a redefinition the parser would refuse, or one with a
//!   variable-length element forgets it. When in doubt (a datagram the parser did not
//!   decode whole, a rest this reader does not understand), the exporter's layouts are
//!   forgotten: forgetting only sends data back to the parser.
//! - Values are made by the parser's own `FieldValue::from_field_type`, except plain
//!   unsigned numbers, protocols, TCP flags and addresses, read here as the parser reads
//!   them ([`Read`], checked value by value against it); records
//!   are read as the parser reads them (whole records while one fits), so a flow of the fast
//!   path equals the parser's (the corpus test and the hostile-datagram test compare every
//!   datagram both ways).
//! - At most [`MAX_LAYOUTS`] layouts are kept; beyond, new templates go to the parser only.
//! - One difference is accepted: the parser forgets the least recently used templates of
//!   an exporter beyond 1,000, and an exporter beyond its bound of exporters; a layout can
//!   outlive those, and then the fast path decodes data the parser would count as missing
//!   its template.

use std::collections::HashMap;
use std::net::SocketAddr;

use netflow_parser::variable_versions::field_value::{FieldDataType, FieldValue};
use netflow_parser::variable_versions::ipfix::lookup::IPFixField;
use netflow_parser::variable_versions::v9::lookup::V9Field;

use super::elements::{self, Record, Target};

/// Layouts kept at most.
pub const MAX_LAYOUTS: usize = 10_000;
/// The parser's bound on the elements of a template (`MAX_FIELD_COUNT`).
const MAX_ELEMENTS: usize = 10_000;
/// The parser's bound on the records of a set (`DEFAULT_MAX_RECORDS_PER_FLOWSET`): a set of
/// more goes to the parser.
pub const MAX_RECORDS: usize = 1024;
const VARLEN: u16 = 65535;

/// NetFlow v9 or IPFIX: templates of one are not templates of the other (the parser scopes
/// them apart, `v9:` and `ipfix:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V9,
    Ipfix,
}

/// (exporter, version, observation domain / source id, template id): the parser's scoping.
type Key = (SocketAddr, Version, u32, u16);

/// One element of a template record: (element id without the enterprise bit, enterprise
/// number, length).
pub type Element = (u16, Option<u32>, u16);

/// A template record read from a template set, or a withdrawal (no elements).
#[derive(Debug, PartialEq, Eq)]
pub struct TemplateRecord {
    pub id: u16,
    /// Declared element count (0: a withdrawal).
    pub count: u16,
    pub elements: Vec<Element>,
}

pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The template records of a template set's body (`options`: an options template set),
/// in order. Reading stops at the first record that does not fit (padding, or damage);
/// `Err` carries the records read before it, when what is left is more than padding.
pub fn template_records(
    version: Version,
    body: &[u8],
    options: bool,
) -> Result<Vec<TemplateRecord>, Vec<TemplateRecord>> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let rest = &body[at.min(body.len())..];
        // Up to 3 bytes of padding end a set; so do zeros (an id of 0 is no template).
        if rest.len() < 4 || rest.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        let (Some(id), Some(second)) = (u16_at(body, at), u16_at(body, at + 2)) else {
            return Err(out);
        };
        if version == Version::V9 && options {
            // id, scope length and option length in bytes, then 4 bytes per element.
            let Some(opt_len) = u16_at(body, at + 4) else {
                return Err(out);
            };
            let bytes = usize::from(second) + usize::from(opt_len);
            let mut elements = Vec::with_capacity(bytes / 4);
            for e in (at + 6..at + 6 + bytes).step_by(4) {
                let (Some(ie), Some(len)) = (u16_at(body, e), u16_at(body, e + 2)) else {
                    return Err(out);
                };
                elements.push((ie, None, len));
            }
            at += 6 + bytes;
            let count = u16::try_from(elements.len()).unwrap_or(u16::MAX);
            out.push(TemplateRecord {
                id,
                count,
                elements,
            });
            continue;
        }
        let count = second;
        at += 4;
        if options && count > 0 {
            at += 2; // the scope field count
        }
        let mut elements = Vec::with_capacity(count.into());
        for _ in 0..count {
            let (Some(ie), Some(len)) = (u16_at(body, at), u16_at(body, at + 2)) else {
                return Err(out);
            };
            if version == Version::Ipfix && ie & 0x8000 != 0 {
                let Some(pen) = u32_at(body, at + 4) else {
                    return Err(out);
                };
                elements.push((ie & 0x7fff, Some(pen), len));
                at += 8;
            } else {
                elements.push((ie, None, len));
                at += 4;
            }
        }
        out.push(TemplateRecord {
            id,
            count,
            elements,
        });
    }
}

/// A persisted template (`netflow_parser`'s store: key `SCOPE|KIND|ID` with scope
/// `v9:ADDR/SOURCE` or `ipfix:ADDR/DOMAIN`; value `[version][id][count]([scope count])` then
/// per element `[type][length]`, and for IPFIX `[enterprise flag]([enterprise])`): its
/// exporter, version, domain, whether it is an options template, and the record.
pub fn stored(key: &str, value: &[u8]) -> Option<(SocketAddr, Version, u32, bool, TemplateRecord)> {
    let mut parts = key.split('|');
    let (scope, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
    let (version, rest) = if let Some(r) = scope.strip_prefix("ipfix:") {
        (Version::Ipfix, r)
    } else {
        (Version::V9, scope.strip_prefix("v9:")?)
    };
    let (addr, domain) = rest.rsplit_once('/')?;
    let (addr, domain, id): (SocketAddr, u32, u16) =
        (addr.parse().ok()?, domain.parse().ok()?, id.parse().ok()?);
    let (options, mut at) = match (version, kind) {
        (Version::Ipfix, "ipfix") | (Version::V9, "v9") => (false, 5),
        (Version::Ipfix, "ipfix-options") => (true, 7),
        _ => return None,
    };
    let count = u16_at(value, 3)?;
    let mut elements = Vec::with_capacity(count.into());
    for _ in 0..count {
        let (ie, len) = (u16_at(value, at)?, u16_at(value, at + 2)?);
        at += 4;
        let pen = if version == Version::Ipfix {
            at += 1;
            match value.get(at - 1)? {
                0 => None,
                1 => {
                    at += 4;
                    Some(u32_at(value, at - 4)?)
                }
                _ => return None,
            }
        } else {
            None
        };
        elements.push((ie, pen, len));
    }
    Some((
        addr,
        version,
        domain,
        options,
        TemplateRecord {
            id,
            count,
            elements,
        },
    ))
}

/// How an element's bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// A big-endian unsigned number, of which the parser keeps the bits of `mask`: what it
    /// makes of an unsigned number of 1, 2, 3, 4 or 8 bytes, of milliseconds of 2, 4 or 8,
    /// of a protocol (1 byte) and of TCP flags (1 or 2 bytes, nine flags), all values whose
    /// number is all that [`Record::set`] uses; read here without making the parser's value.
    /// The lengths of machine words have their own readers (a loop over the bytes was a
    /// tenth of reading a record).
    U8 {
        mask: u64,
    },
    U16 {
        mask: u64,
    },
    U32,
    U64,
    Unsigned {
        mask: u64,
    },
    Ip4,
    Ip6,
    /// By the parser's `FieldValue::from_field_type`.
    Parsed(FieldDataType),
}

impl Read {
    fn of(dtype: FieldDataType, len: u16) -> Read {
        let unsigned = |mask| match len {
            1 => Read::U8 { mask },
            2 => Read::U16 { mask },
            4 if mask == u64::MAX => Read::U32,
            8 if mask == u64::MAX => Read::U64,
            _ => Read::Unsigned { mask },
        };
        match (dtype, len) {
            (FieldDataType::UnsignedDataNumber, 1..=4 | 8)
            | (FieldDataType::DurationMillis, 2 | 4 | 8) => unsigned(u64::MAX),
            (FieldDataType::ProtocolType, 1) => unsigned(0xff),
            (FieldDataType::TcpControlBits, 1 | 2) => unsigned(0x1ff),
            (FieldDataType::Ip4Addr, 4) => Read::Ip4,
            (FieldDataType::Ip6Addr, 16) => Read::Ip6,
            _ => Read::Parsed(dtype),
        }
    }

    /// The number of `b` (the element's bytes) when this reads numbers.
    #[inline(always)]
    fn number(self, b: &[u8]) -> Option<u64> {
        match self {
            Read::U8 { mask } => Some(u64::from(*b.first()?) & mask),
            Read::U16 { mask } => Some(u64::from(u16::from_be_bytes(*b.first_chunk()?)) & mask),
            Read::U32 => Some(u32::from_be_bytes(*b.first_chunk()?).into()),
            Read::U64 => Some(u64::from_be_bytes(*b.first_chunk()?)),
            Read::Unsigned { mask } => {
                Some(b.iter().fold(0u64, |n, &x| n << 8 | u64::from(x)) & mask)
            }
            _ => None,
        }
    }
}

/// One element of a layout.
#[derive(Debug)]
struct Field {
    /// Where its bytes begin in a record, and their count.
    at: usize,
    len: u16,
    read: Read,
    target: Result<Target, String>,
}

/// A data template compiled for reading.
#[derive(Debug)]
pub struct Layout {
    fields: Vec<Field>,
    /// Bytes of one record.
    size: usize,
    /// Whether an element is read by the parser (and may be refused by it).
    parsed: bool,
}

impl Layout {
    /// The layout of a data template, if it is one the parser accepts and the fast path
    /// reads: every element of a fixed, non-zero length; for v9 no element twice.
    fn new(version: Version, rec: &TemplateRecord) -> Option<Layout> {
        let els = &rec.elements;
        if rec.id < 256
            || els.is_empty()
            || els.len() > MAX_ELEMENTS
            || usize::from(rec.count) != els.len()
            || els.iter().any(|&(_, _, len)| len == 0 || len == VARLEN)
        {
            return None;
        }
        let size: usize = els.iter().map(|&(_, _, len)| usize::from(len)).sum();
        if size > usize::from(u16::MAX) {
            return None;
        }
        if version == Version::V9 {
            let mut ids: Vec<u16> = els.iter().map(|&(ie, _, _)| ie).collect();
            ids.sort_unstable();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                return None;
            }
        }
        let mut at = 0;
        let fields = els
            .iter()
            .map(|&(ie, pen, len)| {
                let (dtype, target) = match version {
                    Version::V9 => {
                        let f = V9Field::from(ie);
                        (f.into(), elements::v9_target(f))
                    }
                    Version::Ipfix => {
                        let f = IPFixField::new(ie, pen);
                        (f.into(), elements::ipfix_target(&f))
                    }
                };
                at += usize::from(len);
                Field {
                    at: at - usize::from(len),
                    len,
                    read: Read::of(dtype, len),
                    target,
                }
            })
            .collect::<Vec<Field>>();
        let parsed = fields.iter().any(|f| matches!(f.read, Read::Parsed(_)));
        Some(Layout {
            fields,
            size,
            parsed,
        })
    }

    /// Whether the fast path takes a data set's body: whole records, no more than the
    /// parser reads, and no value the parser would refuse. Asked of every set of a datagram
    /// before any is read, so that a datagram is read whole by one path or the other.
    pub fn takes(&self, body: &[u8]) -> bool {
        let n = body.len() / self.size;
        (1..=MAX_RECORDS).contains(&n)
            && (!self.parsed || body.chunks_exact(self.size).all(|b| self.parses(b)))
    }

    /// Whether the parser takes every element of a record that it reads here itself.
    fn parses(&self, record: &[u8]) -> bool {
        self.fields.iter().all(|f| match f.read {
            Read::Parsed(dtype) => f
                .bytes(record)
                .and_then(|b| parsed(b, dtype, f.len))
                .is_some(),
            _ => true,
        })
    }

    /// Reads the records of a data set's body that [`Layout::takes`], handing each to
    /// `record` (one [`Record`], cleared between records); how many.
    pub fn read(
        &self,
        body: &[u8],
        dataset: &'static str,
        mut record: impl FnMut(&mut Record),
    ) -> usize {
        let mut r = Record::new(dataset);
        let mut n = 0;
        for bytes in body.chunks_exact(self.size) {
            for f in &self.fields {
                // (Always there: a record is the size of its fields.)
                let Some(b) = f.bytes(bytes) else { break };
                match f.read {
                    Read::Ip4 => {
                        if let Some(a) = b.first_chunk::<4>() {
                            r.set_ip(&f.target, (*a).into());
                        }
                    }
                    Read::Ip6 => {
                        if let Some(a) = b.first_chunk::<16>() {
                            r.set_ip(&f.target, (*a).into());
                        }
                    }
                    Read::Parsed(dtype) => {
                        // (Always there: the set was taken.)
                        if let Some(v) = parsed(b, dtype, f.len) {
                            r.set(f.target.clone(), &v);
                        }
                    }
                    number => r.set_u64(&f.target, number.number(b).unwrap_or(0)),
                }
            }
            record(&mut r);
            r.clear();
            n += 1;
        }
        n
    }
}

impl Field {
    /// This element's bytes in a record.
    #[inline(always)]
    fn bytes<'r>(&self, record: &'r [u8]) -> Option<&'r [u8]> {
        record.get(self.at..self.at + usize::from(self.len))
    }
}

/// The parser's value of exactly an element's bytes, or none.
fn parsed(b: &[u8], dtype: FieldDataType, len: u16) -> Option<FieldValue> {
    match FieldValue::from_field_type(b, dtype, len) {
        Ok(([], v)) => Some(v),
        _ => None,
    }
}

/// The layouts of every exporter.
#[derive(Default)]
pub struct Layouts {
    map: HashMap<Key, Layout>,
}

impl Layouts {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, from: SocketAddr, version: Version, domain: u32, id: u16) -> Option<&Layout> {
        self.map.get(&(from, version, domain, id))
    }

    /// Learns the persisted templates (entries of [`super::templates::FileTemplateStore`]).
    pub fn seed<'a>(&mut self, entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
        for (key, value) in entries {
            if let Some((from, version, domain, false, rec)) = stored(key, value) {
                self.define(from, version, domain, &rec);
            }
        }
    }

    fn define(&mut self, from: SocketAddr, version: Version, domain: u32, rec: &TemplateRecord) {
        let key = (from, version, domain, rec.id);
        match Layout::new(version, rec) {
            Some(l) if self.map.len() < MAX_LAYOUTS || self.map.contains_key(&key) => {
                self.map.insert(key, l);
            }
            _ => {
                self.map.remove(&key);
            }
        }
    }

    fn forget_exporter(&mut self, from: SocketAddr) {
        self.map.retain(|k, _| k.0 != from);
    }

    /// Learns the templates of a datagram from `from` that the parser has seen; `decoded`:
    /// whether it decoded without error (if not, templates are only forgotten). Sets are
    /// read up to the first that does not fit, as far as the parser can have read.
    pub fn learn(&mut self, from: SocketAddr, data: &[u8], decoded: bool) {
        // The parser reads at most the header's count of v9 sets (RFC 3954 counts records,
        // so real exporters announce more); IPFIX sets up to the message's length.
        let (version, domain, sets, mut more, max_sets) = match u16_at(data, 0) {
            Some(9) if data.len() >= 20 => {
                let count = u16_at(data, 2).unwrap_or(0);
                (Version::V9, u32_at(data, 16), &data[20..], false, count)
            }
            Some(10) if data.len() >= 16 => {
                let end = usize::from(u16_at(data, 2).unwrap_or(0)).clamp(16, data.len());
                let more = end < data.len();
                (
                    Version::Ipfix,
                    u32_at(data, 12),
                    &data[16..end],
                    more,
                    u16::MAX,
                )
            }
            _ => return,
        };
        let Some(domain) = domain else { return };
        let (mut at, mut read) = (0, 0);
        while let (Some(set), Some(len)) = (u16_at(sets, at), u16_at(sets, at + 2)) {
            if read == max_sets {
                more = true;
                break;
            }
            read += 1;
            let options = match (version, set) {
                (Version::V9, 0) | (Version::Ipfix, 2) => Some(false),
                (Version::V9, 1) | (Version::Ipfix, 3) => Some(true),
                _ => None,
            };
            let len = usize::from(len);
            let Some(body) = sets.get(at + 4..at + len) else {
                if options.is_some() {
                    self.forget_exporter(from);
                    return;
                }
                break;
            };
            at += len;
            let Some(options) = options else { continue };
            let Ok(records) = template_records(version, body, options) else {
                self.forget_exporter(from);
                return;
            };
            // As the parser: withdrawals first (an IPFIX template set's withdrawal of an
            // id it also defines is skipped), then definitions.
            for r in records.iter().filter(|r| r.count == 0) {
                match r.id {
                    2 if version == Version::Ipfix => self
                        .map
                        .retain(|k, _| !(k.0 == from && k.1 == version && k.2 == domain)),
                    id => {
                        self.map.remove(&(from, version, domain, id));
                    }
                }
            }
            for r in records.iter().filter(|r| r.count > 0) {
                if options || !decoded {
                    self.map.remove(&(from, version, domain, r.id));
                } else {
                    self.define(from, version, domain, r);
                }
            }
        }
        if more {
            // What follows is read as another message, which this reader does not follow:
            // the parser may have learned something there that a layout would contradict.
            self.forget_exporter(from);
        }
    }
}

/// The times and scope a message's header gives.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub version: Version,
    /// Observation domain (IPFIX) or source id (v9).
    pub domain: u32,
    /// Seconds since the Unix epoch at export.
    pub export_secs: u32,
    /// Milliseconds since the exporter booted (v9).
    pub uptime_ms: Option<u32>,
    sets: &'a [u8],
}

impl<'a> Message<'a> {
    /// A datagram that is exactly one v9 or IPFIX message whose sets fill it exactly (after
    /// [`super::netflow::strip_padding`]); `None` for anything else.
    pub fn read(data: &'a [u8]) -> Option<Message<'a>> {
        let msg = match u16_at(data, 0)? {
            9 if data.len() >= 20 => Message {
                version: Version::V9,
                domain: u32_at(data, 16)?,
                export_secs: u32_at(data, 8)?,
                uptime_ms: Some(u32_at(data, 4)?),
                sets: &data[20..],
            },
            10 if data.len() >= 16 && usize::from(u16_at(data, 2)?) == data.len() => Message {
                version: Version::Ipfix,
                domain: u32_at(data, 12)?,
                export_secs: u32_at(data, 4)?,
                uptime_ms: None,
                sets: &data[16..],
            },
            _ => return None,
        };
        // The parser reads at most the v9 header's count of sets.
        let max_sets = match msg.version {
            Version::V9 => u16_at(data, 2)?,
            Version::Ipfix => u16::MAX,
        };
        let (mut at, mut sets) = (0, 0);
        while at < msg.sets.len() {
            let len = usize::from(u16_at(msg.sets, at + 2)?);
            if len < 4 || at + len > msg.sets.len() || sets == max_sets {
                return None;
            }
            at += len;
            sets += 1;
        }
        Some(msg)
    }

    /// (set id, body) of each set, in order.
    pub fn sets(&self) -> impl Iterator<Item = (u16, &'a [u8])> + use<'a> {
        let sets = self.sets;
        let mut at = 0;
        std::iter::from_fn(move || {
            let id = u16_at(sets, at)?;
            let len = usize::from(u16_at(sets, at + 2)?);
            let body = sets.get(at + 4..at + len)?;
            at += len;
            Some((id, body))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::varlen::tests::{addr, message};
    use super::*;

    /// Template 300: sourceIPv4Address, protocolIdentifier, an enterprise element of 2 bytes.
    fn template() -> Vec<u8> {
        let mut t = vec![1, 44, 0, 3];
        t.extend_from_slice(&[0, 8, 0, 4, 0, 4, 0, 1]);
        t.extend_from_slice(&[0x80, 5, 0, 2, 0, 0, 0x9, 0x99]);
        t
    }

    /// The numbers read here are the parser's, for every value of one and two bytes and
    /// for the edges of longer ones.
    #[test]
    fn numbers_read_here_are_the_parsers() {
        let mut checked = 0;
        for dtype in [
            FieldDataType::UnsignedDataNumber,
            FieldDataType::DurationMillis,
            FieldDataType::ProtocolType,
            FieldDataType::TcpControlBits,
        ] {
            for len in [1u16, 2, 3, 4, 8] {
                let read = Read::of(dtype, len);
                if read == Read::Parsed(dtype) {
                    continue;
                }
                let values: Vec<u64> = match len {
                    1 => (0..=0xff).collect(),
                    2 => (0..=0xffff).collect(),
                    _ => vec![0, 1, 0x1ff, 0x8000_0000, u64::MAX >> (64 - 8 * len)],
                };
                for v in values {
                    let bytes = &v.to_be_bytes()[8 - usize::from(len)..];
                    let (rest, parsed) =
                        FieldValue::from_field_type(bytes, dtype, len).expect("parses");
                    assert!(rest.is_empty());
                    assert_eq!(
                        read.number(bytes),
                        elements::as_u64(&parsed),
                        "{dtype:?} {len} {v}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 3 * 0x10000, "{checked}");
    }

    #[test]
    fn template_records_are_read_with_enterprise_numbers_and_padding() {
        let mut body = template();
        body.extend_from_slice(&[0, 0]);
        let recs = template_records(Version::Ipfix, &body, false).expect("records");
        assert_eq!(
            recs,
            vec![TemplateRecord {
                id: 300,
                count: 3,
                elements: vec![(8, None, 4), (4, None, 1), (5, Some(0x999), 2)],
            }]
        );
        // Cut inside the third element: the first records only, as an error.
        let cut = template_records(Version::Ipfix, &template()[..14], false);
        assert_eq!(cut, Err(vec![]));
    }

    #[test]
    fn learned_layouts_read_records_and_forget_on_withdrawal_or_varlen() {
        let mut l = Layouts::default();
        l.learn(addr(), &message(&[(2, template())]), true);
        let layout = l.get(addr(), Version::Ipfix, 3, 300).expect("layout");
        let body = [10, 0, 0, 1, 6, 0xab, 0xcd, 10, 0, 0, 2, 17, 0, 1, 0];
        let mut read = Vec::new();
        assert!(layout.takes(&body));
        assert_eq!(
            layout.read(&body, "flow.ipfix", |r| read.push(r.flow.clone())),
            2
        );
        let srcs: Vec<String> = read
            .iter()
            .filter_map(|f| Some(f.src?.to_string()))
            .collect();
        assert_eq!(srcs, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(read[1].proto, Some(17));
        assert_eq!(
            read[0].extra_field("netflow.pen2457.ie5"),
            Some(&serde_json::json!("abcd"))
        );
        // A set with no whole record is the parser's.
        assert!(!layout.takes(&body[..6]));
        // Not decoded whole by the parser: not learned, and forgotten.
        l.learn(addr(), &message(&[(2, template())]), false);
        assert!(l.is_empty());
        l.learn(addr(), &message(&[(2, template())]), true);
        l.learn(addr(), &message(&[(2, vec![1, 44, 0, 0])]), true);
        assert!(l.is_empty(), "withdrawn");
        l.learn(addr(), &message(&[(2, template())]), true);
        let varlen = vec![1, 44, 0, 1, 0, 82, 255, 255];
        l.learn(addr(), &message(&[(2, varlen)]), true);
        assert!(l.is_empty(), "redefined with a variable-length element");
        l.learn(addr(), &message(&[(2, template())]), true);
        l.learn(addr(), &message(&[(2, vec![0, 2, 0, 0])]), true);
        assert!(l.is_empty(), "all withdrawn");
    }

    #[test]
    fn persisted_templates_are_seeded() {
        let mut t = vec![1, 1, 44, 0, 2];
        t.extend_from_slice(&[0, 8, 0, 4, 0, 0, 5, 0, 2, 1, 0, 0, 9, 0x99]);
        let v9 = vec![1, 1, 45, 0, 2, 0, 8, 0, 4, 0, 4, 0, 1];
        let mut l = Layouts::default();
        l.seed([
            ("ipfix:192.0.2.1:4739/3|ipfix|300", t.as_slice()),
            ("v9:192.0.2.1:4739/0|v9|301", v9.as_slice()),
            ("ipfix:192.0.2.1:4739/3|ipfix-options|302", t.as_slice()),
            ("ipfix:192.0.2.1:4739/3|ipfix|303", &t[..9]),
        ]);
        assert_eq!(l.len(), 2);
        assert!(l.get(addr(), Version::Ipfix, 3, 300).is_some());
        assert!(l.get(addr(), Version::V9, 0, 301).is_some());
    }

    #[test]
    fn only_whole_single_messages_are_read() {
        let m = message(&[(300, vec![1, 2, 3, 4])]);
        assert!(Message::read(&m).is_some());
        let mut two = m.clone();
        two.extend_from_slice(&m);
        assert!(Message::read(&two).is_none());
        let mut bad = m.clone();
        bad[19] = 9; // set length beyond the message
        assert!(Message::read(&bad).is_none());
        assert!(Message::read(&m[..10]).is_none());
    }
}
