//! A hunt as an analyst runs it: sshd failures sent as syslog to a real agent, then
//! `vigil search --top`, `--histogram` and `--stats` against the collector, and the API's
//! answers to bad hunts (a syntax error with its position, a 1 MB query, bad aggregations).

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;
use vigil_e2e::{Agent, Collector, total, vigil_cli, wait_for};

/// Source `10.0.0.<k>` fails `k` times (k = 1..=5) at minute k of one hour, with pid 1000 + k.
fn lines() -> Vec<String> {
    let mut out = Vec::new();
    for k in 1..=5u32 {
        for i in 0..k {
            out.push(format!(
                "<38>1 2026-11-23T10:0{k}:{i:02}Z gw sshd {pid} - - Failed password for root from 10.0.0.{k} port {port} ssh2\n",
                pid = 1000 + k,
                port = 40_000 + i,
            ));
        }
    }
    out
}

fn vigil(url: &str, args: &[&str]) -> String {
    let (ok, out, err) = vigil_cli("search", args, url);
    assert!(ok, "vigil search {args:?}: {err}");
    out
}

#[test]
fn top_values_histogram_and_stats_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    let a = Agent::start(dir.path(), c.port, "", "");
    let mut s = TcpStream::connect(a.syslog_tcp).expect("connect");
    for l in lines() {
        s.write_all(l.as_bytes()).expect("send");
    }
    drop(s);
    let url = c.url();
    let q = "process.name:sshd AND event.outcome:failure";
    wait_for(
        Duration::from_secs(30),
        "15 failures indexed",
        || format!("{}\n{}", c.proc.log_tail(), a.proc.log_tail()),
        || (total(&url, q) == Some(15)).then_some(()),
    );
    let range = [
        "--from",
        "2026-11-23T10:00:00Z",
        "--to",
        "2026-11-23T11:00:00Z",
    ];

    let top = vigil(
        &url,
        &[&[q, "--top", "source.ip", "--size", "3"][..], &range].concat(),
    );
    let rows: Vec<Vec<&str>> = top
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["15", "events"], "{top}");
    assert_eq!(rows[2], ["SOURCE.IP", "EVENTS"], "{top}");
    assert_eq!(rows[3], ["10.0.0.5", "5"], "{top}");
    assert_eq!(rows[4], ["10.0.0.4", "4"], "{top}");
    assert_eq!(rows[5], ["10.0.0.3", "3"], "{top}");
    assert_eq!(rows[6], ["(others)", "3"], "{top}");

    // By the sum of a numeric field: pids 1001..1005 summed per source.
    let top = vigil(
        &url,
        &[
            &[
                q,
                "--top",
                "source.ip",
                "--size",
                "2",
                "--sum",
                "process.pid",
            ][..],
            &range,
        ]
        .concat(),
    );
    assert!(top.contains("SUM"), "{top}");
    let row = top.lines().find(|l| l.starts_with("10.0.0.5")).expect(&top);
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["10.0.0.5", "5", "5,025"]
    );

    // One bucket per minute of the hour; minute k holds k failures.
    let hist = vigil(&url, &[&[q, "--histogram", "1m"][..], &range].concat());
    let buckets: Vec<(String, u64)> = hist
        .lines()
        .filter(|l| l.starts_with("2026-"))
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().expect("valid").to_owned(),
                w.next().expect("valid").parse().expect("valid"),
            )
        })
        .collect();
    assert_eq!(buckets.len(), 60, "{hist}");
    for (k, (time, n)) in buckets.iter().enumerate() {
        assert!(
            time.starts_with(&format!("2026-11-23T10:{k:02}:00")),
            "{time}"
        );
        assert_eq!(
            *n,
            if (1..=5).contains(&k) { k as u64 } else { 0 },
            "{hist}"
        );
    }

    let stats = vigil(&url, &[&[q, "--stats", "process.pid"][..], &range].concat());
    let row = stats
        .lines()
        .find(|l| l.starts_with("process.pid"))
        .expect(&stats);
    let cells: Vec<&str> = row.split_whitespace().collect();
    // FIELD COUNT MIN AVG P50 P90 P99 MAX SUM
    assert_eq!(
        (cells[1], cells[2], cells[7]),
        ("15", "1,001", "1,005"),
        "{stats}"
    );
    assert_eq!(cells[8], "15,055", "{stats}");

    // JSON for scripts.
    let json = vigil(
        &url,
        &[&[q, "--top", "source.ip", "--json"][..], &range].concat(),
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["terms"]["buckets"][0]["key"], "10.0.0.5");
}

#[test]
fn bad_hunts_are_clear_400s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    let url = c.url();
    let client = reqwest::blocking::Client::new();
    let get = |path: &str, params: &[(&str, &str)]| {
        let r = client
            .get(format!("{url}/api/v1/{path}"))
            .query(params)
            .send()
            .expect("request");
        let status = r.status();
        let body: serde_json::Value = r.json().expect("json");
        (
            status,
            body["error"]["message"].as_str().unwrap_or("").to_owned(),
        )
    };

    let (status, msg) = get("search", &[("q", "host.name:a AND (message:b OR")]);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("position") && msg.contains("expected ')'"),
        "{msg}"
    );
    let (status, msg) = get("search", &[("q", "event.kind:flow AND nosuchfield:x")]);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("position 20") && msg.contains("nosuchfield"),
        "{msg}"
    );
    let (status, msg) = get("search", &[("q", "message:\"open quote")]);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(msg.contains("position"), "{msg}");
    let (status, msg) = get("search", &[("q", "source.ip:10.0.0.0/33")]);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(msg.contains("prefix length"), "{msg}");
    let (status, _) = get("search", &[("limit", "1000000000")]);
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A 1 MB query does not fit in a URL; POST takes the same parameters as JSON. It is
    // refused by the query length limit, with a message that says so.
    let huge = "a ".repeat(1 << 19);
    let r = client
        .post(format!("{url}/api/v1/search"))
        .json(&serde_json::json!({ "q": huge }))
        .send()
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().expect("json");
    let msg = body["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("longer than"), "{msg}");
    // A POSTed query works like a GET one.
    let r: serde_json::Value = client
        .post(format!("{url}/api/v1/search"))
        .json(&serde_json::json!({ "q": "*", "limit": 1 }))
        .send()
        .expect("request")
        .json()
        .expect("json");
    assert_eq!(r["total"], 0, "{r}");

    for params in [
        &[("terms", "message")][..],
        &[("terms", "nosuchfield")],
        &[("stats", "host.name")],
        &[("terms", "source.ip"), ("size", "100000")],
        &[
            ("histogram", "1ms"),
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-12-01T00:00:00Z"),
        ],
        &[("histogram", "soon")],
        &[("bogus", "1")],
        &[],
    ] {
        let (status, msg) = get("aggregate", params);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}: {msg}");
        assert!(!msg.is_empty(), "{params:?}");
    }
    // The collector is still up and answering.
    assert_eq!(total(&url, "*"), Some(0));
}
