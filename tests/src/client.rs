//! Talking to a running Vigil as a user would: syslog over TCP, the search API, `/metrics`;
//! and the exactly-once check over what came back.

use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

/// Sums every sample of `name` in a `/metrics` page (0 when absent or unreachable).
pub fn metric(base: &str, name: &str) -> f64 {
    let Ok(resp) = reqwest::blocking::get(format!("{base}/metrics")) else {
        return 0.0;
    };
    let text = resp.text().unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An RFC 5424 line without a timestamp (the agent stamps it on receipt, with sub-second
/// precision) whose message is `{prefix}-{i}`.
pub fn line(prefix: &str, i: u64) -> String {
    format!("<13>1 - testhost app - - - {prefix}-{i}\n")
}

/// Sends `{prefix}-{i}` for every i in `range` over one TCP connection (newline framing).
pub fn send_tcp(addr: SocketAddr, prefix: &str, range: std::ops::Range<u64>) {
    let stream = TcpStream::connect(addr).expect("connect to syslog");
    let mut w = BufWriter::with_capacity(64 * 1024, stream);
    for i in range {
        w.write_all(line(prefix, i).as_bytes()).expect("send");
    }
    w.flush().expect("flush");
}

/// The search API's answer.
pub fn search(base: &str, q: &str, limit: usize, offset: usize) -> Option<Value> {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/search"))
        .query(&[
            ("q", q),
            ("limit", &limit.to_string()),
            ("offset", &offset.to_string()),
        ])
        .send()
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().ok()
}

pub fn total(base: &str, q: &str) -> Option<u64> {
    search(base, q, 0, 0)?.get("total")?.as_u64()
}

/// Every message in the index, by paging through all events (newest first).
pub fn all_messages(base: &str) -> Vec<String> {
    let mut out = Vec::new();
    let page = 10_000;
    loop {
        let r = search(base, "*", page, out.len()).expect("search answers");
        let hits = r["hits"].as_array().expect("hits").clone();
        let n = hits.len();
        out.extend(
            hits.iter()
                .map(|h| h["message"].as_str().unwrap_or_default().to_owned()),
        );
        if n < page {
            return out;
        }
    }
}

/// Asserts that the messages are exactly `{prefix}-{i}` for i in 0..n, each once.
pub fn assert_exactly_once(messages: &[String], prefix: &str, n: u64) {
    let mut seen = vec![0u32; n as usize];
    let mut foreign = 0;
    for m in messages {
        match m
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|i| i.parse::<usize>().ok())
        {
            Some(i) if i < seen.len() => seen[i] += 1,
            _ => foreign += 1,
        }
    }
    let missing: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == 0)
        .map(|(i, _)| i)
        .collect();
    let doubled: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 1)
        .map(|(i, _)| i)
        .collect();
    assert!(
        missing.is_empty() && doubled.is_empty() && foreign == 0,
        "{} events missing (first {:?}), {} more than once (first {:?}), {} unexpected",
        missing.len(),
        &missing[..missing.len().min(10)],
        doubled.len(),
        &doubled[..doubled.len().min(10)],
        foreign
    );
}
