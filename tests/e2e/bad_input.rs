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
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", 100 << 20)
    };
    let head = format!(
        "POST /api/v1/ingest HTTP/1.1\r\nHost: vigil\r\nAuthorization: Bearer {AGENT_TOKEN}\r\n{framing}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mb = vec![0u8; 1 << 20];
        for _ in 0..100 {
            let ok = if chunked {
                writer
                    .write_all(format!("{:x}\r\n", mb.len()).as_bytes())
                    .and_then(|_| writer.write_all(&mb))
                    .and_then(|_| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&mb)
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
