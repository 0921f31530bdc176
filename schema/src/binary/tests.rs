use std::net::IpAddr;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::event::{Event, Fields};
use crate::fields::{self, Key};
use crate::wire::{Batch, Limits};

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
    assert!(decode(&v3, 3, &Limits::default()).is_err_and(|e| e.to_string().contains("value tag")));
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
    assert!(read_events(&[2, 0, STR, 0]).is_err_and(|e| e.to_string().contains("name reference")));
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
