//! The body of wire versions 2 to 4: a batch as compact binary (zstd-compressed by
//! [`crate::wire`]).
//!
//! JSON cost the agent a sixth of its time (escaping every string, formatting every number)
//! and the collector more than that to parse; this form is written with `memcpy`s and varints
//! and read without an intermediate tree.
//!
//! ```text
//! batch   = batch_id (16 bytes) seq:uint agent_id:str count:uint event*
//! event   = count:uint (name value)*
//! name    = str (version 2)
//!         | 0:uint, the name last read at the same place of an event (version 3)
//!         | (len + 1):uint, then len bytes of UTF-8 (version 3)
//! value   = tag (1 byte), then by tag:
//!           0 null | 1 false | 2 true | 3 uint | 4 sint (zigzag) | 5 f64 (8 bytes LE)
//!           6 str | 7 count:uint value* (array) | 8 count:uint (name:str value)* (object)
//!           and, from version 4, values that read back as the text [`Event::set_time`] and
//!           [`Event::set_ip`] write:
//!           9 time: i64 LE, nanoseconds since the Unix epoch (8 bytes)
//!           10 IPv4 address (4 bytes) | 11 IPv6 address (16 bytes)
//! uint    = unsigned LEB128, at most 10 bytes
//! str     = len:uint, then len bytes of UTF-8
//! ```
//!
//! Version 3 names a field by reference when the last event that had a field at the same
//! place had the same name there: events of one source mostly have the same fields in the same order, and the names
//! written in full were most of a flow event's bytes (and so of the copying and the
//! compressing). A [`Writer`] refers only to the event before in its own bytes, never across
//! [`Writer::append`], so appended writers stay readable.
//!
//! Version 4 writes times and addresses in binary: formatting them as text was a third of
//! the cost of writing a flow event, and their text a third of its bytes. The reader turns
//! them into the same text, so an [`Event`] does not know which form travelled.
//!
//! Invariants: decoding never trusts a count: every element takes at least one byte, so a
//! count larger than the bytes left is an error before anything is allocated; nesting deeper
//! than [`MAX_DEPTH`] is an error, not a stack overflow; trailing bytes are an error; a
//! reference to a place no event before had is an error.

use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::event::{Event, Fields, ip_text, rfc3339, with_rfc3339};
use crate::fields::{self, Key};
use crate::wire::Batch;

/// Deepest nesting of arrays and objects a value may have (serde_json's own limit is 128).
pub const MAX_DEPTH: usize = 64;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const SINT: u8 = 4;
const FLOAT: u8 = 5;
const STR: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;
const TIME: u8 = 9;
const IPV4: u8 = 10;
const IPV6: u8 = 11;

/// Builds a body event by event, so that a batcher holds encoded bytes, not events: an event
/// is encoded while it is still in the cache and its memory is reused at once (holding 2,000
/// events of a batch cost the agent more in cache misses than encoding them).
#[derive(Debug, Default)]
pub struct Writer {
    events: Vec<u8>,
    count: u64,
    /// Where the name last written at each place of an event is in `names` (offset,
    /// length), and the address of that name when it was given as a `&'static str` (else
    /// 0): what a reader holds as it reads, too. Empty when the bytes before are not all
    /// this writer's own.
    last: Vec<Place>,
    /// Copies of the names in `last`, apart from `events`: comparing with bytes just written
    /// to `events` stalled on the stores still in flight (a sixth of a flow's encoding).
    names: Vec<u8>,
}

/// Bytes of names kept for comparing before they are forgotten (and written in full again).
const MAX_NAME_BYTES: usize = 64 * 1024;

/// The name last written at one place of an event: see [`Writer::last`].
#[derive(Debug, Clone, Copy)]
struct Place {
    at: usize,
    len: usize,
    /// The address of a `&'static str` with these bytes, or 0. Static memory never changes,
    /// so the same address and length are the same name, with no bytes compared.
    known: usize,
}

impl Writer {
    pub fn with_capacity(bytes: usize) -> Self {
        Writer {
            events: Vec::with_capacity(bytes),
            ..Writer::default()
        }
    }

