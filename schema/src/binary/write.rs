//! The writer of the current version: events as they are made, names and values that repeat
//! the event before's written as references.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::varint::{string, uint, zigzag};
use super::*;
use crate::event::{Event, Fields, with_rfc3339};
use crate::fields::Key;

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
pub(super) const MAX_NAME_BYTES: usize = 64 * 1024;

/// The name last written at one place of an event: see [`Writer::last`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
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
pub(super) struct Seen {
    tag: u8,
    bits: u128,
}

/// The tag a writer keeps for a [`Seen::keyword`] (not a tag of the wire).
pub(super) const KEYWORD: u8 = 0x80;

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
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
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

pub(super) fn value(out: &mut Vec<u8>, v: &Value) {
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
