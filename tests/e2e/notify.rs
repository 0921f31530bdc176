//! Notifications end to end: syslog lines into a real agent, a real collector whose rules
//! raise incidents, a real SMTP server (aiosmtpd) and an HTTP server standing in for the
//! voice gateway and a webhook receiver. Danger decides the channel and the order; essential
//! changes and retractions reach everyone told before; a rising count is not announced.

use std::time::Duration;

use serde_json::{Value, json};
use vigil_e2e::sink::{Received, Sink};
use vigil_e2e::smtp::{self, Mail, Smtp};
use vigil_e2e::{Agent, Collector, send_tcp, skip, wait_for};

const DANGER_RULE: &str = "title: danger test line
id: 7a1d2c3e-0000-4000-8000-0000000000d1
logsource: { product: linux, service: syslog }
detection:
  selection:
    message|contains: DANGER-TEST
  condition: selection
level: high
tags: [vigil.danger]
";

const QUIET_RULE: &str = "title: quiet test line
id: 7a1d2c3e-0000-4000-8000-0000000000e1
logsource: { product: linux, service: syslog }
detection:
  selection:
    message|contains: QUIET-TEST
  condition: selection
level: medium
";

fn notify_config(rules: &std::path::Path, smtp_port: u16, gw: &Sink, hook: &Sink) -> String {
    format!(
        r#"
[detect]
builtin_rules = false
rules = ["{rules}"]

[notify]
external_url = "http://vigil.example"
confirm_after = "60s"
retry_backoff = "100ms"
[notify.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "Vigil <vigil@example.org>"
[notify.voice]
url = "{voice}"
headers = {{ "Content-Type" = "application/json" }}
body = '{{"to": {{{{ to|tojson }}}}, "say": {{{{ text|tojson }}}}, "incident": {{{{ incident.id }}}}, "kind": {{{{ kind|tojson }}}}, "callback": {{{{ callback|tojson }}}}}}'

[notify.contact]
name = "Vigil NOC"
phones = ["+3220000000"]

[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
# Called only for probable danger: never for the desk's quiet incidents.
voice = ["+32470000009"]
webhook = ["{hook}"]
[[notify.receivers]]
name = "oncall"
email = ["oncall@example.org"]
voice = ["+32470000001"]

[notify.route]
receiver = "desk"
[[notify.route.routes]]
matchers = ["danger=true"]
receiver = "oncall"
"#,
        rules = rules.display(),
        voice = gw.url("/voice"),
        hook = hook.url("/hook"),
    )
}

fn incidents(url: &str) -> Vec<Value> {
    reqwest::blocking::get(format!("{url}/api/v1/incidents"))
        .and_then(|r| r.json::<Value>())
        .map(|v| v["incidents"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

fn act(url: &str, id: i64, action: &str, body: Value) -> Value {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{url}/api/v1/incidents/{id}/{action}"))
        .header("x-vigil-actor", "e2e")
        .json(&body)
        .send()
        .expect("action answered");
    assert!(resp.status().is_success(), "{action}: {}", resp.status());
    resp.json().expect("incident")
}

/// Waits until incident `id`'s timeline records `n` deliveries as sent (`notified`).
fn wait_notified(url: &str, id: i64, n: usize, what: &str) {
    let count = || -> Option<usize> {
        let inc: Value = reqwest::blocking::get(format!("{url}/api/v1/incidents/{id}"))
            .and_then(|r| r.json())
            .ok()?;
        Some(
            inc["timeline"]
                .as_array()?
                .iter()
                .filter(|e| e["action"] == "notified")
                .count(),
        )
    };
    wait_for(
        Duration::from_secs(30),
        what,
        || format!("{:?}", count()),
        || (count()? == n).then_some(()),
    );
}

/// The voice requests about incident `id`.
fn calls(gw: &Sink, id: i64) -> Vec<Received> {
    gw.received()
        .into_iter()
        .filter(|r| r.json()["incident"] == id)
        .collect()
}

fn mails_to<'a>(mails: &'a [Mail], to: &str, subject_has: &str) -> Vec<&'a Mail> {
    mails
        .iter()
        .filter(|m| m.header("to").contains(to) && m.header("subject").contains(subject_has))
        .collect()
}

/// What the notification tests share: a directory holding `rules`, a real SMTP server, a
/// gateway and a webhook receiver, and the configuration that names them.
struct World {
    dir: tempfile::TempDir,
    mail: Smtp,
    gw: Sink,
    hook: Sink,
    config: String,
    /// Appended to every configuration a test starts a collector with: the incidents'
    /// database when the test runs on PostgreSQL.
    db: String,
}

/// Runs `test` with the incidents and the outbox in a fresh PostgreSQL database (several
/// collectors' store).
fn on_postgres(test: fn(&str)) {
    let Some(pg) = vigil_e2e::postgres::Postgres::fresh() else {
        return;
    };
    test(&format!("\n[incidents]\ndatabase = \"{}\"\n", pg.url));
}

impl World {
    /// `None` (after saying why) when aiosmtpd cannot run here.
    fn new(rules: &[&str]) -> Option<World> {
        Self::with_db(rules, "")
    }

    /// The same, `db` appended to every configuration it starts a collector with.
    fn with_db(rules: &[&str], db: &str) -> Option<World> {
        if let Some(why) = smtp::unavailable() {
            skip(&why);
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir_all(&rules_dir).expect("rules dir");
        for (i, rule) in rules.iter().enumerate() {
            std::fs::write(rules_dir.join(format!("rule{i}.yml")), rule).expect("rule");
        }
        let mail = Smtp::start(dir.path());
        let (gw, hook) = (Sink::start(), Sink::start());
        let config = notify_config(&rules_dir, mail.port, &gw, &hook);
        Some(World {
            dir,
            mail,
            gw,
            hook,
            config,
            db: db.to_owned(),
        })
    }

    /// A collector with `config` (this world's, changed as a test needs) and an agent.
    fn start(&self, config: &str) -> (Collector, Agent) {
        let c = Collector::start_with(self.dir.path(), 0, "100ms", &format!("{config}{}", self.db));
        let a = Agent::start(&self.dir.path().join("agent"), c.port, "", "");
        (c, a)
    }
}

#[test]
fn danger_calls_first_then_confirms_by_email_and_changes_reach_everyone_told() {
    danger_and_changes("");
}

/// The same, with the incidents and the outbox in PostgreSQL (several collectors' store).
#[test]
fn danger_calls_first_then_confirms_by_email_and_changes_reach_everyone_told_on_postgres() {
    on_postgres(danger_and_changes);
}

/// The main notification scenario, with `extra` appended to the configuration.
fn danger_and_changes(extra: &str) {
    let Some(w) = World::new(&[DANGER_RULE, QUIET_RULE]) else {
        return;
    };
    let (mail, gw, hook) = (&w.mail, &w.gw, &w.hook);
    // A call takes a while to end: the e-mail must wait for it.
    let call_takes = Duration::from_millis(1500);
    gw.delay(call_takes);
    let (collector, agent) = w.start(&format!("{}{extra}", w.config));
    let url = collector.url();
    let logs = || format!("{}\n{}", collector.proc.log_tail(), agent.proc.log_tail());
    // What the receivers got, for a wait that times out.
    let seen = || {
        format!(
            "gateway: {:?}\nmails: {:?}\n{}",
            gw.received(),
            mail.mails(),
            logs()
        )
    };

    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);
    send_tcp(agent.syslog_tcp, "QUIET-TEST", 0..1);
    let (danger, quiet) = wait_for(Duration::from_secs(60), "two incidents", logs, || {
        let list = incidents(&url);
        let id = |title: &str| {
            list.iter()
                .find(|i| i["title"] == title)
                .and_then(|i| i["id"].as_i64())
        };
        Some((id("danger test line")?, id("quiet test line")?))
    });

    // Danger: the call, then the e-mail to on-call, which says how the call went.
    let first = wait_for(
        Duration::from_secs(60),
        "the call and the on-call e-mail",
        seen,
        || {
            let mails = mail.mails();
            let m = mails_to(&mails, "oncall@example.org", "PROBABLE DANGER");
            let c = calls(gw, danger);
            (c.len() == 1 && m.len() == 1).then(|| (c[0].clone(), m[0].clone()))
        },
    );
    let (call, confirm) = first;
    let body = call.json();
    assert_eq!(body["to"], "+32470000001");
    assert_eq!(body["kind"], "opened");
    assert!(
        body["say"]
            .as_str()
            .is_some_and(|s| s.contains("Probable danger")),
        "{body}"
    );
    assert!(
        call.headers
            .get("idempotency-key")
            .is_some_and(|k| !k.is_empty())
    );
    assert!(
        call.at + call_takes <= confirm.arrived,
        "the e-mail came after the call ended"
    );
    assert!(
        confirm.body.contains("+32470000001: placed"),
        "{}",
        confirm.body
    );
    assert!(
        confirm.body.contains("Customer: test-customer"),
        "{}",
        confirm.body
    );
    // Whom to call back (decree art. 4).
    assert!(
        confirm.body.contains("Contact: Vigil NOC, +3220000000"),
        "{}",
        confirm.body
    );

    // No danger: e-mail only (and the webhook), nobody called.
    let quiet_mail = wait_for(
        Duration::from_secs(60),
        "the desk's e-mail",
        || format!("{:?}", mail.mails()),
        || {
            mails_to(&mail.mails(), "desk@example.org", "quiet test line")
                .first()
                .cloned()
                .cloned()
        },
    );
    assert!(!quiet_mail.header("subject").contains("DANGER"));
    assert!(calls(gw, quiet).is_empty(), "no call without danger");
    let hooks = wait_for(Duration::from_secs(30), "the webhook", logs, || {
        let h = hook.received();
        (!h.is_empty()).then_some(h)
    });
    alertmanager_payload(&hooks[0].json(), quiet);

    // A rising count is not announced: the quiet incident's count rises, then an
    // announcement of the danger incident passes through; the desk still has one e-mail.
    send_tcp(agent.syslog_tcp, "QUIET-TEST", 1..2);
    wait_for(Duration::from_secs(60), "the count to rise", logs, || {
        incidents(&url)
            .iter()
            .any(|i| i["id"] == quiet && i["count"] == 2)
            .then_some(())
    });

    // Danger appears on the quiet one (an operator escalates): a call, then e-mails to
    // on-call (the route now) and to the desk (told before), threaded under the first.
    act(
        &url,
        quiet,
        "escalate",
        json!({"severity": "high", "danger": true}),
    );
    let escalated = wait_for(
        Duration::from_secs(60),
        "the escalation's call and e-mails",
        seen,
        || {
            let mails = mail.mails();
            let c = calls(gw, quiet);
            let desk = mails_to(&mails, "desk@example.org", "NOW PROBABLE DANGER");
            let oncall = mails_to(&mails, "oncall@example.org", "NOW PROBABLE DANGER");
            (c.len() == 1 && desk.len() == 1 && oncall.len() == 1)
                .then(|| (c[0].clone(), desk[0].clone()))
        },
    );
    assert_eq!(escalated.0.json()["kind"], "changed");
    assert!(escalated.0.at + call_takes <= escalated.1.arrived);
    assert_eq!(
        escalated.1.header("in-reply-to"),
        quiet_mail.header("message-id"),
        "later e-mails thread under the first"
    );
    let desk_quiet = mails_to(&mail.mails(), "desk@example.org", "quiet test line").len();
    assert_eq!(
        desk_quiet, 2,
        "opened and escalated; the rising count told nobody"
    );

    // Resolving the escalated one: e-mail (and the webhook) to the receivers that want
    // resolutions, never a call.
    let calls_before = gw.received().len();
    act(
        &url,
        quiet,
        "resolve",
        json!({"resolution": "router replaced"}),
    );
    wait_for(
        Duration::from_secs(60),
        "the resolution's e-mails",
        || format!("mails: {:?}\n{}", mail.mails(), logs()),
        || {
            let mails = mail.mails();
            let desk = mails_to(&mails, "desk@example.org", "Resolved: quiet test line").len();
            let oncall = mails_to(&mails, "oncall@example.org", "Resolved: quiet test line").len();
            (desk == 1 && oncall == 1).then_some(())
        },
    );
    assert_eq!(
        gw.received().len(),
        calls_before,
        "a resolution calls nobody"
    );
    let resolved_hook = wait_for(
        Duration::from_secs(30),
        "the resolved webhook",
        logs,
        || {
            hook.received()
                .into_iter()
                .map(|r| r.json())
                .find(|p| p["status"] == "resolved")
        },
    );
    alertmanager_payload_shape(&resolved_hook);

    // Retracting the danger incident: called again, then e-mailed, with the reason.
    act(
        &url,
        danger,
        "retract",
        json!({"reason": "false_positive: a test line"}),
    );
    let retracted = wait_for(
        Duration::from_secs(60),
        "the retraction's call and e-mail",
        seen,
        || {
            let mails = mail.mails();
            let c = calls(gw, danger);
            let m = mails_to(&mails, "oncall@example.org", "RETRACTED");
            (c.len() == 2 && m.len() == 1).then(|| (c[1].clone(), m[0].clone()))
        },
    );
    let said = retracted.0.json();
    assert_eq!(said["kind"], "retracted");
    assert!(
        said["say"]
            .as_str()
            .is_some_and(|s| s.contains("false_positive: a test line")),
        "{said}"
    );
    assert!(retracted.0.at + call_takes <= retracted.1.arrived);
    assert!(
        retracted
            .1
            .body
            .contains("Reason for the retraction: false_positive: a test line")
    );

    // Every delivery's end is on the timeline (recorded once the receiver answered).
    wait_notified(
        &url,
        danger,
        4,
        "two calls and two e-mails recorded as sent",
    );
}

/// Every field of Alertmanager's webhook payload (version 4), with its type, for a firing
/// alert of `incident`.
fn alertmanager_payload(p: &Value, incident: i64) {
    alertmanager_payload_shape(p);
    assert_eq!(p["status"], "firing");
    assert_eq!(p["alerts"][0]["status"], "firing");
    assert_eq!(p["alerts"][0]["labels"]["incident"], incident.to_string());
}

/// Every field of Alertmanager's webhook payload (version 4), with its type.
fn alertmanager_payload_shape(p: &Value) {
    assert_eq!(p["version"], "4", "{p}");
    for k in ["groupKey", "status", "receiver", "externalURL"] {
        assert!(p[k].is_string(), "{k}: {p}");
    }
    assert!(p["truncatedAlerts"].is_u64(), "{p}");
    for k in ["groupLabels", "commonLabels", "commonAnnotations"] {
        assert!(p[k].is_object(), "{k}: {p}");
    }
    let a = &p["alerts"][0];
    assert_eq!(a["status"], p["status"]);
    assert!(
        a["labels"].is_object() && a["annotations"].is_object(),
        "{a}"
    );
    for k in ["startsAt", "endsAt"] {
        let t = a[k].as_str().expect("time");
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{k}: {t}");
    }
    assert!(
        a["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://vigil.example/"))
    );
    let fp = a["fingerprint"].as_str().expect("fingerprint");
    assert!(
        fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fp}"
    );
}

/// SIGKILL while a call is in flight (its attempt started, its end not recorded) and before
/// the e-mail that waits for it was attempted: after a restart the call is made again with
/// the same idempotency key, once its lease ran out, and the e-mail goes once.
#[test]
fn a_call_cut_by_sigkill_is_made_again_with_its_key_and_the_email_follows() {
    a_call_cut_by_sigkill_is_made_again_with_its_key_and_the_email_follows_with("");
}

#[test]
fn a_call_cut_by_sigkill_is_made_again_with_its_key_and_the_email_follows_on_postgres() {
    on_postgres(a_call_cut_by_sigkill_is_made_again_with_its_key_and_the_email_follows_with);
}

fn a_call_cut_by_sigkill_is_made_again_with_its_key_and_the_email_follows_with(db: &str) {
    let Some(w) = World::with_db(&[DANGER_RULE], db) else {
        return;
    };
    let (dir, mail, gw) = (&w.dir, &w.mail, &w.gw);
    // The first call hangs past the kill.
    gw.delay(Duration::from_secs(30));
    // Attempts time out after 2 s: an attempt started 5 s ago was abandoned.
    let extra = w.config.replace(
        "retry_backoff = \"100ms\"",
        "retry_backoff = \"100ms\"\ntimeout = \"2s\"",
    );
    let (mut collector, agent) = w.start(&extra);
    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);
    wait_for(
        Duration::from_secs(60),
        "the call to reach the gateway",
        || collector.proc.log_tail(),
        || (!gw.received().is_empty()).then_some(()),
    );
    collector.proc.kill9();
    gw.delay(Duration::ZERO);
    let collector = Collector::start_with(
        dir.path(),
        collector.port,
        "100ms",
        &format!("{extra}{}", w.db),
    );
    let (calls, mails) = wait_for(
        Duration::from_secs(60),
        "the call again and the e-mail",
        || {
            format!(
                "gateway: {:?}\n{}",
                gw.received(),
                collector.proc.log_tail()
            )
        },
        || {
            let c = gw.received();
            let m = mails_to(&mail.mails(), "oncall@example.org", "PROBABLE DANGER")
                .into_iter()
                .cloned()
                .collect::<Vec<_>>();
            (c.len() == 2 && !m.is_empty()).then_some((c, m))
        },
    );
    let key = |r: &Received| {
        r.headers
            .get("idempotency-key")
            .cloned()
            .unwrap_or_default()
    };
    assert!(!key(&calls[0]).is_empty());
    assert_eq!(
        key(&calls[0]),
        key(&calls[1]),
        "the repeat carries the key seen before"
    );
    // The e-mail was sent once, after the call that ended.
    assert_eq!(mails.len(), 1);
    assert!(calls[1].at <= mails[0].arrived);
    // Both ends are recorded: the call's (after the restart) and the e-mail's.
    let url = collector.url();
    let id = incidents(&url)[0]["id"].as_i64().expect("the incident");
    wait_notified(&url, id, 2, "the call and the e-mail recorded as sent");
    assert_eq!(gw.received().len(), 2, "no third call");
}

