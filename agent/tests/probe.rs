//! TLS checks against a real TLS server, `openssl s_server`, with certificates openssl makes
//! here: one for `localhost` from a test CA expiring in 3 days warns (`degraded`, with the
//! expiry in `tls.server.not_after`); one for another name fails (`down`); the public roots
//! do not trust the test CA (`down`). HTTP and TCP checks against local servers. DNS checks
//! against dnsmasq; ICMP echoes on loopback, into a namespace's void, and where the agent may
//! not send ICMP; CAP checks reading the corpus's alerts and feed from a local server.

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
        dns: Default::default(),
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

/// dnsmasq answering on a free UDP port of 127.0.0.1 with `addresses` (`/name/ip`, or
/// `/name/` for no such name), killed on drop.
struct Dnsmasq(Child, u16);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dnsmasq(addresses: &[&str]) -> Option<Dnsmasq> {
    if !have("dnsmasq") && !Path::new("/usr/sbin/dnsmasq").exists() {
        skip("dnsmasq is not installed (apt-get install dnsmasq-base)");
        return None;
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = Command::new("/usr/sbin/dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--user=root",
        "--pid-file=",
        &format!("--port={port}"),
    ]);
    for a in addresses {
        cmd.arg(format!("--address={a}"));
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq starts");
    Some(Dnsmasq(child, port))
}

fn dns_spec(name: &str, server: String) -> CheckSpec {
    let mut s = spec(CheckType::Dns, name.into());
    s.timeout_ms = 2_000;
    s.dns.server = Some(server);
    s
}

#[tokio::test]
async fn dns_checks_ask_a_real_server_and_hold_the_answer_to_the_expected_addresses() {
    use vigil_schema::check::DnsRecord;
    let Some(d) = dnsmasq(&[
        "/www.vigil.test/192.0.2.7",
        "/www.vigil.test/2001:db8::7",
        "/gone.vigil.test/",
    ]) else {
        return;
    };
    let server = format!("127.0.0.1:{}", d.1);
    let prober = Prober::new().expect("prober");
    let mut s = dns_spec("www.vigil.test", server.clone());
    // dnsmasq answers once it has bound its socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = prober.probe(&s).await;
    while out.status != ProbeStatus::Up && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        out = prober.probe(&s).await;
    }
    assert_eq!(out.status, ProbeStatus::Up, "{out:?}");
    assert_eq!(
        out.resolved,
        vec!["192.0.2.7".parse::<std::net::IpAddr>().expect("ip")]
    );
    let ev = out.event(&s);
    assert_eq!(
        ev.get(f::DNS_RESOLVED_IP),
        Some(&serde_json::json!(["192.0.2.7"]))
    );
    s.dns.expect = vec!["192.0.2.7".into(), "192.0.2.8".into()];
    assert_eq!(prober.probe(&s).await.status, ProbeStatus::Up);
    // A changed (or hijacked) record is down, and says what it was.
    s.dns.expect = vec!["192.0.2.8".into()];
    let out = prober.probe(&s).await;
    assert_eq!(out.status, ProbeStatus::Down);
    assert_eq!(
        out.error.as_deref(),
        Some("www.vigil.test resolves to 192.0.2.7, not one of 192.0.2.8")
    );
    let mut six = dns_spec("www.vigil.test", server.clone());
    six.dns.record = DnsRecord::Aaaa;
    let out = prober.probe(&six).await;
    assert_eq!(
        (out.status, out.resolved.clone()),
        (ProbeStatus::Up, vec!["2001:db8::7".parse().expect("ip")]),
        "{out:?}"
    );
    let out = prober
        .probe(&dns_spec("gone.vigil.test", server.clone()))
        .await;
    assert_eq!(out.status, ProbeStatus::Down);
    assert_eq!(
        out.error.as_deref(),
        Some(format!("{server} answered NXDOMAIN for gone.vigil.test").as_str())
    );
    // The server gone: down, never a hang past the timeout.
    drop(d);
    let out = prober.probe(&dns_spec("www.vigil.test", server)).await;
    assert_eq!(out.status, ProbeStatus::Down, "{out:?}");
    // Without a chosen server, the system's resolver (here /etc/hosts).
    let out = prober
        .probe(&spec(CheckType::Dns, "localhost".into()))
        .await;
    assert_eq!(out.status, ProbeStatus::Up, "{out:?}");
    assert!(out.resolved.iter().all(|a| a.is_loopback()), "{out:?}");
}

