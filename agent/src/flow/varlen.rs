//! IPFIX variable-length elements of length zero (an empty string or octet array; RFC 7011
//! §7 allows them, and Ixia, Procera and Huawei exporters send them). `netflow_parser` 1.0.5
//! refuses such an element and drops its whole data set, so before the parser sees an IPFIX
//! message, each such element is rewritten as one byte of zero: the parser reads an empty
//! string then (it drops control characters), and an empty octet array as the one byte `00`.
//!
//! This needs the element lengths of the templates, which the parser keeps to itself: they
//! are read here from the template sets as they pass (and, after a restart, from the
//! persisted templates), for the templates that have a variable-length element only.
//!
//! # Invariants
//! - A message without such an element is passed on untouched (no copy).
//! - A rewritten message keeps every other byte, in order; only set and message lengths change.
//! - Anything this reader does not understand (truncated sets, unknown templates) is left
//!   as it is, for the parser to judge and count.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;

use super::layouts::{self, Version, u16_at};

/// The template length that marks a variable-length element.
const VARLEN: u16 = 65535;

/// Templates remembered at most (only those with a variable-length element count).
const MAX_TEMPLATES: usize = 10_000;

type Key = (SocketAddr, u32, u16);

/// Element lengths of the templates that have variable-length elements, per (exporter,
/// observation domain, template id): the parser's own scoping.
#[derive(Default)]
pub struct Varlen {
    templates: HashMap<Key, Vec<u16>>,
}

impl Varlen {
    /// Learns the persisted IPFIX templates (entries of
    /// [`super::templates::FileTemplateStore`], read by [`layouts::stored`]).
    pub fn seed<'a>(&mut self, entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
        for (key, value) in entries {
            if let Some((addr, Version::Ipfix, domain, _, rec)) = layouts::stored(key, value) {
                let lens = rec.elements.iter().map(|&(_, _, len)| len).collect();
                self.learn((addr, domain, rec.id), lens);
            }
        }
    }

    fn learn(&mut self, key: Key, lens: Vec<u16>) {
        if !lens.contains(&VARLEN) {
            self.templates.remove(&key);
        } else if self.templates.len() < MAX_TEMPLATES || self.templates.contains_key(&key) {
            self.templates.insert(key, lens);
        }
    }

    /// Templates remembered.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The datagram with every zero-length variable-length element of its (first) IPFIX
    /// message rewritten as one zero byte; learns the message's templates on the way.
    pub fn rewrite<'a>(&mut self, from: SocketAddr, data: &'a [u8]) -> Cow<'a, [u8]> {
        if u16_at(data, 0) != Some(10) || data.len() < 16 {
            return Cow::Borrowed(data);
        }
        let end = usize::from(u16_at(data, 2).unwrap_or(0)).min(data.len());
        let domain = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
        // Sets whose body changed: (start of the set, its new body).
        let mut changed: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut pos = 16;
        while pos + 4 <= end {
            let (Some(id), Some(len)) = (u16_at(data, pos), u16_at(data, pos + 2)) else {
                break;
            };
            let len = usize::from(len);
            if len < 4 || pos + len > end {
                break;
            }
            let body = &data[pos + 4..pos + len];
            match id {
                2 | 3 => self.templates_set(from, domain, body, id == 3),
                256.. => {
                    if let Some(new) = self
                        .templates
                        .get(&(from, domain, id))
                        .and_then(|lens| fill(lens, body))
                    {
                        changed.push((pos, new));
                    }
                }
                _ => {}
            }
            pos += len;
        }
        if changed.is_empty() {
            return Cow::Borrowed(data);
        }
        let mut out = Vec::with_capacity(data.len() + 64);
        out.extend_from_slice(&data[..16]);
        let mut copied = 16;
        for (start, body) in changed {
            let old_len = usize::from(u16_at(data, start + 2).unwrap_or(4));
            let Ok(new_len) = u16::try_from(body.len() + 4) else {
                return Cow::Borrowed(data);
            };
            out.extend_from_slice(&data[copied..start + 2]);
            out.extend_from_slice(&new_len.to_be_bytes());
            out.extend_from_slice(&body);
            copied = start + old_len;
        }
        out.extend_from_slice(&data[copied..end]);
        let Ok(msg_len) = u16::try_from(out.len()) else {
            return Cow::Borrowed(data);
        };
        out[2..4].copy_from_slice(&msg_len.to_be_bytes());
        // Whatever followed the message is passed on as it was.
        out.extend_from_slice(&data[end..]);
        Cow::Owned(out)
    }

    /// Learns a template set's (or options template set's) records, up to the first that
    /// does not fit; a withdrawal (no elements) forgets the template.
    fn templates_set(&mut self, from: SocketAddr, domain: u32, body: &[u8], options: bool) {
        let records =
            layouts::template_records(Version::Ipfix, body, options).unwrap_or_else(|read| read);
        for rec in records {
            if rec.count == 0 {
                self.templates.remove(&(from, domain, rec.id));
            } else if rec.id >= 256 {
                let lens = rec.elements.iter().map(|&(_, _, len)| len).collect();
                self.learn((from, domain, rec.id), lens);
            }
        }
    }
}

