//! The body of wire versions 2 to 5: a batch as compact binary (zstd-compressed by
//! [`crate::wire`]).
//!
//! JSON cost the agent a sixth of its time (escaping every string, formatting every number)
//! and the collector more than that to parse; this form is written with `memcpy`s and varints
//! and read without an intermediate tree.
//!
//! ```text
//! batch   = batch_id (16 bytes) seq:uint agent_id:str count:uint event*
//! event   = count:uint (name value)*                 (versions 2 to 4)
//!         | (2 count + 1):uint value*count           (version 5: every name the one last
//!                                                     read at its place)
//!         | (2 count):uint name*count value*count    (version 5)
//! name    = str (version 2)
//!         | 0:uint, the name last read at the same place of an event (from version 3)
//!         | (len + 1):uint, then len bytes of UTF-8 (from version 3)
//! value   = tag (1 byte), then by tag:
//!           0 null | 1 false | 2 true | 3 uint | 4 sint (zigzag) | 5 f64 (8 bytes LE)
//!           6 str | 7 count:uint value* (array) | 8 count:uint (name:str value)* (object)
//!           and, from version 4, values that read back as the text [`Event::set_time`] and
//!           [`Event::set_ip`] write:
//!           9 time: i64 LE, nanoseconds since the Unix epoch (8 bytes)
//!           10 IPv4 address (4 bytes) | 11 IPv6 address (16 bytes)
//!           and, from version 5, as the value of a field (not inside an array or object):
//!           12 the value last read at the same place of an event, when that was a time
//!              or a value of up to 17 bytes other than an array or object
//!           13 a time: the time last read at the same place, plus a whole number of
//!              milliseconds (zigzag uint)
//! uint    = unsigned LEB128, at most 10 bytes
//! str     = len:uint, then len bytes of UTF-8
//! ```
//!
//! Version 3 names a field by reference when the last event that had a field at the same
//! place had the same name there: events of one source mostly have the same fields in the
//! same order, and the names written in full were most of a flow event's bytes (and so of
//! the copying and the compressing). Version 5 goes on: an event whose names are all
//! references says so in its count, a value that repeats the one last read at its place (the
//! kind, the dataset, the exporter of consecutive flows) is one byte, and a time a whole
//! number of milliseconds from the one before it a few: a flow event is 28 bytes instead of
//! 96, and compressing it a third less work. A [`Writer`] refers only to events before in its
//! own bytes, never across [`Writer::append`], so appended writers stay readable. A reader
//! repeats no value longer than 17 bytes: one byte never stands for many.
//!
//! Version 4 writes times and addresses in binary: formatting them as text was a third of
//! the cost of writing a flow event, and their text a third of its bytes. The reader turns
//! them into the same text, so an [`Event`] does not know which form travelled.
//!
//! Invariants: decoding never trusts a count: every element takes at least one byte, so a
//! count larger than the bytes left is an error before anything is allocated; nesting deeper
//! than [`MAX_DEPTH`] is an error, not a stack overflow; trailing bytes are an error; a
//! reference to a name or a value no event before had is an error. The writer
//! refers only to what it knows the reader holds: it forgets rather than guesses.

use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::event::{Event, Fields, ip_text, rfc3339, with_rfc3339};
use crate::fields::{self, Key};
use crate::wire::{Batch, DecodeError, Limits};

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
const SAME: u8 = 12;
const TIME_MS_DELTA: u8 = 13;

/// Nanoseconds in a millisecond: the unit of [`TIME_MS_DELTA`].
const MS: i64 = 1_000_000;

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
    /// The value last written at each place of an event, as far as it can be compared.
    values: Vec<Seen>,
    /// The names of the event being written, once one of them differs from the event
    /// before's: they go before its values.
    header: Vec<u8>,
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

/// A value as the writer remembers it, to write [`SAME`] when it comes again at the same
/// place: its tag and its bits (a number, an address, a time, a string of up to 15 bytes
/// with its length in the last byte). Tag 0 is a value not kept: never the same as another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    tag: u8,
    bits: u128,
}

/// The tag a writer keeps for a [`Seen::keyword`] (not a tag of the wire).
const KEYWORD: u8 = 0x80;

impl Seen {
    const NOT_KEPT: Seen = Seen { tag: 0, bits: 0 };

