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
//!           and, from version 4, values that read back as the text [`crate::Event::set_time`] and
//!           [`crate::Event::set_ip`] write:
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
//! them into the same text, so an [`crate::Event`] does not know which form travelled.
//!
//! Invariants: decoding never trusts a count: every element takes at least one byte, so a
//! count larger than the bytes left is an error before anything is allocated; nesting deeper
//! than [`MAX_DEPTH`] is an error, not a stack overflow; trailing bytes are an error; a
//! reference to a name or a value no event before had is an error. The writer
//! refers only to what it knows the reader holds: it forgets rather than guesses.

mod read;
#[cfg(test)]
mod tests;
mod varint;
mod write;

pub use read::{decode, read_events};
pub use write::{EventWriter, Known, Writer};

/// Deepest nesting of arrays and objects a value may have (serde_json's own limit is 128).
pub const MAX_DEPTH: usize = 64;

pub(super) const NULL: u8 = 0;
pub(super) const FALSE: u8 = 1;
pub(super) const TRUE: u8 = 2;
pub(super) const UINT: u8 = 3;
pub(super) const SINT: u8 = 4;
pub(super) const FLOAT: u8 = 5;
pub(super) const STR: u8 = 6;
pub(super) const ARRAY: u8 = 7;
pub(super) const OBJECT: u8 = 8;
pub(super) const TIME: u8 = 9;
pub(super) const IPV4: u8 = 10;
pub(super) const IPV6: u8 = 11;
pub(super) const SAME: u8 = 12;
pub(super) const TIME_MS_DELTA: u8 = 13;

/// Nanoseconds in a millisecond: the unit of [`TIME_MS_DELTA`].
pub(super) const MS: i64 = 1_000_000;