/// The data set body with its zero-length variable-length elements as one zero byte, or
/// `None` if it has none. Records are read while a whole one fits; the rest (padding, or a
/// truncated record for the parser to refuse) is kept as it is.
fn fill(lens: &[u16], body: &[u8]) -> Option<Vec<u8>> {
    let min: usize = lens
        .iter()
        .map(|&l| if l == VARLEN { 1 } else { usize::from(l) })
        .sum();
    if min == 0 {
        return None;
    }
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut at = 0;
    let mut zeros = Vec::new();
    'records: while body.len() - at >= min {
        let mut p = at;
        zeros.clear();
        for &l in lens {
            if l != VARLEN {
                p += usize::from(l);
                continue;
            }
            let Some(&first) = body.get(p) else {
                break 'records;
            };
            let (head, n) = if first == 255 {
                let Some(n) = u16_at(body, p + 1) else {
                    break 'records;
                };
                (3, usize::from(n))
            } else {
                (1, usize::from(first))
            };
            if n == 0 {
                zeros.push((p, head));
            }
            p += head + n;
        }
        if p > body.len() {
            break;
        }
        for &(z, head) in &zeros {
            let o = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 16));
            o.extend_from_slice(&body[copied..z]);
            o.extend_from_slice(&[1, 0]);
            copied = z + head;
        }
        at = p;
    }
    let mut out = out?;
    out.extend_from_slice(&body[copied..]);
    Some(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::flow) fn addr() -> SocketAddr {
        "192.0.2.1:4739".parse().expect("addr")
    }

    /// An IPFIX message with `sets` (id, body).
    pub(in crate::flow) fn message(sets: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0, 10, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 3];
        for (id, body) in sets {
            m.extend_from_slice(&id.to_be_bytes());
            m.extend_from_slice(&u16::try_from(body.len() + 4).expect("len").to_be_bytes());
            m.extend_from_slice(body);
        }
        let len = u16::try_from(m.len()).expect("len").to_be_bytes();
        m[2..4].copy_from_slice(&len);
        m
    }

    /// Template 300: protocolIdentifier (1 byte), interfaceName (variable), an enterprise
    /// element of 2 bytes.
    fn template() -> Vec<u8> {
        let mut t = vec![1, 44, 0, 3];
        t.extend_from_slice(&[0, 4, 0, 1]);
        t.extend_from_slice(&[0, 82, 255, 255]);
        t.extend_from_slice(&[0x80, 5, 0, 2, 0, 0, 0x9, 0x99]);
        t
    }

    #[test]
    fn empty_elements_become_one_zero_byte_and_lengths_follow() {
        let mut v = Varlen::default();
        // Two records: one with an empty name, one with "eth0"; then two bytes of padding.
        let data = vec![
            6, 0, 0xab, 0xcd, 17, 4, b'e', b't', b'h', b'0', 0x12, 0x34, 0, 0,
        ];
        let m = message(&[(2, template()), (300, data)]);
        let out = v.rewrite(addr(), &m);
        let want_data = vec![
            6, 1, 0, 0xab, 0xcd, 17, 4, b'e', b't', b'h', b'0', 0x12, 0x34, 0, 0,
        ];
        assert_eq!(out.as_ref(), message(&[(2, template()), (300, want_data)]));
        // The three-byte length form, too, and only where the length is zero.
        let m = message(&[(300, vec![6, 255, 0, 0, 1, 2, 17, 255, 0, 1, b'x', 3, 4])]);
        let out = v.rewrite(addr(), &m);
        assert_eq!(
            out.as_ref(),
            message(&[(300, vec![6, 1, 0, 1, 2, 17, 255, 0, 1, b'x', 3, 4])])
        );
    }

    #[test]
    fn messages_without_empty_elements_are_not_copied() {
        let mut v = Varlen::default();
        let m = message(&[(2, template()), (300, vec![6, 1, b'a', 0, 0])]);
        assert!(matches!(v.rewrite(addr(), &m), Cow::Borrowed(_)));
        // Another exporter, another domain, or a withdrawn template: not known, not touched.
        let empty = message(&[(300, vec![6, 0, 0, 0])]);
        let other: SocketAddr = "192.0.2.2:4739".parse().expect("addr");
        assert!(matches!(v.rewrite(other, &empty), Cow::Borrowed(_)));
        assert!(matches!(v.rewrite(addr(), &empty), Cow::Owned(_)));
        let withdraw = message(&[(2, vec![1, 44, 0, 0])]);
        let _ = v.rewrite(addr(), &withdraw);
        assert!(v.is_empty());
        assert!(matches!(v.rewrite(addr(), &empty), Cow::Borrowed(_)));
    }

    #[test]
    fn persisted_templates_are_learned() {
        let mut v = Varlen::default();
        // The store format of template 300 above, and an options template without varlen.
        let mut t = vec![1, 1, 44, 0, 3];
        t.extend_from_slice(&[
            0, 4, 0, 1, 0, 0, 82, 255, 255, 0, 0x00, 5, 0, 2, 1, 0, 0, 9, 0x99,
        ]);
        let o = vec![1, 1, 45, 0, 1, 0, 1, 0, 10, 0, 4, 0];
        v.seed([
            ("ipfix:192.0.2.1:4739/3|ipfix|300", t.as_slice()),
            ("ipfix:192.0.2.1:4739/3|ipfix-options|301", o.as_slice()),
            ("v9:192.0.2.1:2055/0|v9|300", t.as_slice()),
        ]);
        assert_eq!(v.len(), 1);
        let m = message(&[(300, vec![6, 0, 0, 0])]);
        assert!(matches!(v.rewrite(addr(), &m), Cow::Owned(_)));
    }

    #[test]
    fn hostile_input_is_left_to_the_parser() {
        let mut v = Varlen::default();
        let _ = v.rewrite(addr(), &message(&[(2, template())]));
        for m in [
            vec![0, 10, 0, 200, 0, 0],
            message(&[(300, vec![6, 255])]),
            message(&[(300, vec![6, 40, 1, 2])]),
            message(&[(2, vec![1, 44, 0, 9, 0, 1])]),
        ] {
            let out = v.rewrite(addr(), &m);
            assert_eq!(out.as_ref(), m.as_slice());
        }
    }

    #[test]
    fn the_decoder_reads_an_empty_string_element_as_empty() {
        // sourceIPv4Address, protocolIdentifier, interfaceName (variable), as two records.
        let mut t = vec![1, 44, 0, 3, 0, 8, 0, 4, 0, 4, 0, 1, 0, 82, 255, 255];
        let mut data = vec![10, 0, 0, 1, 6, 0];
        data.extend_from_slice(&[10, 0, 0, 2, 17, 4, b'e', b't', b'h', b'0']);
        let m = message(&[(2, std::mem::take(&mut t)), (300, data)]);
        let mut dec = crate::flow::netflow::Decoder::new(None, 10);
        let mut flows = Vec::new();
        let d = dec.decode(addr(), &m, chrono::Utc::now(), &mut flows);
        assert_eq!((d.flows, d.errors), (2, 0));
        let name = |f: &crate::flow::Flow| {
            f.extra
                .iter()
                .find(|(k, _)| k.contains("interface_name"))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(name(&flows[0]), Some(serde_json::json!("")));
        assert_eq!(name(&flows[1]), Some(serde_json::json!("eth0")));
        assert_eq!(
            flows[1].src.map(|a| a.to_string()).as_deref(),
            Some("10.0.0.2")
        );
    }
}