    #[inline]
    fn str(v: &str) -> Seen {
        if v.len() > 15 {
            return Seen::NOT_KEPT;
        }
        let mut b = [0u8; 16];
        b[..v.len()].copy_from_slice(v.as_bytes());
        b[15] = v.len() as u8;
        Seen {
            tag: STR,
            bits: u128::from_le_bytes(b),
        }
    }

    /// A `&'static str` of up to 15 bytes, by its address and length: static memory never
    /// changes. (A reader repeats no longer values: see [`MAX_REPEATED`].)
    #[inline]
    fn keyword(v: &'static str) -> Seen {
        if v.len() > 15 {
            return Seen::NOT_KEPT;
        }
        Seen {
            tag: KEYWORD,
            bits: (v.as_ptr() as u128) << 64 | v.len() as u128,
        }
    }

    #[inline]
    fn repeats(self, before: Seen) -> bool {
        self.tag != 0 && self == before
    }
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
        // The count of fields (patched in at the end), and the names when they are not all
        // references (moved in at the end).
        self.events.push(0);
        EventWriter {
            w: self,
            at,
            fields: 0,
            same: true,
        }
    }

    /// Appends the events of `other`.
    pub fn append(&mut self, other: &Writer) {
        self.events.extend_from_slice(&other.events);
        self.count += other.count;
        // The event before the next one is `other`'s last, whose names and values this one
        // does not know.
        self.forget();
    }

    /// Empties the writer, keeping its memory.
    pub fn clear(&mut self) {
        self.events.clear();
        self.count = 0;
        self.forget();
    }

    fn forget(&mut self) {
        self.last.clear();
        self.names.clear();
        self.values.clear();
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
    fields: usize,
    /// Every name so far is a reference (and none is in `w.header` yet).
    same: bool,
}

impl<'w> EventWriter<'w> {
    /// Takes the name of the next field, a reference when it is the name last written at
    /// this place, and returns its place. `known`: the name is a `&'static str`
    /// (its address is kept).
    #[inline(always)]
    fn name_of(&mut self, name: &str, known: bool) -> usize {
        let place = self.fields;
        self.fields += 1;
        let w = &mut *self.w;
        let address = if known { name.as_ptr() as usize } else { 0 };
        let refers = match w.last.get_mut(place) {
            Some(p) if known && p.known == address && p.len == name.len() => true,
            Some(p)
                if w.names
                    .get(p.at..p.at + p.len)
                    .is_some_and(|n| same(n, name.as_bytes())) =>
            {
                if known {
                    p.known = address;
                }
                true
            }
            _ => false,
        };
        if refers {
            if !self.same {
                w.header.push(0);
            }
            return place;
        }
        if self.same {
            // The names before were references: they go before this one.
            self.same = false;
            w.header.resize(place, 0);
        }
        uint(&mut w.header, name.len() as u64 + 1);
        w.header.extend_from_slice(name.as_bytes());
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
        place
    }

    #[inline]
    fn name(&mut self, name: &str) -> usize {
        self.name_of(name, false)
    }

    /// Keeps `now` as the value at `place` and returns the one kept before (the reader
    /// keeps every place's; the writer those of the places it has kept since it began or
    /// forgot, which are the first ones).
    #[inline(always)]
    fn seen(&mut self, place: usize, now: Seen) -> Seen {
        let values = &mut self.w.values;
        match values.get_mut(place) {
            Some(v) => std::mem::replace(v, now),
            None => {
                if values.len() == place {
                    values.push(now);
                }
                Seen::NOT_KEPT
            }
        }
    }

    /// Writes `now` as [`SAME`] when it is the value before at `place`, else with `write`.
    #[inline(always)]
    fn put(&mut self, place: usize, now: Seen, write: impl FnOnce(&mut Vec<u8>)) {
        let before = self.seen(place, now);
        let out = &mut self.w.events;
        if now.repeats(before) {
            out.push(SAME);
        } else {
            write(out);
        }
    }

    #[inline]
    fn put_str(&mut self, place: usize, v: &str) {
        self.put_str_as(place, v, Seen::str(v));
    }

    #[inline(always)]
    fn put_str_as(&mut self, place: usize, v: &str, seen: Seen) {
        self.put(place, seen, |out| {
            out.push(STR);
            string(out, v);
        });
    }