/// The gateway reports the call: a machine that "pressed" the key does not acknowledge; a
/// person who pressed it does, as the number called.
#[test]
fn a_key_pressed_by_a_person_acknowledges_and_a_machine_does_not() {
    key_presses("");
}

/// The same, with the incidents and the outbox in PostgreSQL.
#[test]
fn a_key_pressed_by_a_person_acknowledges_and_a_machine_does_not_on_postgres() {
    on_postgres(key_presses);
}

/// The key-press scenario, with `extra` appended to the configuration.
fn key_presses(extra: &str) {
    let Some(w) = World::new(&[DANGER_RULE]) else {
        return;
    };
    let gw = &w.gw;
    let (collector, agent) = w.start(&format!("{}{extra}", w.config));
    let url = collector.url();
    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);
    let call = wait_for(
        Duration::from_secs(60),
        "the call",
        || collector.proc.log_tail(),
        || gw.received().first().map(Received::json),
    );
    let id = call["incident"].as_i64().expect("incident id");
    // The URL the gateway is told to report to, reached from here (not external_url's host).
    let path = call["callback"]
        .as_str()
        .and_then(|c| c.strip_prefix("http://vigil.example"))
        .expect("a callback under external_url")
        .to_owned();
    let client = reqwest::blocking::Client::new();
    let report = |body: reqwest::blocking::RequestBuilder| -> (u16, Value) {
        let r = body.send().expect("answered");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    let status = || {
        reqwest::blocking::get(format!("{url}/api/v1/incidents/{id}"))
            .and_then(|r| r.json::<Value>())
            .expect("incident")
    };

    let (code, body) = report(
        client
            .post(format!("{url}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("AnsweredBy=machine_start&Digits=1"),
    );
    assert_eq!(
        (code, &body["acknowledged"]),
        (200, &json!(false)),
        "{body}"
    );
    assert_eq!(status()["status"], "open");

    let (code, body) = report(
        client
            .post(format!("{url}{path}"))
            .json(&json!({"answered_by": "human", "digits": "1"})),
    );
    assert_eq!((code, &body["acknowledged"]), (200, &json!(true)), "{body}");
    let inc = status();
    assert_eq!(inc["status"], "acknowledged");
    let ack = inc["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["action"] == "ack")
        .cloned()
        .expect("an ack step");
    assert_eq!(ack["actor"], "phone:+32470000001");
    let reports = inc["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["action"] == "call_report")
        .count();
    assert_eq!(reports, 2);

    // Once acknowledged, another key press is only a report.
    let (code, body) = report(client.post(format!("{url}{path}?Digits=1")));
    assert_eq!((code, &body["acknowledged"]), (200, &json!(false)));
    let (code, _) = report(client.post(format!("{url}/api/v1/notify/callback/not-a-token")));
    assert_eq!(code, 404);
}

/// CAP 1.2: an Alert when the incident opens, an Update when its danger changes, a Cancel
/// when it is retracted that references both; each validates against OASIS's schema, and the
/// feed is Atom holding all three.
#[test]
fn cap_messages_validate_and_the_cancel_references_what_it_cancels() {
    cap_messages_validate_and_the_cancel_references_what_it_cancels_with("");
}

#[test]
fn cap_messages_validate_and_the_cancel_references_what_it_cancels_on_postgres() {
    on_postgres(cap_messages_validate_and_the_cancel_references_what_it_cancels_with);
}

fn cap_messages_validate_and_the_cancel_references_what_it_cancels_with(db: &str) {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/cap/schema/CAP-v1.2.xsd");
    if !schema.exists() {
        skip("../shared/corpus/cap/schema/CAP-v1.2.xsd is not beside the workspace");
        return;
    }
    if !vigil_e2e::have("xmllint") {
        skip("xmllint (libxml2-utils) is missing");
        return;
    }
    let Some(w) = World::with_db(&[DANGER_RULE], db) else {
        return;
    };
    let dir = &w.dir;
    let authority = Sink::start();
    let extra = w
        .config
        .replace(
            "voice = [\"+32470000001\"]",
            &format!(
                "voice = [\"+32470000001\"]\ncap = [\"{}\"]",
                authority.url("/cap")
            ),
        )
        .replace(
            "[notify.smtp]",
            "[notify.cap]\nsender = \"vigil@noc.example.org\"\n[notify.smtp]",
        );
    let (collector, agent) = w.start(&extra);
    let url = collector.url();
    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);
    let first = wait_for(
        Duration::from_secs(60),
        "the CAP alert",
        || collector.proc.log_tail(),
        || authority.received().first().cloned(),
    );
    let id = incidents(&url)[0]["id"].as_i64().expect("id");
    // Danger disappears (still routed to the authority: told before), then a retraction.
    act(
        &url,
        id,
        "escalate",
        json!({"severity": "high", "danger": false}),
    );
    wait_for(
        Duration::from_secs(60),
        "the CAP update",
        || collector.proc.log_tail(),
        || (authority.received().len() == 2).then_some(()),
    );
    act(&url, id, "retract", json!({"reason": "false_positive"}));
    let all = wait_for(
        Duration::from_secs(60),
        "the CAP cancel",
        || collector.proc.log_tail(),
        || {
            let r = authority.received();
            (r.len() == 3).then_some(r)
        },
    );
    let field = |xml: &str, tag: &str| -> String {
        xml.split(&format!("<{tag}>"))
            .nth(1)
            .and_then(|r| r.split(&format!("</{tag}>")).next())
            .unwrap_or_default()
            .to_owned()
    };
    let types: Vec<String> = all.iter().map(|r| field(&r.body, "msgType")).collect();
    assert_eq!(types, ["Alert", "Update", "Cancel"]);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/cap+xml")
        );
        let file = dir.path().join(format!("cap-{i}.xml"));
        std::fs::write(&file, &r.body).expect("write");
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&schema)
            .arg(&file)
            .output()
            .expect("xmllint runs");
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            r.body
        );
        let sent = field(&r.body, "sent");
        assert!(sent.ends_with("+00:00"), "an explicit offset: {sent}");
    }
    let reference = |r: &Received| {
        format!(
            "{},{},{}",
            field(&r.body, "sender"),
            field(&r.body, "identifier"),
            field(&r.body, "sent")
        )
    };
    let refs = field(&all[2].body, "references");
    assert!(refs.contains(&reference(&all[0])), "{refs}");
    assert!(refs.contains(&reference(&all[1])), "{refs}");
    assert_eq!(field(&first.body, "sender"), "vigil@noc.example.org");

    // The feed: Atom, the three messages inside.
    let feed = reqwest::blocking::get(format!("{url}/api/v1/cap/feed"))
        .and_then(|r| r.text())
        .expect("feed");
    let file = dir.path().join("feed.xml");
    std::fs::write(&file, &feed).expect("write");
    let count = |xpath: &str| {
        let out = std::process::Command::new("xmllint")
            .args(["--xpath", xpath])
            .arg(&file)
            .output()
            .expect("xmllint runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let atom = "namespace-uri()='http://www.w3.org/2005/Atom'";
    assert_eq!(
        count(&format!("count(/*[local-name()='feed' and {atom}])")),
        "1",
        "{feed}"
    );
    assert_eq!(
        count(&format!("count(/*/*[local-name()='entry' and {atom}])")),
        "3",
        "{feed}"
    );
    assert_eq!(
        count(
            "count(//*[local-name()='alert' and namespace-uri()='urn:oasis:names:tc:emergency:cap:1.2'])"
        ),
        "3",
        "{feed}"
    );
}

/// A gateway that hangs: each attempt times out, is retried, and when the attempts are used
/// up the call fails over to an SMS to the same number; the voice channel's failure is an
/// incident of its own, announced without a call. An SMTP server that is gone: the e-mails
/// are retried and given up, and the e-mail channel's incident is announced by a call.
#[test]
fn failing_channels_fail_over_and_raise_incidents_announced_by_the_others() {
    failing_channels_fail_over_and_raise_incidents_announced_by_the_others_with("");
}

#[test]
fn failing_channels_fail_over_and_raise_incidents_announced_by_the_others_on_postgres() {
    on_postgres(failing_channels_fail_over_and_raise_incidents_announced_by_the_others_with);
}

fn failing_channels_fail_over_and_raise_incidents_announced_by_the_others_with(db: &str) {
    let Some(mut w) = World::with_db(&[DANGER_RULE, QUIET_RULE], db) else {
        return;
    };
    w.gw.delay(Duration::from_secs(5));
    let sms = Sink::start();
    let extra = w
        .config
        .replace(
            "retry_backoff = \"100ms\"",
            "retry_backoff = \"100ms\"\ntimeout = \"1s\"\nattempts = 2",
        )
        .replacen(
            "[[notify.receivers]]",
            &format!(
                "[notify.sms]\nurl = \"{}\"\nbody = '{{{{ to }}}}: {{{{ text }}}}'\n\n[[notify.receivers]]",
                sms.url("/sms")
            ),
            1,
        );
    let (collector, agent) = w.start(&extra);
    let (gw, url) = (&w.gw, collector.url());
    let logs = || collector.proc.log_tail();
    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);

    let failing = "Notification channel voice is failing";
    let (texts, mails) = wait_for(
        Duration::from_secs(60),
        "the SMS failover and the voice channel's incident by e-mail",
        || {
            format!(
                "sms: {:?}\nmails: {:?}\n{}",
                sms.received(),
                w.mail.mails(),
                logs()
            )
        },
        || {
            let s = sms.received();
            let m = w.mail.mails();
            let told = mails_to(&m, "oncall@example.org", failing).len();
            let confirmed = mails_to(&m, "oncall@example.org", "danger test line").len();
            (s.len() == 1 && told == 1 && confirmed == 1).then_some((s, m))
        },
    );
    assert!(
        texts[0].body.starts_with("+32470000001: "),
        "{}",
        texts[0].body
    );
    let calls = gw.received();
    assert_eq!(calls.len(), 2, "two attempts, then given up");
    let key = |r: &Received| r.headers.get("idempotency-key").cloned();
    assert_eq!(key(&calls[0]), key(&calls[1]));
    // The incident's own e-mail went once the call had ended (failed), and says so.
    let confirm = mails_to(&mails, "oncall@example.org", "danger test line");
    assert_eq!(confirm.len(), 1);
    assert!(
        confirm[0].body.contains("+32470000001: failed"),
        "{}",
        confirm[0].body
    );
    let channel_incident = incidents(&url)
        .into_iter()
        .find(|i| i["title"] == failing)
        .expect("the channel's incident");
    assert_eq!(channel_incident["danger"], true);
    // Its announcement did not use the failing channel.
    assert!(
        gw.received()
            .iter()
            .all(|r| r.json()["incident"] != channel_incident["id"]),
        "no call about the failing voice channel"
    );

    // The SMTP server goes away: the desk's e-mail is given up, and the e-mail channel's
    // incident is announced by a call.
    w.mail.proc.kill9();
    gw.delay(Duration::ZERO);
    send_tcp(agent.syslog_tcp, "QUIET-TEST", 0..1);
    let call = wait_for(
        Duration::from_secs(60),
        "a call about the e-mail channel",
        || format!("gateway: {:?}\n{}", gw.received(), logs()),
        || {
            gw.received().into_iter().find(|r| {
                r.json()["say"]
                    .as_str()
                    .is_some_and(|s| s.contains("channel email"))
            })
        },
    );
    let id = call.json()["incident"].as_i64().expect("id");
    let inc: Value = reqwest::blocking::get(format!("{url}/api/v1/incidents/{id}"))
        .and_then(|r| r.json())
        .expect("incident");
    assert_eq!(inc["title"], "Notification channel email is failing");
    assert!(
        inc["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .all(|e| e["detail"]["channel"] != "email"),
        "no e-mail about the failing e-mail channel: {inc}"
    );
}

/// `vigil silences add|list|expire` against a real collector.
#[test]
fn silences_are_made_listed_and_expired_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(dir.path(), 0);
    let url = collector.url();
    let (ok, out, err) = vigil_e2e::vigil_cli(
        "silences",
        &[
            "add",
            "customer=ulb",
            "rule=~port-scan.*",
            "--duration",
            "2h",
            "--comment",
            "pen test CHG-1",
            "--as",
            "alice",
        ],
        &url,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("active") && out.contains("customer=ulb rule=~port-scan.*"),
        "{out}"
    );
    assert!(
        out.contains("alice") && out.contains("pen test CHG-1"),
        "{out}"
    );
    let (ok, out, _) = vigil_e2e::vigil_cli("silences", &["list", "--json"], &url);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).expect("json");
    let id = listed["silences"][0]["id"].as_i64().expect("id");
    let (ok, out, err) = vigil_e2e::vigil_cli("silences", &["expire", &id.to_string()], &url);
    assert!(ok, "{err}");
    assert!(out.contains("expired"), "{out}");
    let (ok, _, err) = vigil_e2e::vigil_cli(
        "silences",
        &["add", "severity=~(", "--duration", "1h", "--comment", "x"],
        &url,
    );
    assert!(!ok);
    assert!(err.contains("matchers"), "{err}");
    let (ok, _, err) = vigil_e2e::vigil_cli("silences", &["expire", "999"], &url);
    assert!(!ok && err.contains("no silence 999"), "{err}");
}