    pub fn push(&mut self, e: &Event) {
        let mut ev = self.event();
        for (k, v) in e.iter() {
            ev.value(k, v);
        }
    }

    /// Starts an event written field by field, with no [`Event`] in between (for sources
    /// that make many events of one shape: flows). It is complete when the returned
    /// [`EventWriter`] is dropped.
    #[inline]
    pub fn event(&mut self) -> EventWriter<'_> {
        let at = self.events.len();
        // The count of fields, patched in at the end: one byte holds up to 127.
        self.events.push(0);
        EventWriter {
            w: self,
            at,
            fields: 0,
        }
    }

    /// Appends the events of `other`.
    pub fn append(&mut self, other: &Writer) {
        self.events.extend_from_slice(&other.events);
        self.count += other.count;
        // The event before the next one is `other`'s last, whose names this one does not
        // know.
        self.forget_names();
    }

    /// Empties the writer, keeping its memory.
    pub fn clear(&mut self) {
        self.events.clear();
        self.count = 0;
        self.forget_names();
    }

    fn forget_names(&mut self) {
        self.last.clear();
        self.names.clear();
    }

    /// Events pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes the writer holds without growing.
    pub fn capacity(&self) -> usize {
        self.events.capacity()
    }

    /// Encoded size of the events pushed, in bytes.
    pub fn size(&self) -> usize {
        self.events.len()
    }

    /// The body's header (everything before the events); the body is the header, then
    /// [`Writer::events`].
    pub fn header(&self, batch_id: Uuid, agent_id: &str, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + agent_id.len());
        out.extend_from_slice(batch_id.as_bytes());
        uint(&mut out, seq);
        string(&mut out, agent_id);
        uint(&mut out, self.count);
        out
    }

    /// The encoded events.
    pub fn events(&self) -> &[u8] {
        &self.events
    }
}

/// One event being written into a [`Writer`]. A name written twice reads back as
/// [`Event::set`] leaves it: in its first place, with its last value.
pub struct EventWriter<'a> {
    w: &'a mut Writer,
    at: usize,
    fields: u64,
}

impl<'w> EventWriter<'w> {
    /// Writes the name of the next field: a reference when the event before had the same
    /// name at this place. `known`: the name is a `&'static str` (its address is kept).
    #[inline(always)]
    fn name_of(&mut self, name: &str, known: bool) -> &mut Vec<u8> {
        let place = self.fields as usize;
        self.fields += 1;
        let w = &mut *self.w;
        let out = &mut w.events;
        let address = if known { name.as_ptr() as usize } else { 0 };
        match w.last.get_mut(place) {
            Some(p) if known && p.known == address && p.len == name.len() => out.push(0),
            Some(p)
                if w.names
                    .get(p.at..p.at + p.len)
                    .is_some_and(|n| same(n, name.as_bytes())) =>
            {
                if known {
                    p.known = address;
                }
                out.push(0)
            }
            _ => {
                uint(out, name.len() as u64 + 1);
                out.extend_from_slice(name.as_bytes());
                if w.names.len() + name.len() > MAX_NAME_BYTES {
                    // Many different names (events of many shapes): start over.
                    w.last.clear();
                    w.names.clear();
                }
                let here = Place {
                    at: w.names.len(),
                    len: name.len(),
                    known: address,
                };
                w.names.extend_from_slice(name.as_bytes());
                if let Some(slot) = w.last.get_mut(place) {
                    *slot = here;
                } else if w.last.len() == place {
                    w.last.push(here);
                }
                // (Else forgotten above, at a later place: the places before it are unknown.)
            }
        }
        out
    }

    #[inline]
    fn name(&mut self, name: &str) -> &mut Vec<u8> {
        self.name_of(name, false)
    }

    /// The fields of this event whose names are `&'static str`, compared by address rather
    /// than byte by byte (for sources that write many events of one shape: flows).
    pub fn known(&mut self) -> Known<'_, 'w> {
        Known(self)
    }
}

/// Writes fields named by `&'static str`s: see [`EventWriter::known`]. The values are
/// written as [`Fields`] writes them.
pub struct Known<'e, 'w>(&'e mut EventWriter<'w>);