    #[inline]
    fn put_u64(&mut self, place: usize, v: u64) {
        let now = Seen {
            tag: UINT,
            bits: v.into(),
        };
        self.put(place, now, |out| {
            out.push(UINT);
            uint(out, v);
        });
    }

    #[inline(always)]
    fn put_ip(&mut self, place: usize, ip: IpAddr) {
        let now = match ip {
            IpAddr::V4(v4) => Seen {
                tag: IPV4,
                bits: u32::from(v4).into(),
            },
            IpAddr::V6(v6) => Seen {
                tag: IPV6,
                bits: v6.into(),
            },
        };
        self.put(place, now, |out| match ip {
            IpAddr::V4(v4) => {
                out.push(IPV4);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.push(IPV6);
                out.extend_from_slice(&v6.octets());
            }
        });
    }

    /// A time as the difference in milliseconds from the one before at `place` when that
    /// is a whole number of them (times of NetFlow records are), else in full.
    #[inline(always)]
    fn put_time_ns(&mut self, place: usize, ns: i64) {
        let now = Seen {
            tag: TIME,
            bits: (ns as u64).into(),
        };
        let before = self.seen(place, now);
        let out = &mut self.w.events;
        let delta = (before.tag == TIME)
            .then(|| ns.checked_sub(before.bits as u64 as i64))
            .flatten();
        match delta {
            Some(0) => out.push(SAME),
            Some(d) if d % MS == 0 => {
                out.push(TIME_MS_DELTA);
                let ms = d / MS;
                uint(out, zigzag(ms));
            }
            _ => {
                out.push(TIME);
                out.extend_from_slice(&ns.to_le_bytes());
            }
        }
    }

    #[inline]
    fn put_strs(&mut self, place: usize, v: &[&str]) {
        self.seen(place, Seen::NOT_KEPT);
        let out = &mut self.w.events;
        out.push(ARRAY);
        uint(out, v.len() as u64);
        for s in v {
            out.push(STR);
            string(out, s);
        }
    }

    #[inline]
    fn put_value(&mut self, place: usize, v: &Value) {
        match v {
            Value::String(s) => self.put_str(place, s),
            Value::Number(n) if n.is_u64() => self.put_u64(place, n.as_u64().unwrap_or(0)),
            _ => {
                self.seen(place, Seen::NOT_KEPT);
                value(&mut self.w.events, v);
            }
        }
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
    fn place(&mut self, name: &'static str) -> usize {
        self.0.name_of(name, true)
    }

    #[inline]
    pub fn str(&mut self, name: &'static str, v: &str) {
        let place = self.place(name);
        self.0.put_str(place, v);
    }

    /// A constant text (an enumeration's name, a dataset): compared by its address when it
    /// repeats.
    #[inline]
    pub fn keyword(&mut self, name: &'static str, v: &'static str) {
        let place = self.place(name);
        self.0.put_str_as(place, v, Seen::keyword(v));
    }

    #[inline]
    pub fn u64(&mut self, name: &'static str, v: u64) {
        let place = self.place(name);
        self.0.put_u64(place, v);
    }

    #[inline(always)]
    pub fn ip(&mut self, name: &'static str, ip: IpAddr) {
        let place = self.place(name);
        self.0.put_ip(place, ip);
    }

    #[inline]
    pub fn time_ns(&mut self, name: &'static str, ns: i64) {
        let place = self.place(name);
        self.0.put_time_ns(place, ns);
    }

    /// A field named by a [`Key`]: by address when the key is a constant.
    #[inline]
    pub fn value(&mut self, name: &Key, v: &Value) {
        let place = match name {
            Key::Borrowed(n) => self.0.name_of(n, true),
            Key::Owned(n) => self.0.name_of(n, false),
        };
        self.0.put_value(place, v);
    }
}

impl EventWriter<'_> {
    /// A time given in nanoseconds since the Unix epoch: what [`Fields::time`] writes for
    /// the same instant, without chrono (for sources that keep times as integers: flows).
    pub fn time_ns(&mut self, name: &str, ns: i64) {
        let place = self.name(name);
        self.put_time_ns(place, ns);
    }
}