/// `vigil oncall` and `vigil tasks` against a real collector: who holds each level, an
/// override, and the errors a desk operator can make.
#[test]
fn on_call_and_call_tasks_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = r#"
[[oncall.people]]
id = "ann"
name = "Ann Peeters"
phone = "+32470000011"
[[oncall.people]]
id = "bob"
name = "Bob Janssens"
[[oncall.rotas]]
name = "soc"
start = "2026-11-30"
levels = [["ann"], ["bob"]]
"#;
    let collector = Collector::start_with(dir.path(), 0, "100ms", extra);
    let url = collector.url();
    let (ok, out, err) = vigil_e2e::vigil_cli("oncall", &[], &url);
    assert!(ok, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("Ann Peeters").contains("+32470000011"), "{out}");
    assert!(line("Bob Janssens").starts_with("soc"), "{out}");
    let (ok, out, err) = vigil_e2e::vigil_cli(
        "oncall",
        &[
            "override",
            "--rota",
            "soc",
            "--person",
            "bob",
            "--duration",
            "12h",
            "--comment",
            "swap",
            "--as",
            "ann",
        ],
        &url,
    );
    assert!(ok, "{err}");
    assert!(out.contains("bob") && out.contains("swap"), "{out}");
    let (ok, out, _) = vigil_e2e::vigil_cli("oncall", &["now", "--json"], &url);
    assert!(ok);
    let now: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(now["rotas"][0]["levels"][0]["person"]["id"], "bob", "{now}");
    let (ok, _, err) = vigil_e2e::vigil_cli(
        "oncall",
        &[
            "override",
            "--rota",
            "soc",
            "--person",
            "zed",
            "--duration",
            "1h",
        ],
        &url,
    );
    assert!(!ok && err.contains("person"), "{err}");

    let (ok, out, err) = vigil_e2e::vigil_cli("tasks", &["list"], &url);
    assert!(ok, "{err}");
    assert!(out.starts_with("ID"), "{out}");
    let (ok, _, err) = vigil_e2e::vigil_cli(
        "tasks",
        &["record", "42", "--outcome", "reached", "--answered-by", "x"],
        &url,
    );
    assert!(!ok && err.contains("no call task 42"), "{err}");
}

