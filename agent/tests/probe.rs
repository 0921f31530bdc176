//! TLS checks against a real TLS server, `openssl s_server`, with certificates openssl makes
//! here: one for `localhost` from a test CA expiring in 3 days warns (`degraded`, with the
//! expiry in `tls.server.not_after`); one for another name fails (`down`); the public roots
//! do not trust the test CA (`down`). HTTP and TCP checks against local servers.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{have, skip};
use vigil_agent::probe::Prober;
use vigil_schema::check::{CheckSpec, CheckType, HttpSpec, ProbeStatus, TlsSpec};
use vigil_schema::fields as f;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for `name` it signs, valid for `days`: (ca.pem, NAME.pem, NAME.key).
fn certificates(dir: &Path, name: &str, days: &str) {
    if !dir.join("ca.pem").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=Vigil test CA",
            ],
        );
    }
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName=DNS:{name}\n"),
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            days,
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server` with `name`'s certificate, listening when this returns.
fn s_server(dir: &Path, name: &str) -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new("openssl")
        .current_dir(dir)
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            &format!("{name}.pem"),
            "-key",
            &format!("{name}.key"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

fn spec(kind: CheckType, target: String) -> CheckSpec {
    CheckSpec {
        id: "c".into(),
        kind,
        target,
        interval_ms: 10_000,
        timeout_ms: 5_000,
        retries: 0,
        http: HttpSpec::default(),
        tls: TlsSpec::default(),
        customer: None,
    }
}

#[tokio::test]
async fn tls_checks_warn_before_expiry_and_fail_on_another_name_or_an_untrusted_chain() {
    if !have("openssl") {
        skip("openssl is not installed (apt-get install openssl)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    certificates(dir.path(), "localhost", "3");
    certificates(dir.path(), "other.example", "30");
    let prober = Prober::new().expect("prober");
    let ca = dir.path().join("ca.pem").display().to_string();

    let (_s, port) = s_server(dir.path(), "localhost");
    let mut s = spec(CheckType::Tls, format!("localhost:{port}"));
    s.tls.ca_file = Some(ca.clone());
    let out = prober.probe(&s).await;
    assert_eq!(out.status, ProbeStatus::Degraded, "{out:?}");
    let left = out.not_after.expect("expiry") - chrono::Utc::now();
    assert!(
        left > chrono::Duration::days(2) && left <= chrono::Duration::days(3),
        "{left:?}"
    );
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("expires in 2 days")),
        "{out:?}"
    );
    let ev = out.event(&s);
    assert_eq!(ev.get_str(f::MONITOR_STATUS), Some("degraded"));
    assert_eq!(ev.get_str(f::MONITOR_TYPE), Some("tls"));
    assert!(ev.get_str(f::TLS_NOT_AFTER).is_some());
    // Warned only within warn_days.
    s.tls.warn_days = 1;
    assert_eq!(prober.probe(&s).await.status, ProbeStatus::Up);
    // The public roots do not trust the test CA.
    s.tls.ca_file = None;
    let out = prober.probe(&s).await;
    assert_eq!(out.status, ProbeStatus::Down, "{out:?}");
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("TLS handshake")),
        "{out:?}"
    );

    // A certificate for another name.
    let (_o, port) = s_server(dir.path(), "other.example");
    let mut s = spec(CheckType::Tls, format!("localhost:{port}"));
    s.tls.ca_file = Some(ca.clone());
    let out = prober.probe(&s).await;
    assert_eq!(out.status, ProbeStatus::Down, "{out:?}");
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("not valid for name")),
        "{out:?}"
    );
    // ... which is right when that name is the one expected.
    s.tls.server_name = Some("other.example".into());
    assert_eq!(prober.probe(&s).await.status, ProbeStatus::Up);
}

/// A one-request HTTP server answering `status` with `body`, on a thread.
fn http_once(status: u16, body: &'static str, delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in l.incoming().take(4) {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            std::thread::sleep(delay);
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn http_and_tcp_checks_judge_the_answer() {
    let prober = Prober::new().expect("prober");
    let port = http_once(200, "all systems ok", Duration::ZERO);
    let mut s = spec(CheckType::Http, format!("http://127.0.0.1:{port}/health"));
    s.http.contains = Some("ok".into());
    let out = prober.probe(&s).await;
    assert_eq!(
        (out.status, out.http_status),
        (ProbeStatus::Up, Some(200)),
        "{out:?}"
    );
    s.http.not_contains = Some("systems".into());
    let out = prober.probe(&s).await;
    assert_eq!(out.status, ProbeStatus::Down);
    assert_eq!(out.error.as_deref(), Some("the body contains \"systems\""));
    s.http.not_contains = None;
    s.http.regex = Some("^all .* ok$".into());
    assert_eq!(prober.probe(&s).await.status, ProbeStatus::Up);

    let port = http_once(503, "", Duration::ZERO);
    let out = prober
        .probe(&spec(CheckType::Http, format!("http://127.0.0.1:{port}/")))
        .await;
    assert_eq!(out.status, ProbeStatus::Down);
    assert_eq!(out.error.as_deref(), Some("status 503, not 2xx or 3xx"));

    let port = http_once(200, "", Duration::from_millis(300));
    let mut slow = spec(CheckType::Http, format!("http://127.0.0.1:{port}/"));
    slow.http.degraded_after_ms = Some(100);
    assert_eq!(prober.probe(&slow).await.status, ProbeStatus::Degraded);
    slow.timeout_ms = 100;
    let out = prober.probe(&slow).await;
    assert_eq!(out.status, ProbeStatus::Down);
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.starts_with("no answer within")),
        "{out:?}"
    );

    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = open.local_addr().expect("addr");
    assert_eq!(
        prober
            .probe(&spec(CheckType::Tcp, addr.to_string()))
            .await
            .status,
        ProbeStatus::Up
    );
    drop(open);
    let out = prober.probe(&spec(CheckType::Tcp, addr.to_string())).await;
    assert_eq!(out.status, ProbeStatus::Down);
    assert!(
        out.error.as_deref().is_some_and(|e| e.contains("refused")),
        "{out:?}"
    );
}