impl Fields for EventWriter<'_> {
    fn str(&mut self, name: &str, v: &str) {
        let place = self.name(name);
        self.put_str(place, v);
    }

    fn u64(&mut self, name: &str, v: u64) {
        let place = self.name(name);
        self.put_u64(place, v);
    }

    fn strs(&mut self, name: &str, v: &[&str]) {
        let place = self.name(name);
        self.put_strs(place, v);
    }

    fn value(&mut self, name: &str, v: &Value) {
        let place = self.name(name);
        self.put_value(place, v);
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
        let place = self.name(name);
        self.put_ip(place, ip);
    }
}

impl Drop for EventWriter<'_> {
    /// Puts the count, and the names unless they are all references, before the values.
    #[inline]
    fn drop(&mut self) {
        let Writer {
            events,
            header,
            count,
            ..
        } = &mut *self.w;
        let n = 2 * self.fields as u64 + u64::from(self.same);
        if n < 0x80 && self.same {
            events[self.at] = n as u8;
        } else {
            // The count, then the names, in place of the byte kept for them: the values
            // move up (two copies; `Vec::splice`, which did it before, was 4 % of the
            // agent's time receiving 2.8 M flows/s).
            let names = header.len();
            uint(header, n);
            let count = header.len() - names;
            header.rotate_right(count);
            let (at, end) = (self.at, events.len());
            events.resize(end + header.len() - 1, 0);
            events.copy_within(at + 1..end, at + header.len());
            events[at..at + header.len()].copy_from_slice(header);
            header.clear();
        }
        *count += 1;
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

/// The events of `bytes` (a sequence of `event`s of the current version, as
/// [`Writer::events`] holds them).
pub fn read_events(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut r = Reader::new(bytes, crate::wire::CURRENT_VERSION);
    let mut events = Vec::new();
    let mut state = State::default();
    while r.at < bytes.len() {
        events.push(r.event(&mut state)?);
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

/// A signed number as an unsigned one of about its magnitude (-1 → 1, 1 → 2): a short
/// varint for a small negative number too.
#[inline]
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
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
                uint(out, zigzag(i));
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

/// Reads a whole body of wire `version` (2 to 5). The error says what is wrong and at which
/// byte.
pub fn decode(body: &[u8], version: u16, limits: &Limits) -> Result<Batch, DecodeError> {
    let mut r = Reader::new(body, version);
    r.limits = *limits;
    read_batch(&mut r, body).map_err(|e| match r.over.take() {
        Some(limit) => DecodeError::Limit(limit),
        None => DecodeError::Payload(e),
    })
}

fn read_batch<'a>(r: &mut Reader<'a>, body: &'a [u8]) -> Result<Batch, String> {
    let id: [u8; 16] = r.bytes(16)?.try_into().map_err(|_| r.error("batch id"))?;
    let seq = r.uint()?;
    let agent_id = r.str()?.to_owned();
    let at = r.at;
    let n = r.uint()?;
    if n > r.limits.events as u64 {
        return Err(r.over(format!(
            "batch has {n} events; at most {} are accepted",
            r.limits.events
        )));
    }
    r.at = at;
    let n = r.count()?;
    let mut events = Vec::with_capacity(n);
    let mut state = State::default();
    for _ in 0..n {
        events.push(r.event(&mut state)?);
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
    limits: Limits,
    /// Which limit the input went past, when reading stopped on one.
    over: Option<String>,
    /// Version 3 names (see the module docs).
    references: bool,
    /// Version 4 times and addresses.
    typed: bool,
    /// Version 5 events: names before values, values by reference.
    shapes: bool,
}

/// What a reader keeps of the events before, for the references of the next.
#[derive(Default)]
struct State<'a> {
    /// The name last read at each place of an event.
    names: Vec<(&'a str, Key)>,
    /// The value last read at each place of an event.
    values: Vec<Prior>,
}

/// A value read before, for [`SAME`] and [`TIME_MS_DELTA`].
#[derive(Debug, Clone, Copy)]
enum Prior {
    /// A time, in nanoseconds since the Unix epoch.
    Time(i64),
    /// Another value of up to [`MAX_REPEATED`] bytes: where they are in the body (read
    /// again when referred to).
    Bytes(usize, usize),
    /// An array, an object or a longer value: never referred to (the writer refers only to
    /// short values; a one-byte reference to a long one would multiply it).
    Not,
}

/// The longest value a [`SAME`] may repeat, in bytes: an IPv6 address, a string of 15
/// bytes.
const MAX_REPEATED: usize = 17;

impl<'a> Reader<'a> {
    fn new(body: &'a [u8], version: u16) -> Self {
        Reader {
            body,
            at: 0,
            limits: Limits::default(),
            over: None,
            references: version >= 3,
            typed: version >= 4,
            shapes: version >= 5,
        }
    }

    /// One event. The events of a batch mostly have the same names in the same places:
    /// `state.names` holds the name at each place in the last event, to compare with
    /// before looking a name up.
    fn event(&mut self, state: &mut State<'a>) -> Result<Event, String> {
        if self.shapes {
            return self.event_v5(state);
        }
        let fields = self.count()?;
        let fields = self.fields(fields)?;
        let mut e = Event::default();
        for i in 0..fields {
            let k = self.name(i, state)?;
            let v = self.value(0)?;
            e.set(k, v);
        }
        Ok(e)
    }

    /// An event of version 5: the count and the names (or only the count, when every name
    /// is the one last read at its place), then the values.
    fn event_v5(&mut self, state: &mut State<'a>) -> Result<Event, String> {
        let n = self.uint()?;
        let fields = self.fields(usize::try_from(n / 2).unwrap_or(usize::MAX))?;
        // A value takes a byte at least, and so does a name that is not a reference.
        if fields > self.body.len() - self.at {
            return Err(self.error("count"));
        }
        if n % 2 == 0 {
            for i in 0..fields {
                self.name(i, state)?;
            }
        } else if fields > state.names.len() {
            return Err(self.error("name reference"));
        }
        let mut e = Event::default();
        for i in 0..fields {
            let v = self.value_at(i, &mut state.values)?;
            e.set(state.names[i].1.clone(), v);
        }
        Ok(e)
    }

    /// The name of the field at place `i`, kept in `state` for the events after.
    fn name(&mut self, i: usize, state: &mut State<'a>) -> Result<Key, String> {
        let last = &mut state.names;
        let name = if self.references {
            match self.uint()? {
                0 => {
                    return match last.get(i) {
                        Some((_, k)) => Ok(k.clone()),
                        None => Err(self.error("name reference")),
                    };
                }
                n => self.str_of(n - 1)?,
            }
        } else {
            self.str()?
        };
        Ok(match last.get_mut(i) {
            Some((seen, k)) if *seen == name => k.clone(),
            Some(slot) => {
                *slot = (name, fields::intern(name));
                slot.1.clone()
            }
            None => {
                // Names are read at places 0, 1, 2...: this is the next one.
                last.push((name, fields::intern(name)));
                last[i].1.clone()
            }
        })
    }

    /// The value of the field at place `i` of a version 5 event, kept in `values`.
    fn value_at(&mut self, i: usize, values: &mut Vec<Prior>) -> Result<Value, String> {
        let start = self.at;
        let tag = *self.body.get(start).ok_or_else(|| self.error("end"))?;
        let before = values.get(i).copied();
        let (v, now) = match (tag, before) {
            (SAME, Some(Prior::Time(ns))) => {
                self.at += 1;
                (time_text(ns), Prior::Time(ns))
            }
            (SAME, Some(Prior::Bytes(a, b))) => {
                self.at += 1;
                let mut again = Reader {
                    body: &self.body[..b],
                    at: a,
                    over: None,
                    ..*self
                };
                (again.value(0)?, Prior::Bytes(a, b))
            }
            (TIME_MS_DELTA, Some(Prior::Time(ns))) => {
                self.at += 1;
                let z = self.uint()?;
                let ms = unzigzag(z);
                let ns = ms
                    .checked_mul(MS)
                    .and_then(|d| ns.checked_add(d))
                    .ok_or_else(|| self.error("time"))?;
                (time_text(ns), Prior::Time(ns))
            }
            (SAME | TIME_MS_DELTA, _) => return Err(self.error("value reference")),
            (ARRAY | OBJECT, _) => (self.value(0)?, Prior::Not),
            (TIME, _) => {
                self.at += 1;
                let ns = i64::from_le_bytes(self.array("time")?);
                (time_text(ns), Prior::Time(ns))
            }
            _ => {
                let v = self.value(0)?;
                let kept = if self.at - start <= MAX_REPEATED {
                    Prior::Bytes(start, self.at)
                } else {
                    Prior::Not
                };
                (v, kept)
            }
        };
        match values.get_mut(i) {
            Some(slot) => *slot = now,
            None => values.push(now),
        }
        Ok(v)
    }

    fn error(&self, what: &str) -> String {
        format!("bad {what} at byte {}", self.at)
    }

    /// Input that is well formed but past one of [`Limits`]: remembered, so that it is
    /// answered as too large rather than as malformed.
    fn over(&mut self, message: String) -> String {
        self.over = Some(message.clone());
        message
    }

    /// An event's count of fields, checked against the limit before anything is reserved.
    fn fields(&mut self, n: usize) -> Result<usize, String> {
        if n > self.limits.fields {
            return Err(self.over(format!(
                "an event has {n} fields; at most {} are accepted",
                self.limits.fields
            )));
        }
        Ok(n)
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
        if n > self.limits.value_bytes {
            return Err(self.over(format!(
                "a value of {n} bytes; at most {} are accepted",
                self.limits.value_bytes
            )));
        }
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
                Value::from(unzigzag(z))
            }
            FLOAT => {
                // JSON has no NaN or infinity; neither does a value that came from it.
                Number::from_f64(f64::from_le_bytes(self.array("float")?))
                    .map(Value::Number)
                    .ok_or_else(|| self.error("float"))?
            }
            STR => Value::String(self.str()?.to_owned()),
            TIME if self.typed => time_text(i64::from_le_bytes(self.array("time")?)),
            IPV4 if self.typed => Value::String(ip_text(self.array::<4>("address")?.into())),
            IPV6 if self.typed => Value::String(ip_text(self.array::<16>("address")?.into())),
            ARRAY | OBJECT if depth >= MAX_DEPTH => return Err(self.error("nesting")),
            ARRAY => {
                let n = self.count()?;
                let n = self.fields(n)?;
                // A byte of input can be a value of 32 bytes: reserve only a little ahead.
                let mut items = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let n = self.count()?;
                let n = self.fields(n)?;
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

/// A time of the wire as the text [`Event::set_time`] writes.
fn time_text(ns: i64) -> Value {
    Value::String(rfc3339(Utc.timestamp_nanos(ns)))
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
        let back =
            decode(&body(&b), crate::wire::CURRENT_VERSION, &Limits::default()).expect("decodes");
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
        assert_eq!(
            decode(&body, 5, &Limits::default()).map(|b| b.events),
            Ok(vec![expected])
        );
        // Cut short, they are errors.
        for n in 0..body.len() {
            assert!(decode(&body[..n], 5, &Limits::default()).is_err(), "{n}");
        }
        // Before version 4 these tags are not values.
        let v3 = [&body[..19], &[1, 1, 2, b'k', TIME], &[0; 8]].concat();
        assert!(
            decode(&v3, 3, &Limits::default()).is_err_and(|e| e.to_string().contains("value tag"))
        );
        assert!(decode(&v3, 4, &Limits::default()).is_ok());
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
        decode(body, 5, &Limits::default()).is_err_and(|e| e.to_string().contains(what))
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
            assert!(decode(&body[..n], 5, &Limits::default()).is_err(), "{n}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(fails(&longer, "trailing"));
        // A count of 2^62 events in a few bytes is refused before anything is allocated.
        let mut huge = body[..16].to_vec();
        huge.extend([1, 1, b'a']);
        huge.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        assert!(fails(&huge, "events; at most"));
        // An eleven-byte varint.
        let mut long_varint = body[..16].to_vec();
        long_varint.extend([0xff; 10]);
        long_varint.push(0);
        assert!(fails(&long_varint, "varint"));
        // Deep nesting: an error, not a stack overflow.
        let mut deep = body[..16].to_vec();
        deep.extend([1, 1, b'a', 1, 2, 2, b'k']);
        deep.extend(std::iter::repeat_n([ARRAY, 1], 10_000).flatten());
        deep.push(NULL);
        assert!(fails(&deep, "nesting"));
        // Invalid UTF-8 and an unknown tag.
        let bad_utf8 = [&body[..16], &[1, 1, b'a', 1, 2, 2, b'k', STR, 1, 0xff]].concat();
        assert!(fails(&bad_utf8, "UTF-8"));
        let bad_tag = [&body[..16], &[1, 1, b'a', 1, 2, 2, b'k', 14]].concat();
        assert!(fails(&bad_tag, "tag"));
        // References to what no event before had: names, a value, a time; a value
        // reference inside an array; a time moved out of i64 nanoseconds.
        let events = |n: u8, e: &[u8]| [&body[..16], &[1, 1, b'a', n], e].concat();
        assert!(fails(&events(1, &[3, NULL]), "name reference"));
        assert!(fails(&events(1, &[2, 2, b'k', SAME]), "value reference"));
        assert!(fails(
            &events(1, &[2, 2, b'k', TIME_MS_DELTA, 2]),
            "value reference"
        ));
        let first = [2, 2, b'k', UINT, 5];
        assert!(fails(
            &events(2, &[&first[..], &[3, TIME_MS_DELTA, 2]].concat()),
            "reference"
        ));
        assert!(fails(&events(1, &[2, 2, b'k', ARRAY, 1, SAME]), "tag"));
        let late = [&[2, 2, b'k', TIME][..], &i64::MAX.to_le_bytes()].concat();
        let later = [&late[..], &[3, TIME_MS_DELTA, 2]].concat();
        assert!(fails(&events(2, &later), "time"));
        // A reference to an array, or to a string longer than the writer refers to: a byte
        // that would stand for many.
        let array = [2, 2, b'k', ARRAY, 1, NULL];
        assert!(fails(
            &events(2, &[&array[..], &[3, SAME]].concat()),
            "value reference"
        ));
        let long = [&[2, 2, b'k', STR, 16][..], &[b'x'; 16]].concat();
        assert!(fails(
            &events(2, &[&long[..], &[3, SAME]].concat()),
            "value reference"
        ));
        let short = [&[2, 2, b'k', STR, 15][..], &[b'x'; 15]].concat();
        assert!(
            decode(
                &events(2, &[&short[..], &[3, SAME]].concat()),
                5,
                &Limits::default()
            )
            .is_ok()
        );
        // More fields than bytes left.
        let wide = [&first[..], &[0x80, 0x40]].concat();
        assert!(fails(&events(2, &wide), "count"));
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
        // The count (all names references), the same dataset, and the port (tag, 1 byte).
        assert_eq!(a.size() - first, 1 + 1 + 2);
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
        assert!(
            read_events(&[2, 0, STR, 0]).is_err_and(|e| e.to_string().contains("name reference"))
        );
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
        // The constant at the same place as before is a reference: the count and the value.
        let mut w = Writer::default();
        w.event().known().u64(PORT, 1);
        let first = w.size();
        w.event().known().u64(PORT, 2);
        assert_eq!(w.size() - first, 1 + 2);
    }

    /// Events of changing shapes, written through every kind of call, with values that
    /// repeat, change and move between places, read back as written: whatever the writer
    /// refers to, the reader holds.
    #[test]
    fn shapes_and_values_by_reference_read_back_as_written() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const NAMES: [&str; 6] = [
            fields::EVENT_KIND,
            fields::SOURCE_IP,
            fields::SOURCE_PORT,
            fields::EVENT_START,
            "vendor.x",
            "a.name.longer.than.a.word",
        ];
        let texts = ["flow", "flow.netflow", "a string longer than fifteen", ""];
        let at = |ms: u64| 1_700_000_000_000 * MS + (ms as i64) * MS;
        for round in 0..20 {
            let mut w = Writer::default();
            let mut expected = Vec::new();
            for i in 0..200 {
                if i % 50 == 49 {
                    // What another writer wrote, appended: nothing of it is referred to.
                    let mut other = Writer::default();
                    other.event().known().u64(fields::SOURCE_PORT, 9);
                    w.append(&other);
                    expected.push(read_events(other.events()).expect("reads").remove(0));
                }
                let mut e = Event::default();
                let mut ev = w.event();
                let fields = next(7) as usize;
                for _ in 0..fields {
                    let name = NAMES[next(NAMES.len() as u64) as usize];
                    let owned = round % 2 == 1;
                    match next(6) {
                        0 => {
                            let v = texts[next(4) as usize];
                            match round % 3 {
                                0 => ev.str(name, v),
                                1 => ev.known().str(name, v),
                                _ => ev.known().keyword(name, v),
                            }
                            e.set_str(name, v.to_owned());
                        }
                        1 => {
                            let v = next(3) * 1000;
                            if owned {
                                ev.u64(name, v);
                            } else {
                                ev.known().u64(name, v);
                            }
                            e.set_u64(name, v);
                        }
                        2 => {
                            let ip = IpAddr::from([192, 0, 2, next(2) as u8]);
                            ev.known().ip(name, ip);
                            e.set_ip(name, ip);
                        }
                        3 => {
                            // Whole milliseconds apart, or not.
                            let ns = at(next(3)) + (next(2) * 7) as i64;
                            if owned {
                                ev.time_ns(name, ns);
                            } else {
                                ev.known().time_ns(name, ns);
                            }
                            e.set_time(name, Utc.timestamp_nanos(ns));
                        }
                        4 => {
                            let v = serde_json::json!([next(2), "x"]);
                            ev.value(name, &v);
                            e.set(name, v);
                        }
                        _ => {
                            let v = Value::from(texts[next(4) as usize]);
                            ev.known().value(&fields::intern(name), &v);
                            e.set(name, v);
                        }
                    }
                }
                drop(ev);
                expected.push(e);
            }
            let body = [w.header(Uuid::nil(), "a", 1), w.events().to_vec()].concat();
            let back = decode(&body, 5, &Limits::default()).expect("decodes");
            assert_eq!(back.events, expected, "round {round}");
        }
    }

    /// Events of one shape whose values mostly repeat (flows of one exporter) are a byte
    /// for the count and a byte per repeated value; times a whole number of milliseconds
    /// apart take a few bytes.
    #[test]
    fn a_flow_like_event_after_another_is_a_few_bytes() {
        let flow = |w: &mut Writer, port: u64, end_ms: i64| {
            let mut ev = w.event();
            let mut k = ev.known();
            k.str(fields::EVENT_KIND, "flow");
            k.str(fields::EVENT_DATASET, "flow.netflow");
            k.ip(fields::OBSERVER_IP, IpAddr::from([192, 0, 2, 1]));
            k.u64(fields::SOURCE_PORT, port);
            k.time_ns(fields::EVENT_END, 1_700_000_000_000 * MS + end_ms * MS);
        };
        let mut w = Writer::default();
        flow(&mut w, 443, 0);
        let first = w.size();
        flow(&mut w, 443, 0);
        assert_eq!(w.size() - first, 1 + 5);
        let second = w.size();
        // Another port (tag, 2 bytes) and a time 100 ms later (tag, zigzag 200: 2 bytes).
        flow(&mut w, 8443, 100);
        assert_eq!(w.size() - second, 1 + 3 + 3 + 3);
        let back = read_events(w.events()).expect("reads");
        assert_eq!(back[2].get_u64(fields::SOURCE_PORT), Some(8443));
        assert_eq!(
            back[2].get_str(fields::EVENT_END),
            Some("2023-11-14T22:13:20.100Z")
        );
        assert_eq!(back[1], back[0]);
        // Fewer fields (a UDP flow after a TCP one), then as many again: the count says
        // the names are all references.
        let third = w.size();
        {
            let mut ev = w.event();
            let mut k = ev.known();
            k.str(fields::EVENT_KIND, "flow");
            k.str(fields::EVENT_DATASET, "flow.netflow");
        }
        assert_eq!(w.size() - third, 1 + 2);
        let fourth = w.size();
        flow(&mut w, 8443, 100);
        assert_eq!(w.size() - fourth, 1 + 5);
        let back = read_events(w.events()).expect("reads");
        assert_eq!(back[3].len(), 2);
        assert_eq!(back[4], back[2]);
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
        let b = decode(&body, 2, &Limits::default()).expect("decodes");
        let ports: Vec<Option<u64>> = b.events.iter().map(|e| e.get_u64("source.port")).collect();
        assert_eq!((b.seq, b.agent_id.as_str()), (5, "a1"));
        assert_eq!(ports, [Some(22), Some(80)]);
    }
}
