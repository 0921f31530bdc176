//! Hostile input at the ingest endpoint: each gets a clear 4xx, and the collector keeps serving.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use vigil_e2e::{AGENT_ID, AGENT_TOKEN, Collector};
use vigil_schema::{Batch, Event, EventKind, wire};

fn batch(agent: &str) -> Batch {
    let mut e = Event::new(EventKind::Syslog, chrono::Utc::now());
    e.set_str("message", "valid event");
    Batch {
        batch_id: uuid::Uuid::now_v7(),
        agent_id: agent.into(),
        seq: 1,
        events: vec![e],
    }
}

fn post(
    client: &Client,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut req = client.post(format!("{url}/api/v1/ingest")).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().expect("collector answers");
    let status = resp.status();
    (status, resp.json().unwrap_or(serde_json::Value::Null))
}

/// Sends a 100 MB ingest body over a raw socket and returns the head and body of the answer.
fn post_100mb_raw(port: u16, chunked: bool) -> String {
    post_raw(port, Some(AGENT_TOKEN), 100, chunked)
}

/// Sends an ingest body of `mb` MiB over a raw socket (with `token`, if any) and returns the
/// head and body of the answer.
fn post_raw(port: u16, token: Option<&str>, mb: usize, chunked: bool) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", mb << 20)
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!("POST /api/v1/ingest HTTP/1.1\r\nHost: vigil\r\n{auth}{framing}\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("head");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..mb {
            let ok = if chunked {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|_| writer.write_all(&chunk))
                    .and_then(|_| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&chunk)
            };
            // The collector may stop reading (and close) once it has refused the body.
            if ok.is_err() {
                return;
            }
        }
        let _ = writer.write_all(if chunked { b"0\r\n\r\n" } else { b"" });
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the JSON error body has arrived (or the connection closes).
    while !String::from_utf8_lossy(&answer).contains("}}") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn every_bad_batch_gets_a_clear_4xx_and_the_collector_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start(dir.path(), 0);
    let url = c.url();
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let good = batch(AGENT_ID).encode();

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    let truncated = good[..good.len() / 2].to_vec();
    let mut v7 = good.clone();
    v7[4] = 7;
    let not_a_batch = wire::frame(1, &[1, 2, 3, 4]);

    // (what, token, body, expected status, expected error code)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "bad checksum",
            Some(AGENT_TOKEN),
            bad_crc,
            StatusCode::BAD_REQUEST,
            "bad_checksum",
        ),
        (
            "truncated body",
            Some(AGENT_TOKEN),
            truncated,
            StatusCode::BAD_REQUEST,
            "truncated",
        ),
        (
            "unknown wire version",
            Some(AGENT_TOKEN),
            v7,
            StatusCode::BAD_REQUEST,
            "unsupported_version",
        ),
        (
            "not zstd",
            Some(AGENT_TOKEN),
            not_a_batch,
            StatusCode::BAD_REQUEST,
            "bad_compression",
        ),
        (
            "empty body",
            Some(AGENT_TOKEN),
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "truncated",
        ),
        (
            "no token",
            None,
            good.clone(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong token",
            Some("not-a-valid-token-at-all"),
            good.clone(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "another agent's batch",
            Some(AGENT_TOKEN),
            batch("someone-else").encode(),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    for (what, token, body, status, code) in cases {
        let (got, err) = post(&client, &url, token, body);
        assert_eq!(got, status, "{what}: {err}");
        assert_eq!(err["error"]["code"], code, "{what}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {err}"
        );
    }

    // 100 MB, declared and chunked: refused without being buffered. The collector answers
    // before the body is sent, so the sender writes on its own thread while we read.
    for chunked in [false, true] {
        let t0 = std::time::Instant::now();
        let answer = post_100mb_raw(c.port, chunked);
        eprintln!("TIMING chunked={chunked} {:?}", t0.elapsed());
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {answer}"
        );
        assert!(answer.contains("too_large"), "chunked={chunked}: {answer}");
    }

    // Still serving: a valid batch is accepted once, then recognised as a duplicate.
    let (got, body) = post(&client, &url, Some(AGENT_TOKEN), good.clone());
    assert_eq!(
        (got, body["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{body}"
    );
    let (got, body) = post(&client, &url, Some(AGENT_TOKEN), good);
    assert_eq!(
        (got, body["status"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "{body}"
    );
    assert!(c.proc.is_running(), "{}", c.proc.log_tail());

    let rejected = vigil_e2e::metric(&url, "vigil_ingest_rejected_total");
    assert_eq!(rejected, 10.0);
    // Once the batch is committed, the index's bytes on disk are what its files hold.
    let on_disk = |dir: &std::path::Path| -> u64 {
        fn walk(d: &std::path::Path) -> u64 {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(dir)
    };
    let index = dir.path().join("collector-data/index");
    vigil_e2e::wait_for(
        Duration::from_secs(30),
        "vigil_index_disk_bytes to count the committed index",
        || c.proc.log_tail(),
        || {
            let reported = vigil_e2e::metric(&url, "vigil_index_disk_bytes") as u64;
            let files = on_disk(&index);
            (reported > 0 && reported.abs_diff(files) * 10 <= files).then_some(())
        },
    );
    let search: serde_json::Value =
        reqwest::blocking::get(format!("{url}/api/v1/search?q=\"valid event\""))
            .expect("search")
            .json()
            .expect("json");
    assert!(search["total"].as_u64().is_some());

    // Bad search parameters are 400s with a code too.
    for q in [
        "limit=1000000000",
        "limit=abc",
        "q=message:(unbalanced",
        "from=yesterday",
    ] {
        let resp = reqwest::blocking::get(format!("{url}/api/v1/search?{q}")).expect("search");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{q}");
        let body: serde_json::Value = resp.json().expect("json");
        assert!(body["error"]["code"].is_string(), "{q}: {body}");
    }
}

/// The ack of a batch is lost because the collector dies right after the fsync, before any
/// index commit: after restart the batch is searchable (replayed from the write-ahead log)
/// and the agent's retry of it is recognised, not indexed again.
#[test]
fn retry_after_a_lost_ack_and_sigkill_is_not_indexed_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start_with_commit_interval(dir.path(), 0, "1h");
    let port = c.port;
    let client = Client::new();
    let mut b = batch(AGENT_ID);
    b.events[0].set_str("message", "replayed once");
    let frame = b.encode();
    let (got, body) = post(&client, &c.url(), Some(AGENT_TOKEN), frame.clone());
    assert_eq!(
        (got, body["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{body}"
    );
    c.proc.kill9();

    let c = Collector::start_with_commit_interval(dir.path(), port, "1h");
    assert_eq!(
        vigil_e2e::metric(&c.url(), "vigil_wal_replayed_batches_total"),
        1.0
    );
    let (got, body) = post(&client, &c.url(), Some(AGENT_TOKEN), frame);
    assert_eq!(
        (got, body["status"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "{body}"
    );
    let r = vigil_e2e::search(&c.url(), "\"replayed once\"", 10, 0).expect("search");
    assert_eq!(r["total"], 1, "{r}");
}

/// Resident memory of a process now, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A frame around `body` (a binary batch body of the current version) compressed with or
/// without the size in its zstd header.
fn compressed_frame(body: &[u8], declare_size: bool) -> Vec<u8> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).expect("encoder");
    enc.include_contentsize(declare_size).expect("size flag");
    if declare_size {
        enc.set_pledged_src_size(Some(body.len() as u64))
            .expect("pledge");
    }
    std::io::Write::write_all(&mut enc, body).expect("compress");
    wire::frame(wire::CURRENT_VERSION, &enc.finish().expect("finish"))
}

/// Small requests that claim much — zstd bombs (with and without a declared size),
/// batches whose counts claim a billion events or fields, and 33 MB bodies without a token —
/// sent sixteen at a time, while a real agent batch goes in. The collector's resident memory
/// stays within its decode budget (64 MiB here) plus 96 MiB for everything else, every
/// request is answered, and it serves afterwards. Before, eight bombs took it to 3.1 GB.
#[test]
fn memory_grows_with_small_requests_zstd_bombs_and_unauthenticated_bodies() {
    const BOUND_KIB: u64 = (64 + 96) << 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start_with(
        dir.path(),
        0,
        "500ms",
        "\n[ingest]\ndecode_budget_mb = 64\n",
    );
    let (url, port, pid) = (c.url(), c.port, c.proc.pid());
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    // Warm up with a real batch, then take the baseline.
    let (got, body) = post(&client, &url, Some(AGENT_TOKEN), batch(AGENT_ID).encode());
    assert_eq!(got, StatusCode::OK, "{body}");
    let baseline = rss_kib(pid);

    // 300 MB of one byte: a few hundred KB compressed.
    let mut bomb = binary_header(1_000_000);
    bomb.resize(300 << 20, 0);
    let declared = compressed_frame(&bomb, true);
    let undeclared = compressed_frame(&bomb, false);
    drop(bomb);
    // A billion events in a few bytes; an event of a billion fields.
    let events = compressed_frame(&binary_header(1_000_000_000), true);
    let mut wide = binary_header(1);
    wide.extend_from_slice(&[0x80, 0xa8, 0xd6, 0xb9, 0x07]);
    wide.resize(1 << 20, 0);
    let fields = compressed_frame(&wide, false);
    assert!(declared.len() < 1 << 20 && undeclared.len() < 1 << 20);

    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let peak = peak.clone();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let h = std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        (done, h)
    };
    let mut answers = Vec::new();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for round in 0..4 {
            for (what, body) in [
                ("bomb with its size", &declared),
                ("bomb without its size", &undeclared),
                ("a billion events", &events),
                ("a billion fields", &fields),
            ] {
                let (client, url) = (&client, &url);
                handles.push(scope.spawn(move || {
                    let (status, err) = post(client, url, Some(AGENT_TOKEN), body.clone());
                    (format!("{what} #{round}"), status.as_u16(), err.to_string())
                }));
            }
            handles.push(scope.spawn(move || {
                let answer = post_raw(port, None, 33, round % 2 == 1);
                let status = answer.get(9..12).unwrap_or("").parse().unwrap_or(0);
                (format!("33 MB without a token #{round}"), status, answer)
            }));
        }
        answers = handles
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect();
    });
    watcher.0.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.1.join().expect("watcher");
    for (what, status, answer) in &answers {
        let want: &[u16] = if what.contains("token") {
            &[401]
        } else {
            // Too large, or the budget is taken by the others: retry later.
            &[413, 503]
        };
        assert!(want.contains(status), "{what}: {status} {answer}");
    }
    assert!(
        answers.iter().filter(|a| a.1 == 413).count() >= 4,
        "{answers:?}"
    );
    let grew = peak
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(baseline);
    eprintln!("resident memory: baseline {baseline} KiB, grew by at most {grew} KiB");
    assert!(
        grew < BOUND_KIB,
        "the collector grew by {grew} KiB (bound {BOUND_KIB} KiB)"
    );
    // Still serving.
    let (got, body) = post(&client, &url, Some(AGENT_TOKEN), batch(AGENT_ID).encode());
    assert_eq!(
        (got, body["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{body}"
    );
}

/// A binary batch body of the current wire version up to its count of events.
fn binary_header(events: u64) -> Vec<u8> {
    let mut h = vigil_schema::binary::Writer::default().header(uuid::Uuid::now_v7(), AGENT_ID, 1);
    h.pop();
    let mut n = events;
    while n >= 0x80 {
        h.push((n as u8) | 0x80);
        n >>= 7;
    }
    h.push(n as u8);
    h
}

/// A request without a valid token is answered 401 from its headers alone: the collector
/// does not wait for (or buffer) a body it will refuse. Only the head of a 33 MB upload is
/// sent, and the answer must come anyway.
#[test]
fn unauthenticated_bodies_are_read_in_full_before_the_401() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    for auth in ["", "Authorization: Bearer not-a-valid-token-at-all\r\n"] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let head = format!(
            "POST /api/v1/ingest HTTP/1.1\r\nHost: vigil\r\n{auth}Content-Length: {}\r\n\r\n",
            33 << 20
        );
        stream.write_all(head.as_bytes()).expect("head");
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("}}") {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => panic!("no answer without the body ({auth:?}): {e}"),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 401"), "{auth:?}: {answer}");
        assert!(answer.contains("unauthorized"), "{answer}");
    }
}
