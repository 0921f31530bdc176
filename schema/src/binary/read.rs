//! The reader of every binary version (2 to 5): counts checked against the bytes left before
//! anything is allocated, references only to what an event before held.

use chrono::{TimeZone, Utc};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use super::varint::unzigzag;
use super::*;
use crate::event::{Event, ip_text, rfc3339};
use crate::fields::{self, Key};
use crate::wire::{Batch, DecodeError, Limits};

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

pub(super) fn read_batch<'a>(r: &mut Reader<'a>, body: &'a [u8]) -> Result<Batch, String> {
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

pub(super) struct Reader<'a> {
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
pub(super) struct State<'a> {
    /// The name last read at each place of an event.
    names: Vec<(&'a str, Key)>,
    /// The value last read at each place of an event.
    values: Vec<Prior>,
}

/// A value read before, for [`SAME`] and [`TIME_MS_DELTA`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Prior {
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
pub(super) const MAX_REPEATED: usize = 17;

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
pub(super) fn time_text(ns: i64) -> Value {
    Value::String(rfc3339(Utc.timestamp_nanos(ns)))
}