fn root() -> bool {
    // SAFETY-free check: /proc says who we are.
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        if !root() || !have("ip") {
            skip("ICMP namespaces need root and iproute2");
            return None;
        }
        let name = format!("vigil-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip("ip netns add failed");
            return None;
        }
        let ns = Netns(name);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn run(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .status()
            .expect("ip netns exec");
        assert!(st.success(), "{args:?} in {}", self.0);
    }

    /// `vigil-agent --probe CHECK` in the namespace, run as `user` (`None`: root).
    fn probe(&self, check: &str, user: Option<&str>) -> (i32, serde_json::Value) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]);
        if let Some(u) = user {
            cmd.args([
                "setpriv",
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ]);
        }
        let out = cmd
            .args([env!("CARGO_BIN_EXE_vigil-agent"), "--probe", check])
            .output()
            .expect("vigil-agent runs");
        let line = String::from_utf8_lossy(&out.stdout);
        let ev = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            panic!(
                "not a probe event: {e}: {line} / {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), ev)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn icmp_checks_echo_say_when_nothing_answers_and_when_they_may_not_send() {
    let Some(ns) = Netns::new("icmp") else {
        return;
    };
    // Loopback answers.
    let (code, ev) = ns.probe(r#"{"type": "icmp", "target": "127.0.0.1"}"#, None);
    assert_eq!(
        (code, ev[f::MONITOR_STATUS].as_str()),
        (0, Some("up")),
        "{ev}"
    );
    assert!(
        ev[f::EVENT_DURATION].as_u64().is_some_and(|d| d > 0),
        "{ev}"
    );
    // An address on a veth whose other end holds no address: nobody answers its ARP, so the
    // echo never gets an answer.
    ns.run(&[
        "ip", "link", "add", "void0", "type", "veth", "peer", "name", "void1",
    ]);
    ns.run(&["ip", "addr", "add", "10.77.0.1/24", "dev", "void0"]);
    ns.run(&["ip", "link", "set", "void0", "up"]);
    ns.run(&["ip", "link", "set", "void1", "up"]);
    let (code, ev) = ns.probe(
        r#"{"type": "icmp", "target": "10.77.0.2", "timeout_ms": 300}"#,
        None,
    );
    assert_eq!(code, 1, "{ev}");
    assert_eq!(ev[f::MONITOR_STATUS], "down");
    assert_eq!(ev[f::ERROR_MESSAGE], "no answer within 300ms");
    // Nobody without CAP_NET_RAW, in a namespace whose ping_group_range allows no group
    // (the default of a new one): down, saying why, and the process ends normally.
    let (code, ev) = ns.probe(r#"{"type": "icmp", "target": "127.0.0.1"}"#, Some("65534"));
    assert_eq!(code, 1, "{ev}");
    assert_eq!(ev[f::MONITOR_STATUS], "down");
    assert_eq!(ev[f::ERROR_MESSAGE], vigil_agent::icmp::NOT_PERMITTED);
}

/// An HTTP server answering each request with the next of `answers` (status, body), on a
/// thread.
fn http_serve(answers: Vec<(u16, String)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for ((status, body), conn) in answers.into_iter().zip(l.incoming()) {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(body.as_bytes());
        }
    });
    port
}

fn cap_corpus() -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/cap/examples");
    if p.is_dir() {
        Some(p)
    } else {
        skip("the CAP corpus (../shared/corpus/cap) is not beside the repository");
        None
    }
}

#[tokio::test]
async fn cap_checks_read_the_corpus_alerts_and_feed_and_refuse_a_broken_one() {
    let Some(dir) = cap_corpus() else { return };
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect("corpus file");
    let alert = read("oasis-spec-appendix-a/v1dot2_appendix_adot2.xml");
    let feed = read("ibm-cap/nws_atom_feed_example.xml");
    let broken = alert.replace("<status>Actual</status>", "<status>Real</status>");
    let port = http_serve(vec![
        (200, alert),
        (200, feed),
        (200, broken),
        (500, String::new()),
        (200, "<html>maintenance</html>".into()),
    ]);
    let prober = Prober::new().expect("prober");
    let s = spec(CheckType::Cap, format!("http://127.0.0.1:{port}/cap"));
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(prober.probe(&s).await);
    }
    let statuses: Vec<_> = results.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            ProbeStatus::Up,
            ProbeStatus::Up,
            ProbeStatus::Down,
            ProbeStatus::Down,
            ProbeStatus::Down
        ],
        "{results:?}"
    );
    assert!(
        results[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("<status> \"Real\"")),
        "{:?}",
        results[2]
    );
    assert_eq!(results[3].error.as_deref(), Some("status 500, not 2xx"));
    assert!(
        results[4]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("neither a CAP <alert> nor an Atom <feed>")),
        "{:?}",
        results[4]
    );
}