impl Known<'_, '_> {
    #[inline]
    pub fn str(&mut self, name: &'static str, v: &str) {
        put_str(self.0.name_of(name, true), v);
    }

    #[inline]
    pub fn u64(&mut self, name: &'static str, v: u64) {
        put_u64(self.0.name_of(name, true), v);
    }

    #[inline]
    pub fn strs(&mut self, name: &'static str, v: &[&str]) {
        put_strs(self.0.name_of(name, true), v);
    }

    #[inline]
    pub fn ip(&mut self, name: &'static str, ip: IpAddr) {
        put_ip(self.0.name_of(name, true), ip);
    }

    #[inline]
    pub fn time_ns(&mut self, name: &'static str, ns: i64) {
        put_time_ns(self.0.name_of(name, true), ns);
    }

    /// A field named by a [`Key`]: by address when the key is a constant.
    #[inline]
    pub fn value(&mut self, name: &Key, v: &Value) {
        let out = match name {
            Key::Borrowed(n) => self.0.name_of(n, true),
            Key::Owned(n) => self.0.name_of(n, false),
        };
        value(out, v);
    }
}

#[inline]
fn put_str(out: &mut Vec<u8>, v: &str) {
    out.push(STR);
    string(out, v);
}

#[inline]
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.push(UINT);
    uint(out, v);
}

#[inline]
fn put_strs(out: &mut Vec<u8>, v: &[&str]) {
    out.push(ARRAY);
    uint(out, v.len() as u64);
    for s in v {
        put_str(out, s);
    }
}

#[inline]
fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(IPV4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(IPV6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

#[inline]
fn put_time_ns(out: &mut Vec<u8>, ns: i64) {
    out.push(TIME);
    out.extend_from_slice(&ns.to_le_bytes());
}

impl EventWriter<'_> {
    /// A time given in nanoseconds since the Unix epoch: what [`Fields::time`] writes for
    /// the same instant, without chrono (for sources that keep times as integers: flows).
    pub fn time_ns(&mut self, name: &str, ns: i64) {
        put_time_ns(self.name(name), ns);
    }
}

impl Fields for EventWriter<'_> {
    fn str(&mut self, name: &str, v: &str) {
        put_str(self.name(name), v);
    }

    fn u64(&mut self, name: &str, v: u64) {
        put_u64(self.name(name), v);
    }

    fn strs(&mut self, name: &str, v: &[&str]) {
        put_strs(self.name(name), v);
    }

    fn value(&mut self, name: &str, v: &Value) {
        value(self.name(name), v);
    }

    fn time(&mut self, name: &str, at: DateTime<Utc>) {
        // Outside i64 nanoseconds (years 1677 to 2262), and a leap second, which the nanosecond
        // count would fold into the next second: as text.
        match at.timestamp_nanos_opt() {
            Some(ns) if at.timestamp_subsec_nanos() < 1_000_000_000 => self.time_ns(name, ns),
            _ => with_rfc3339(at, |t| self.str(name, t)),
        }
    }

    fn ip(&mut self, name: &str, ip: IpAddr) {
        put_ip(self.name(name), ip);
    }
}

impl Drop for EventWriter<'_> {
    #[inline]
    fn drop(&mut self) {
        let out = &mut self.w.events;
        if self.fields < 0x80 {
            out[self.at] = self.fields as u8;
        } else {
            // Rare: a longer count, moved in (which moves the names too: none to refer to).
            let mut count = Vec::with_capacity(10);
            uint(&mut count, self.fields);
            out.splice(self.at..self.at + 1, count);
            self.w.forget_names();
        }
        self.w.count += 1;
    }
}

/// Whether two short byte strings (field names) are equal, compared eight bytes at a time
/// inline (the last eight overlapping the ones before): a call to `memcmp` per field cost a
/// twentieth of writing a flow event.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let word = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// The events of `bytes` (a sequence of `event`s, as [`Writer::events`] holds them).
pub fn read_events(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut r = Reader {
        body: bytes,
        at: 0,
        references: true,
        typed: true,
    };
    let mut events = Vec::new();
    let mut last = Vec::new();
    while r.at < bytes.len() {
        events.push(r.event(&mut last)?);
    }
    Ok(events)
}

