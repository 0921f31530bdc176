//! A small HTTP server standing in for a voice/SMS gateway or a webhook receiver: it records
//! every request (method, path, headers, body, when it came) and answers each with a status
//! the test chooses.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: SystemTime,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    /// Milliseconds each answer waits (a gateway whose call takes time to end).
    delay_ms: Arc<AtomicU64>,
}

/// Largest request body kept.
const MAX_BODY: usize = 1 << 20;

impl Sink {
    /// Listens on a free loopback port, on a thread of its own, answering 200.
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (r, s, d) = (received.clone(), status.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, s, d) = (r.clone(), s.clone(), d.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &r, &s, &d);
                });
            }
        });
        Sink {
            addr,
            received,
            status,
            delay_ms,
        }
    }

    /// Later requests are answered only after `d`.
    pub fn delay(&self, d: std::time::Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status later requests are answered with.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn serve(
    conn: std::net::TcpStream,
    received: &Mutex<Vec<Received>>,
    status: &AtomicU16,
    delay_ms: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    if let Ok(mut r) = received.lock() {
        r.push(Received {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: SystemTime::now(),
        });
    }
    std::thread::sleep(std::time::Duration::from_millis(
        delay_ms.load(Ordering::SeqCst),
    ));
    let code = status.load(Ordering::SeqCst);
    let answer = format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{{\"ok\":true}}"
    );
    let mut w = conn;
    w.write_all(answer.as_bytes())?;
    w.flush()
}