/// People answer without a phone key: the e-mail's link opens a page (which acknowledges
/// nothing by being opened) whose form acknowledges or replies; an SMS "ACK <id>" from a
/// number that was told acknowledges, and any other text from it is a reply. A number never
/// told, or a wrong reply URL, changes nothing.
#[test]
fn the_email_link_and_an_sms_reply_acknowledge_and_replies_land_on_the_timeline() {
    answers("");
}

/// The same, with the incidents and the outbox in PostgreSQL.
#[test]
fn the_email_link_and_an_sms_reply_acknowledge_and_replies_land_on_the_timeline_on_postgres() {
    on_postgres(answers);
}

/// The answers scenario, with `extra` appended to the configuration.
fn answers(extra: &str) {
    let Some(w) = World::new(&[DANGER_RULE]) else {
        return;
    };
    let (mail, gw) = (&w.mail, &w.gw);
    const SECRET: &str = "sms-replies-secret-0123";
    let config = w
        .config
        .replace(
            "[[notify.receivers]]\nname = \"desk\"",
            &format!(
                "[notify.sms]\nurl = \"{}\"\ninbound_token = \"{SECRET}\"\nbody = '{{\"to\": {{{{ to|tojson }}}}, \"say\": {{{{ text|tojson }}}}, \"incident\": {{{{ incident.id }}}}}}'\n\n[[notify.receivers]]\nname = \"desk\"",
                gw.url("/sms")
            ),
        )
        .replace(
            "email = [\"oncall@example.org\"]\nvoice = [\"+32470000001\"]",
            "email = [\"oncall@example.org\"]\nvoice = [\"+32470000001\"]\nsms = [\"+32470000002\"]",
        );
    let (collector, agent) = w.start(&format!("{config}{extra}"));
    let url = collector.url();
    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);
    let logs = || collector.proc.log_tail();
    let (sms, email) = wait_for(
        Duration::from_secs(60),
        "the SMS and the e-mail",
        || format!("{:?}\n{:?}\n{}", gw.received(), mail.mails(), logs()),
        || {
            let sms = gw.received().into_iter().find(|r| r.path == "/sms")?;
            let m = mails_to(&mail.mails(), "oncall@example.org", "PROBABLE DANGER")
                .first()
                .cloned()
                .cloned()?;
            Some((sms, m))
        },
    );
    let id = sms.json()["incident"].as_i64().expect("incident");
    let said = sms.json()["say"].as_str().unwrap_or_default().to_owned();
    assert!(
        said.ends_with(&format!("Reply ACK {id} to acknowledge.")),
        "{said}"
    );
    // The link, with quoted-printable soft line breaks undone.
    let body = email.body.replace("=\r\n", "").replace("=\n", "");
    let link = body
        .split_whitespace()
        .find(|w| w.starts_with("http://vigil.example/api/v1/notify/respond/"))
        .expect("a link in the e-mail")
        .replace("http://vigil.example", &url);
    let client = reqwest::blocking::Client::new();
    let status = |id: i64| {
        let inc: Value = client
            .get(format!("{url}/api/v1/incidents/{id}"))
            .send()
            .and_then(|r| r.json())
            .expect("incident");
        inc
    };

    // Opening the link shows the incident and acknowledges nothing.
    let page = client.get(&link).send().expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().expect("html");
    assert!(
        html.contains("danger test line") && html.contains("<form"),
        "{html}"
    );
    assert_eq!(status(id)["status"], "open");
    // A reply through the form lands on the timeline, as the address told.
    let r = client
        .post(&link)
        .form(&[
            ("action", "reply"),
            ("text", "Is this the firewall change?"),
        ])
        .send()
        .expect("reply");
    assert_eq!(r.status(), 200);
    // An SMS from a number never told is ignored; a wrong secret is not an endpoint.
    let sms_reply = |secret: &str, from: &str, text: &str| {
        client
            .post(format!("{url}/api/v1/notify/sms/{secret}"))
            .form(&[("From", from), ("Body", text)])
            .send()
            .expect("answered")
    };
    let stranger = sms_reply(SECRET, "+32499999999", &format!("ACK {id}"));
    assert_eq!(
        stranger.json::<Value>().expect("json")["outcome"],
        "ignored"
    );
    assert_eq!(
        sms_reply("wrong-secret-0123456789", "+32470000002", "ACK 1").status(),
        404
    );
    assert_eq!(status(id)["status"], "open");
    // A question by SMS from the number told is a reply; "ACK <id>" acknowledges.
    let q = sms_reply(SECRET, "+32470000002", "on my way, 10 minutes");
    assert_eq!(q.json::<Value>().expect("json")["outcome"], "reply");
    let ack = sms_reply(SECRET, "+32470000002", &format!("ack {id}"));
    assert_eq!(
        ack.json::<Value>().expect("json")["outcome"],
        "acknowledged"
    );
    let inc = status(id);
    assert_eq!(inc["status"], "acknowledged");
    // The link's acknowledgement comes second: already done, said so.
    let again = client
        .post(&link)
        .form(&[("action", "ack")])
        .send()
        .expect("ack");
    assert!(again.text().expect("html").contains("already"));
    let steps: Vec<(String, String)> = status(id)["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["action"] == "reply" || e["action"] == "ack")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("email:oncall@example.org".into(), "reply".into()),
            ("sms:+32470000002".into(), "reply".into()),
            ("sms:+32470000002".into(), "ack".into()),
        ]
    );
}