#[inline]
fn uint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline]
fn string(out: &mut Vec<u8>, s: &str) {
    uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(UINT);
                uint(out, u);
            } else if let Some(i) = n.as_i64() {
                out.push(SINT);
                uint(out, ((i << 1) ^ (i >> 63)) as u64);
            } else {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(STR);
            string(out, s);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            uint(out, items.len() as u64);
            items.iter().for_each(|i| value(out, i));
        }
        Value::Object(map) => {
            out.push(OBJECT);
            uint(out, map.len() as u64);
            for (k, v) in map {
                string(out, k);
                value(out, v);
            }
        }
    }
}

/// Reads a whole body of wire `version` (2 to 4). The error says what is wrong and at which
/// byte.
pub fn decode(body: &[u8], version: u16) -> Result<Batch, String> {
    let mut r = Reader {
        body,
        at: 0,
        references: version >= 3,
        typed: version >= 4,
    };
    let id: [u8; 16] = r.bytes(16)?.try_into().map_err(|_| r.error("batch id"))?;
    let seq = r.uint()?;
    let agent_id = r.str()?.to_owned();
    let n = r.count()?;
    let mut events = Vec::with_capacity(n);
    let mut last = Vec::new();
    for _ in 0..n {
        events.push(r.event(&mut last)?);
    }
    if r.at != body.len() {
        return Err(r.error("trailing bytes after the last event"));
    }
    Ok(Batch {
        batch_id: Uuid::from_bytes(id),
        agent_id,
        seq,
        events,
    })
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
    /// Version 3 names (see the module docs).
    references: bool,
    /// Version 4 times and addresses.
    typed: bool,
}

