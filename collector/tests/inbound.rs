//! Replies by e-mail through the SMTP listener, sent by a real SMTP client (lettre): a reply
//! from the address an announcement went to lands on the timeline, `ACK` acknowledges, and
//! anything else is refused with a 550 its sender sees; hostile sessions are cut short. With
//! a certificate (made by openssl here) the listener offers STARTTLS, and a client that
//! requires TLS delivers through it.

mod postgres;

use std::sync::Arc;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use postgres::on_sqlite;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use vigil_collector::config::CollectorConfig;
use vigil_collector::incidents::{Alert, Status, Store};
use vigil_collector::notify::Notifier;

const CONFIG: &str = r#"
[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
reply_to = "replies@vigil.example.org"
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
[notify.route]
receiver = "desk"
"#;

/// `store` announcing to the desk by e-mail, an incident on `host` and its e-mail's delivery
/// (whose id the reply names).
async fn announced(store: Store, host: &str) -> (Store, i64, i64) {
    let cfg: CollectorConfig = toml::from_str(CONFIG).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let n: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let store = store.with_notifier(n);
    let id = store
        .record(&[Alert {
            id: format!("i.{host}"),
            rule_id: "r".into(),
            title: "firewall drops".into(),
            severity: "medium".into(),
            customer: Some("ulb".into()),
            group_key: format!("host.name={host}"),
            at: chrono::Utc::now(),
            message: None,
            danger: false,
            affected: Vec::new(),
            tags: Vec::new(),
            seen: Default::default(),
        }])
        .await
        .expect("record")
        .opened[0];
    let delivery: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE incident_id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .expect("the e-mail's delivery");
    (store, id, delivery)
}

async fn scenario(store: Store) {
    let (store, id, delivery) = announced(store, "fw1").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(vigil_collector::notify::inbound::run(
        listener,
        store.clone(),
        64 << 10,
        None,
        stop.clone(),
    ));
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    let send = |from: &str, reply_to_announcement: bool, body: String| {
        let mut m = Message::builder()
            .from(from.parse().expect("from"))
            .to("replies@vigil.example.org".parse().expect("to"))
            .subject("Re: [Vigil #1] firewall drops (ulb)")
            .header(ContentType::TEXT_PLAIN);
        if reply_to_announcement {
            m = m.in_reply_to(format!("<vigil-{id}-{delivery}@example.org>"));
        }
        let msg = m.body(body).expect("message");
        let smtp = smtp.clone();
        async move { smtp.send(msg).await }
    };
    let steps = |store: Store| async move {
        store
            .get(id)
            .await
            .expect("get")
            .timeline
            .into_iter()
            .filter(|e| e.action == "reply" || e.action == "ack")
            .map(|e| {
                (
                    e.actor,
                    e.action,
                    e.detail["text"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };

    // A question from the address told: its own words land on the timeline.
    send(
        "NOC Desk <desk@example.org>",
        true,
        "Is this the firewall change?\n\nOn Mon, Vigil wrote:\n> Vigil. Incident.\n".into(),
    )
    .await
    .expect("taken");
    // From another address, or not a reply: refused, and the sender is told.
    let e = send("mallory@example.org", true, "ACK".into())
        .await
        .expect_err("refused");
    assert!(e.is_permanent(), "{e}");
    let e = send("desk@example.org", false, "ACK".into())
        .await
        .expect_err("refused");
    assert!(e.is_permanent(), "{e}");
    assert_eq!(store.get_brief(id).await.expect("get").status, Status::Open);
    // Too large: refused whole.
    let e = send("desk@example.org", true, "x".repeat(100 << 10))
        .await
        .expect_err("too large");
    assert!(e.to_string().contains("552") || e.is_permanent(), "{e}");
    // ACK acknowledges.
    send("desk@example.org", true, "ack\n\n> quoted".into())
        .await
        .expect("taken");
    assert_eq!(
        store.get_brief(id).await.expect("get").status,
        Status::Acknowledged
    );
    assert_eq!(
        steps(store.clone()).await,
        [
            (
                "email:desk@example.org".to_owned(),
                "reply".to_owned(),
                "Is this the firewall change?".to_owned()
            ),
            (
                "email:desk@example.org".to_owned(),
                "ack".to_owned(),
                String::new()
            ),
        ]
    );

    // Nonsense is answered; a line too long ends the session.
    let raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (r, mut w) = raw.into_split();
    let mut r = BufReader::new(r);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.expect("greeting");
    assert!(greeting.starts_with("220"), "{greeting}");
    w.write_all(b"HELLO there\r\nDATA\r\n")
        .await
        .expect("write");
    let mut a = String::new();
    r.read_line(&mut a).await.expect("answer");
    assert!(a.starts_with("502"), "{a}");
    a.clear();
    r.read_line(&mut a).await.expect("answer");
    assert!(a.starts_with("503"), "{a}");
    w.write_all(&vec![b'A'; 5000]).await.expect("write");
    w.write_all(b"\r\n").await.expect("write");
    a.clear();
    let n = r.read_line(&mut a).await.unwrap_or(0);
    assert_eq!(n, 0, "the session ends: {a}");
    stop.cancel();
    store.close().await;
}

#[tokio::test]
async fn replies_by_email_land_on_the_timeline_and_ack_acknowledges() {
    on_sqlite(scenario).await;
}

/// `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
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

async fn starttls(store: Store) {
    let (store, id, delivery) = announced(store, "fw2").await;
    // A CA and a certificate for localhost it signs.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    openssl(
        d,
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
            "2",
            "-subj",
            "/CN=Vigil test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "host.key",
            "-out",
            "host.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(d.join("host.ext"), "subjectAltName=DNS:localhost\n").expect("ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "host.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "host.pem",
            "-days",
            "2",
            "-extfile",
            "host.ext",
        ],
    );
    let acceptor = vigil_agent::syslog::tls::acceptor(&vigil_agent::config::TlsConfig {
        cert: d.join("host.pem"),
        key: d.join("host.key"),
        handshake_timeout: std::time::Duration::from_secs(5),
    })
    .expect("a certificate and key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(vigil_collector::notify::inbound::run(
        listener,
        store.clone(),
        64 << 10,
        Some(acceptor),
        stop.clone(),
    ));
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let ca = std::fs::read(d.join("ca.pem")).expect("ca");
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(&ca).expect("ca certificate"))
        .build_rustls()
        .expect("TLS parameters");
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("localhost")
        .port(port)
        .tls(Tls::Required(tls))
        .build();
    let msg = Message::builder()
        .from("desk@example.org".parse().expect("from"))
        .to("replies@vigil.example.org".parse().expect("to"))
        .subject("Re: [Vigil] firewall drops (ulb)")
        .in_reply_to(format!("<vigil-{id}-{delivery}@example.org>"))
        .header(ContentType::TEXT_PLAIN)
        .body("ACK".to_owned())
        .expect("message");
    smtp.send(msg).await.expect("delivered over STARTTLS");
    assert_eq!(
        store.get_brief(id).await.expect("get").status,
        Status::Acknowledged
    );
    // STARTTLS is offered before TLS, not after.
    let raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (r, mut w) = raw.into_split();
    let mut r = BufReader::new(r);
    let mut text = String::new();
    r.read_line(&mut text).await.expect("greeting");
    w.write_all(b"EHLO client\r\n").await.expect("write");
    for _ in 0..3 {
        r.read_line(&mut text).await.expect("answer");
    }
    assert!(text.contains("250 STARTTLS"), "{text}");
    stop.cancel();
    store.close().await;
}

#[tokio::test]
async fn replies_come_over_starttls_when_the_listener_has_a_certificate() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        postgres::skip("openssl is not installed (apt-get install openssl)");
        return;
    }
    on_sqlite(starttls).await;
}