/// A maintenance window planned from the command line: the customer's contact gets the
/// planned, started and (once it is ended early) ended notices by real SMTP.
#[test]
fn maintenance_notices_reach_the_customer_by_email() {
    maintenance_notices_reach_the_customer_by_email_with("");
}

#[test]
fn maintenance_notices_reach_the_customer_by_email_on_postgres() {
    on_postgres(maintenance_notices_reach_the_customer_by_email_with);
}

fn maintenance_notices_reach_the_customer_by_email_with(db: &str) {
    let Some(w) = World::with_db(&[QUIET_RULE], db) else {
        return;
    };
    let config = format!(
        "{}\n[[customers]]\nid = \"ulb\"\n[[customers.contacts]]\nrole = \"noc\"\nname = \"NOC ULB\"\nemail = \"noc@ulb.example\"\n",
        w.config
    );
    let (collector, _agent) = w.start(&config);
    let url = collector.url();
    let now = chrono::Utc::now().to_rfc3339();
    let (ok, out, err) = vigil_e2e::vigil_cli(
        "maintenance",
        &[
            "add",
            "--title",
            "core router upgrade",
            "--ticket",
            "CHG-9",
            "--customer",
            "ulb",
            "--starts-at",
            &now,
            "--duration",
            "1h",
            "--as",
            "alice",
        ],
        &url,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("core router upgrade") && out.contains("CHG-9"),
        "{out}"
    );
    let (ok, out, _) = vigil_e2e::vigil_cli("maintenance", &["list", "--json"], &url);
    assert!(ok);
    let id = serde_json::from_str::<Value>(&out).expect("json")["maintenance"][0]["id"]
        .as_i64()
        .expect("id");
    let subjects = |n: usize| {
        let mail = &w.mail;
        wait_for(
            Duration::from_secs(30),
            "the maintenance notices",
            || format!("{:?}\n{}", mail.mails(), collector.proc.log_tail()),
            || {
                let got: Vec<String> = mails_to(&mail.mails(), "noc@ulb.example", "Maintenance")
                    .iter()
                    .map(|m| m.header("subject").to_owned())
                    .collect();
                (got.len() >= n).then_some(got)
            },
        )
    };
    let got = subjects(2);
    assert!(
        got.iter()
            .any(|s| s.contains("Maintenance planned: core router upgrade (CHG-9)")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|s| s.contains("Maintenance started")),
        "{got:?}"
    );
    let (ok, _, err) = vigil_e2e::vigil_cli("maintenance", &["end", &id.to_string()], &url);
    assert!(ok, "{err}");
    let got = subjects(3);
    assert!(
        got.iter().any(|s| s.contains("Maintenance ended")),
        "{got:?}"
    );
    let (ok, _, err) = vigil_e2e::vigil_cli(
        "maintenance",
        &[
            "add",
            "--title",
            "x",
            "--customer",
            "nobody",
            "--starts-at",
            &now,
            "--duration",
            "1h",
        ],
        &url,
    );
    assert!(!ok && err.contains("no customer \"nobody\""), "{err}");
}