impl<'a> Reader<'a> {
    /// One event. The events of a batch mostly have the same names in the same places:
    /// `last` holds the name at each place in the last event, to compare with before
    /// looking a name up.
    fn event(&mut self, last: &mut Vec<(&'a str, Key)>) -> Result<Event, String> {
        let fields = self.count()?;
        let mut e = Event::default();
        for i in 0..fields {
            let name = if self.references {
                match self.uint()? {
                    0 => match last.get(i) {
                        Some((_, k)) => {
                            let k = k.clone();
                            let v = self.value(0)?;
                            e.set(k, v);
                            continue;
                        }
                        None => return Err(self.error("name reference")),
                    },
                    n => self.str_of(n - 1)?,
                }
            } else {
                self.str()?
            };
            let k = match last.get_mut(i) {
                Some((seen, k)) if *seen == name => k.clone(),
                Some(slot) => {
                    *slot = (name, fields::intern(name));
                    slot.1.clone()
                }
                None => {
                    last.push((name, fields::intern(name)));
                    last[i].1.clone()
                }
            };
            let v = self.value(0)?;
            e.set(k, v);
        }
        Ok(e)
    }

    fn error(&self, what: &str) -> String {
        format!("bad {what} at byte {}", self.at)
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.body.get(self.at).ok_or_else(|| self.error("end"))?;
        self.at += 1;
        Ok(b)
    }

    /// The next `N` bytes (a value of fixed size, `what`).
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        self.bytes(N)?.try_into().map_err(|_| self.error(what))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.body.len())
            .ok_or_else(|| self.error("length"))?;
        let s = &self.body[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn uint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                // The tenth byte may carry only the top bit.
                return if shift == 63 && b > 1 {
                    Err(self.error("varint"))
                } else {
                    Ok(n)
                };
            }
        }
        Err(self.error("varint"))
    }

    /// A count of elements that follow, each at least one byte long.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.uint()?;
        if n > (self.body.len() - self.at) as u64 {
            return Err(self.error("count"));
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.uint()?;
        self.str_of(n)
    }

    fn str_of(&mut self, n: u64) -> Result<&'a str, String> {
        let n = usize::try_from(n).map_err(|_| self.error("length"))?;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| self.error("UTF-8"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let tag = self.byte()?;
        Ok(match tag {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UINT => Value::from(self.uint()?),
            SINT => {
                let z = self.uint()?;
                Value::from(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            FLOAT => {
                // JSON has no NaN or infinity; neither does a value that came from it.
                Number::from_f64(f64::from_le_bytes(self.array("float")?))
                    .map(Value::Number)
                    .ok_or_else(|| self.error("float"))?
            }
            STR => Value::String(self.str()?.to_owned()),
            TIME if self.typed => {
                let ns = i64::from_le_bytes(self.array("time")?);
                Value::String(rfc3339(Utc.timestamp_nanos(ns)))
            }
            IPV4 if self.typed => Value::String(ip_text(self.array::<4>("address")?.into())),
            IPV6 if self.typed => Value::String(ip_text(self.array::<16>("address")?.into())),
            ARRAY | OBJECT if depth >= MAX_DEPTH => return Err(self.error("nesting")),
            ARRAY => {
                let n = self.count()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let n = self.count()?;
                let mut map = Map::new();
                for _ in 0..n {
                    let k = self.str()?.to_owned();
                    map.insert(k, self.value(depth + 1)?);
                }
                Value::Object(map)
            }
            _ => return Err(self.error("value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: &Batch) -> Vec<u8> {
        let mut w = Writer::default();
        b.events.iter().for_each(|e| w.push(e));
        [
            w.header(b.batch_id, &b.agent_id, b.seq),
            w.events().to_vec(),
        ]
        .concat()
    }

    fn round_trip(events: Vec<Event>) -> Batch {
        let b = Batch {
            batch_id: Uuid::now_v7(),
            agent_id: "edge-1".into(),
            seq: 300,
            events,
        };
        let back = decode(&body(&b), 3).expect("decodes");
        assert_eq!(back, b);
        back
    }

    #[test]
    fn an_event_written_field_by_field_reads_back_as_set_builds_it() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 5_000).expect("time");
        let ip: std::net::IpAddr = "192.0.2.7".parse().expect("ip");
        let mut w = Writer::default();
        let mut expected = Event::default();
        {
            let mut ev = w.event();
            ev.time("@timestamp", at);
            ev.ip("source.ip", ip);
            ev.str("message", "first");
            ev.u64("source.port", 443);
            ev.strs("tcp.flags", &["SYN", "ACK"]);
            ev.value("extra", &serde_json::json!({"a": [1, -2, 0.5, null]}));
            // Written twice: the last value wins, as with `set`.
            ev.str("message", "second");
        }
        expected.set_time("@timestamp", at);
        expected.set_ip("source.ip", ip);
        expected.set_str("message", "second");
        expected.set_u64("source.port", 443);
        expected.set("tcp.flags", serde_json::json!(["SYN", "ACK"]));
        expected.set("extra", serde_json::json!({"a": [1, -2, 0.5, null]}));
        // An event of more fields than one byte counts, after the first.
        {
            let mut ev = w.event();
            for i in 0..300u64 {
                ev.u64(&format!("f{i}"), i);
            }
        }
        let wide: Event = (0..300u64)
            .map(|i| (format!("f{i}"), Value::from(i)))
            .collect();
        assert_eq!(w.count(), 2);
        assert_eq!(read_events(w.events()), Ok(vec![expected, wide]));
    }

    #[test]
    fn times_and_addresses_travel_in_binary_and_read_back_as_their_text() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let times = [
            t("2026-11-23T10:00:00Z"),
            t("2026-11-23T10:00:00.120Z"),
            t("2026-11-23T10:00:00.000120Z"),
            t("2026-11-23T10:00:00.000000120Z"),
            t("1960-01-01T00:00:00.5Z"),
            // Beyond i64 nanoseconds, and a leap second: written as text.
            t("2300-01-01T00:00:00Z"),
            t("0001-01-01T00:00:00Z"),
            t("2016-12-31T23:59:60.5Z"),
        ];
        let ips: Vec<IpAddr> = [
            "192.0.2.7",
            "0.0.0.0",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "::",
        ]
        .iter()
        .map(|s| s.parse().expect("ip"))
        .collect();
        let mut w = Writer::default();
        let mut expected = Event::default();
        {
            let mut ev = w.event();
            for (i, at) in times.iter().enumerate() {
                ev.time(&format!("t{i}"), *at);
                expected.set_time(format!("t{i}"), *at);
            }
            // The same instants given as integers read back as the same text.
            for (i, at) in times[..5].iter().enumerate() {
                let ns = at.timestamp_nanos_opt().expect("in range");
                ev.time_ns(&format!("n{i}"), ns);
                expected.set_time(format!("n{i}"), *at);
            }
            for (i, ip) in ips.iter().enumerate() {
                ev.ip(&format!("ip{i}"), *ip);
                expected.set_ip(format!("ip{i}"), *ip);
            }
        }
        // Binary: 1 tag + 8 bytes per time of the first five (twice), 1 + 4 or 1 + 16 per
        // address.
        let typed = w.events().iter().filter(|&&b| b == TIME).count();
        assert!(typed >= 10, "{typed}");
        assert_eq!(read_events(w.events()), Ok(vec![expected.clone()]));
        let body = [w.header(Uuid::nil(), "a", 1), w.events().to_vec()].concat();
        assert_eq!(decode(&body, 4).map(|b| b.events), Ok(vec![expected]));
        // Before version 4 these tags are not values; cut short they are errors.
        assert!(decode(&body, 3).is_err_and(|e| e.contains("value tag")));
        for n in 0..body.len() {
            assert!(decode(&body[..n], 4).is_err(), "{n}");
        }
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let e: Event = [
            ("n", Value::Null),
            ("t", Value::Bool(true)),
            ("f", Value::Bool(false)),
            ("u", Value::from(u64::MAX)),
            ("i", Value::from(i64::MIN)),
            ("m", Value::from(-1)),
            ("x", Value::from(-0.5)),
            ("s", Value::from("héllo\n\"")),
            ("tags", serde_json::json!(["a", 1, [null, {"k": [2.5]}]])),
            ("o", serde_json::json!({"a": {"b": "c"}, "": ""})),
        ]
        .into_iter()
        .collect();
        let back = round_trip(vec![e, Event::default()]);
        // Field order is kept, not only the set of fields.
        let names: Vec<&str> = back.events[0].iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["n", "t", "f", "u", "i", "m", "x", "s", "tags", "o"]);
    }

    /// Whether `body` fails to decode with an error that mentions `what`.
    fn fails(body: &[u8], what: &str) -> bool {
        decode(body, 3).is_err_and(|e| e.contains(what))
    }

    #[test]
    fn hostile_bodies_are_errors() {
        let body = body(&Batch {
            batch_id: Uuid::nil(),
            agent_id: "a".into(),
            seq: 1,
            events: vec![[("k", Value::from("v"))].into_iter().collect()],
        });
        // Every truncation is an error, and so is a trailing byte.
        for n in 0..body.len() {
            assert!(decode(&body[..n], 3).is_err(), "{n}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(fails(&longer, "trailing"));
        // A count of 2^62 events in a few bytes is refused before anything is allocated.
        let mut huge = body[..16].to_vec();
        huge.extend([1, 1, b'a']);
        huge.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        assert!(fails(&huge, "count"));
        // An eleven-byte varint.
        let mut long_varint = body[..16].to_vec();
        long_varint.extend([0xff; 10]);
        long_varint.push(0);
        assert!(fails(&long_varint, "varint"));
        // Deep nesting: an error, not a stack overflow.
        let mut deep = body[..16].to_vec();
        deep.extend([1, 1, b'a', 1, 1, 2, b'k']);
        deep.extend(std::iter::repeat_n([ARRAY, 1], 10_000).flatten());
        deep.push(NULL);
        assert!(fails(&deep, "nesting"));
        // Invalid UTF-8 and an unknown tag.
        let bad_utf8 = [&body[..16], &[1, 1, b'a', 1, 1, 2, b'k', STR, 1, 0xff]].concat();
        assert!(fails(&bad_utf8, "UTF-8"));
        let bad_tag = [&body[..16], &[1, 1, b'a', 1, 1, 2, b'k', 9]].concat();
        assert!(fails(&bad_tag, "tag"));
    }

    /// Names written before at the same place are referred to, not repeated: within a writer,
    /// never across an append, nor to a wide event (whose count moved its bytes).
    #[test]
    fn repeated_names_are_references_within_a_writer_only() {
        let event = |w: &mut Writer, port: u64| {
            let mut ev = w.event();
            ev.str("event.dataset", "flow.netflow");
            ev.u64("source.port", port);
        };
        let mut a = Writer::default();
        event(&mut a, 1);
        let first = a.size();
        event(&mut a, 2);
        // The count, two references, and the values (tag, length, 12 bytes; tag, 1 byte).
        assert_eq!(a.size() - first, 1 + 2 + 14 + 2);
        let mut b = Writer::default();
        event(&mut b, 3);
        event(&mut b, 4);
        a.append(&b);
        event(&mut a, 5);
        {
            let mut ev = a.event();
            for i in 0..200u64 {
                ev.u64("source.port", i);
            }
        }
        event(&mut a, 6);
        let back = read_events(a.events()).expect("reads");
        let ports: Vec<Option<u64>> = back.iter().map(|e| e.get_u64("source.port")).collect();
        assert_eq!(
            ports,
            [
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(199),
                Some(6)
            ]
        );
        assert!(
            back.iter()
                .all(|e| e.get_str("event.dataset").is_some() || e.len() == 1)
        );
        // A reference to a place no event before had is an error, not a guess.
        assert!(read_events(&[1, 0, STR, 0]).is_err());
    }

    /// Names given as constants (compared by address) and as text (compared byte by byte)
    /// at the same places, in events of changing shapes, read back as written; a constant
    /// seen again refers to the name before it.
    #[test]
    fn constant_names_refer_by_address_and_mix_with_others() {
        const PORT: &str = "source.port";
        const PREFIX: &str = "source.port.x";
        let owned = |s: &str| Key::Owned(s.to_owned());
        let mut w = Writer::default();
        let mut expected = Vec::new();
        for i in 0..60u64 {
            let mut e = Event::default();
            let mut ev = w.event();
            let mut k = ev.known();
            k.u64(fields::SOURCE_BYTES, i);
            e.set_u64(fields::SOURCE_BYTES, i);
            // A name of the same address but another length, and the same name as text.
            match i % 4 {
                0 => k.u64(PORT, i),
                1 => k.u64(&PREFIX[..PORT.len()], i),
                2 => k.u64(PREFIX, i),
                _ => k.value(&owned(PORT), &Value::from(i)),
            }
            e.set_u64(if i % 4 == 2 { PREFIX } else { PORT }, i);
            if i % 3 == 0 {
                k.value(&Key::Borrowed(fields::TCP_FLAGS), &Value::from("SYN"));
                e.set(fields::TCP_FLAGS, Value::from("SYN"));
            }
            // Text names after the constants, then constants again.
            ev.u64(&format!("n{}", i % 5), i);
            e.set_u64(format!("n{}", i % 5), i);
            ev.known().time_ns(fields::EVENT_END, i as i64);
            e.set_time(fields::EVENT_END, Utc.timestamp_nanos(i as i64));
            drop(ev);
            expected.push(e);
        }
        assert_eq!(read_events(w.events()), Ok(expected));
        // The constant at the same place as before is a reference: a count, one byte per
        // name and the value.
        let mut w = Writer::default();
        w.event().known().u64(PORT, 1);
        let first = w.size();
        w.event().known().u64(PORT, 2);
        assert_eq!(w.size() - first, 1 + 1 + 2);
    }

    /// Bodies of wire version 2 (every name in full) still decode.
    #[test]
    fn version_2_bodies_still_decode() {
        let mut body = vec![7; 16];
        body.extend([5, 2, b'a', b'1', 2]);
        for port in [22u8, 80] {
            body.extend([1, 11]);
            body.extend(b"source.port");
            body.extend([UINT, port]);
        }
        let b = decode(&body, 2).expect("decodes");
        let ports: Vec<Option<u64>> = b.events.iter().map(|e| e.get_u64("source.port")).collect();
        assert_eq!((b.seq, b.agent_id.as_str()), (5, "a1"));
        assert_eq!(ports, [Some(22), Some(80)]);
    }
}