/// Alerts pushed to a real Alertmanager: the incident's alert is active there with its
/// labels, and ends when the incident is resolved.
#[test]
fn alerts_are_pushed_to_a_real_alertmanager_and_end_with_the_incident() {
    alerts_are_pushed_to_a_real_alertmanager_and_end_with_the_incident_with("");
}

#[test]
fn alerts_are_pushed_to_a_real_alertmanager_and_end_with_the_incident_on_postgres() {
    on_postgres(alerts_are_pushed_to_a_real_alertmanager_and_end_with_the_incident_with);
}

fn alerts_are_pushed_to_a_real_alertmanager_and_end_with_the_incident_with(db: &str) {
    if let Some(why) = vigil_e2e::alertmanager::unavailable() {
        skip(&why);
        return;
    }
    let Some(w) = World::with_db(&[DANGER_RULE], db) else {
        return;
    };
    let am = vigil_e2e::alertmanager::Alertmanager::start(w.dir.path());
    let config = w
        .config
        .replace(
            "email = [\"oncall@example.org\"]\nvoice = [\"+32470000001\"]",
            &format!(
                "email = [\"oncall@example.org\"]\nvoice = [\"+32470000001\"]\nalertmanager = [\"{}\"]",
                am.url
            ),
        )
        .replace(
            "retry_backoff = \"100ms\"",
            "retry_backoff = \"100ms\"\nalertmanager_refresh = \"1s\"",
        );
    let (collector, agent) = w.start(&config);
    let url = collector.url();
    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);
    let logs = || format!("{}\n{}", collector.proc.log_tail(), am.proc.log_tail());
    let alert = wait_for(
        Duration::from_secs(60),
        "the alert in Alertmanager",
        logs,
        || {
            am.alerts()
                .into_iter()
                .find(|a| a["labels"]["alertname"] == "danger test line")
        },
    );
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    assert_eq!(alert["labels"]["danger"], "true");
    assert_eq!(alert["labels"]["severity"], "high");
    let id: i64 = alert["labels"]["incident"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("the incident label");
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/api/v1/incidents/{id}"))),
        "{alert}"
    );
    // Pushed again while active: its end moves later (it stays five refreshes).
    let ends = |a: &Value| a["endsAt"].as_str().unwrap_or_default().to_owned();
    let first_end = ends(&alert);
    wait_for(
        Duration::from_secs(30),
        "the alert pushed again",
        logs,
        || {
            am.alerts()
                .iter()
                .find(|a| a["labels"]["incident"] == id.to_string().as_str())
                .filter(|a| ends(a) > first_end)
                .map(|_| ())
        },
    );
    act(&url, id, "resolve", json!({"resolution": "fixed"}));
    wait_for(
        Duration::from_secs(60),
        "the alert to end in Alertmanager",
        || format!("{:?}\n{}", am.alerts(), logs()),
        || {
            am.alerts()
                .iter()
                .all(|a| a["labels"]["incident"] != id.to_string().as_str())
                .then_some(())
        },
    );
}

/// The first SMTP relay refuses connections: the e-mail goes through the fallback relay in
/// the same attempt, and the timeline says which relay took it.
#[test]
fn an_email_the_first_relay_refuses_goes_through_the_fallback_relay() {
    an_email_the_first_relay_refuses_goes_through_the_fallback_relay_with("");
}

#[test]
fn an_email_the_first_relay_refuses_goes_through_the_fallback_relay_on_postgres() {
    on_postgres(an_email_the_first_relay_refuses_goes_through_the_fallback_relay_with);
}

fn an_email_the_first_relay_refuses_goes_through_the_fallback_relay_with(db: &str) {
    let Some(w) = World::with_db(&[QUIET_RULE], db) else {
        return;
    };
    let dead = vigil_e2e::free_port();
    let relay = format!(
        "port = {}\nsecurity = \"none\"\nfrom = \"Vigil <vigil@example.org>\"",
        w.mail.port
    );
    assert!(w.config.contains(&relay));
    let config = w.config.replace(
        &relay,
        &format!(
            "port = {dead}\nsecurity = \"none\"\nfrom = \"Vigil <vigil@example.org>\"\n[notify.smtp.fallback]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"",
            w.mail.port
        ),
    );
    let (collector, agent) = w.start(&config);
    let url = collector.url();
    send_tcp(agent.syslog_tcp, "QUIET-TEST", 0..1);
    wait_for(
        Duration::from_secs(60),
        "the desk's e-mail through the fallback",
        || format!("{:?}\n{}", w.mail.mails(), collector.proc.log_tail()),
        || {
            (!mails_to(&w.mail.mails(), "desk@example.org", "quiet test line").is_empty())
                .then_some(())
        },
    );
    let id = incidents(&url)[0]["id"].as_i64().expect("id");
    wait_notified(&url, id, 2, "the e-mail and the webhook recorded as sent");
    let inc: Value = reqwest::blocking::get(format!("{url}/api/v1/incidents/{id}"))
        .and_then(|r| r.json())
        .expect("incident");
    let sent = inc["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["action"] == "notified" && e["detail"]["channel"] == "email")
        .expect("notified")
        .clone();
    let answer = sent["detail"]["answer"]["smtp"]
        .as_str()
        .unwrap_or_default();
    assert!(
        answer.starts_with(&format!("127.0.0.1:{}:", w.mail.port)),
        "{sent}"
    );
}

const QUIET_RULE_2: &str = "title: second quiet test line
id: 7a1d2c3e-0000-4000-8000-0000000000e2
logsource: { product: linux, service: syslog }
detection:
  selection:
    message|contains: QUIET2-TEST
  condition: selection
level: low
";

/// Texts of one's own for calls and e-mails.
const TEMPLATES: &str = r#"
[[notify.templates]]
channel = "voice"
body = "{{ text }} Said by our template for {{ incident.customer }}."
[[notify.templates]]
channel = "email"
subject = "[NOC {{ incident.customer }}] {{ incident.title }} ({{ kind }})"
body = "{{ text }}\n--\nYour NOC, template {{ language }}"
"#;

/// A route grouping by customer: the customer's two new incidents without danger go to
/// the desk as one e-mail listing both and one webhook payload with an alert each (their
/// `groupLabels`); an incident with danger is called at once, alone. Calls and e-mails say
/// what the configuration's templates say, and the e-mail keeps its acknowledgement link.
#[test]
fn a_customer_s_incidents_go_as_one_group_and_templates_say_the_texts() {
    a_customer_s_incidents_go_as_one_group_and_templates_say_the_texts_with("");
}

#[test]
fn a_customer_s_incidents_go_as_one_group_and_templates_say_the_texts_on_postgres() {
    on_postgres(a_customer_s_incidents_go_as_one_group_and_templates_say_the_texts_with);
}

fn a_customer_s_incidents_go_as_one_group_and_templates_say_the_texts_with(db: &str) {
    let Some(w) = World::with_db(&[DANGER_RULE, QUIET_RULE, QUIET_RULE_2], db) else {
        return;
    };
    let (mail, gw, hook) = (&w.mail, &w.gw, &w.hook);
    let root = "[notify.route]\nreceiver = \"desk\"\n";
    assert!(w.config.contains(root));
    let config = w.config.replace(
        root,
        &format!("{root}group_by = [\"customer\"]\ngroup_wait = \"2s\"\n"),
    ) + TEMPLATES;
    let (collector, agent) = w.start(&config);
    let url = collector.url();
    let seen = || {
        format!(
            "gateway: {:?}\nhooks: {:?}\nmails: {:?}\n{}",
            gw.received(),
            hook.received(),
            mail.mails(),
            collector.proc.log_tail()
        )
    };
    send_tcp(agent.syslog_tcp, "QUIET-TEST", 0..1);
    send_tcp(agent.syslog_tcp, "QUIET2-TEST", 0..1);
    let (a, b) = wait_for(Duration::from_secs(60), "two incidents", seen, || {
        let list = incidents(&url);
        let id = |title: &str| {
            list.iter()
                .find(|i| i["title"] == title)
                .and_then(|i| i["id"].as_i64())
        };
        Some((id("quiet test line")?, id("second quiet test line")?))
    });
    let group_mail = wait_for(Duration::from_secs(60), "the group's e-mail", seen, || {
        mails_to(&mail.mails(), "desk@example.org", "2 new incidents")
            .first()
            .cloned()
            .cloned()
    });
    assert_eq!(
        group_mail.header("subject"),
        "[Vigil] 2 new incidents: customer=test-customer"
    );
    for id in [a, b] {
        assert!(
            group_mail
                .body
                .contains(&format!("http://vigil.example/api/v1/incidents/{id}")),
            "{}",
            group_mail.body
        );
    }
    let payload = wait_for(Duration::from_secs(30), "the group's webhook", seen, || {
        hook.received().first().map(Received::json)
    });
    alertmanager_payload_shape(&payload);
    assert_eq!(payload["groupLabels"], json!({"customer": "test-customer"}));
    assert_eq!(payload["commonLabels"]["customer"], "test-customer");
    let mut alerted: Vec<String> = payload["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|x| {
            x["labels"]["incident"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    alerted.sort();
    let mut want = vec![a.to_string(), b.to_string()];
    want.sort();
    assert_eq!(alerted, want);

    // Danger: called at once with the template's words, then the templated e-mail.
    send_tcp(agent.syslog_tcp, "DANGER-TEST", 0..1);
    let (call, confirm) = wait_for(
        Duration::from_secs(60),
        "the call and the on-call e-mail",
        seen,
        || {
            let mails = mail.mails();
            let m = mails_to(&mails, "oncall@example.org", "danger test line");
            let c = gw.received();
            (c.len() == 1 && m.len() == 1).then(|| (c[0].json(), m[0].clone()))
        },
    );
    let said = call["say"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("Vigil. Probable danger.")
            && said.ends_with("Said by our template for test-customer."),
        "{said}"
    );
    assert_eq!(
        confirm.header("subject"),
        "[NOC test-customer] danger test line (opened)"
    );
    assert!(
        confirm
            .body
            .contains("--\nYour NOC, template en\nAcknowledge it, or reply, here:"),
        "{}",
        confirm.body
    );
    // The group e-mail was the desk's only one: nothing went for each incident alone.
    assert_eq!(
        mails_to(&mail.mails(), "desk@example.org", "").len(),
        1,
        "{:?}",
        mail.mails()
    );
}
