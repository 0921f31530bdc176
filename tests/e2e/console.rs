//! The web console in a real headless Chromium (through chromedriver), against a real
//! collector and agent: the desk live, an incident worked, a phoned-in incident taking a
//! detected one, the hunt, the rules, and text from outside shown as text. Every page
//! visited is a screenshot in the folder [`vigil_e2e::browser::screenshots_dir`] names.

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use vigil_e2e::browser::{self, Browser};
use vigil_e2e::{Agent, Collector, collector_config, wait_for};

use crate::detect::send;

const TOKEN: &str = "console-e2e-token";
/// Markup and script that must be shown as text: run, it would set `window.injected`.
const HOSTILE: &str =
    r#"<img src=x onerror="window.injected=1"><script>window.injected=1</script>"#;

struct Desk {
    _dir: TempDir,
    c: Collector,
    a: Agent,
    b: Browser,
    url: String,
}

fn rules(dir: &std::path::Path) -> String {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    let text = format!(
        "title: '{HOSTILE} console probe'\nid: 22222222-0000-4000-8000-000000000001\n\
         logsource: {{ product: linux, service: syslog }}\n\
         detection:\n  selection:\n    message|contains: console-probe\n  condition: selection\n\
         level: high\ntags: [vigil.danger]\n---\n\
         title: hunt probe line\nid: 22222222-0000-4000-8000-000000000002\n\
         logsource: {{ product: linux, service: syslog }}\n\
         detection:\n  selection:\n    message|contains: hunt-probe\n  condition: selection\n\
         level: low\n"
    );
    std::fs::write(rules.join("console.yml"), text).expect("rule");
    format!(
        "[detect]\nbuiltin_rules = false\nrules = [\"{}\"]\n\
         [[customers]]\nid = \"ulb\"\nname = \"ULB\"\n",
        rules.display()
    )
}

/// A collector with an API token and the console's rules, an agent, and a browser of
/// `width`×`height`; none (a skip) where the browser cannot run.
fn setup(test: &str, width: u32, height: u32) -> Option<Desk> {
    setup_with(test, width, height, "")
}

/// [`setup`] with `extra` in the collector's configuration.
fn setup_with(test: &str, width: u32, height: u32, extra: &str) -> Option<Desk> {
    if let Some(why) = browser::unavailable() {
        vigil_e2e::skip(&why);
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = collector_config(dir.path(), 0, "200ms")
        .replace("[http]\n", &format!("[http]\napi_token = \"{TOKEN}\"\n"))
        + &rules(dir.path())
        + extra;
    let c = Collector::start_text(dir.path(), &config);
    let a = Agent::start(dir.path(), c.port, "", "");
    let b = Browser::start(dir.path(), test, width, height);
    let url = c.url();
    Some(Desk {
        _dir: dir,
        c,
        a,
        b,
        url,
    })
}

/// `GET path` of the API with the token.
fn api(d: &Desk, path: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(format!("{}{path}", d.url))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn queue(d: &Desk) -> Vec<Value> {
    api(d, "/api/v1/incidents")["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Logs in as `name` from wherever the browser is sent to log in, and waits for `landing`.
fn login(d: &Desk, name: &str, landing: &str) {
    let b = &d.b;
    b.visit(&format!("{}{landing}", d.url), "login");
    assert!(
        b.current_url().contains("/login?next="),
        "sent to log in: {}",
        b.current_url()
    );
    b.type_into(&b.find("#name"), name);
    b.type_into(&b.find("#token"), TOKEN);
    b.click(&b.find("#login"));
    let want = format!("{}{landing}", d.url);
    b.wait("the page after logging in", Duration::from_secs(10), || {
        (b.current_url() == want).then_some(())
    });
}

fn text_of(b: &Browser, css: &str) -> String {
    b.text(&b.find(css))
}

/// Waits up to 30 s for the page's text to hold `what`, reloading when `reload`.
fn wait_text(b: &Browser, what: &str) {
    b.wait(
        &format!("{what:?} on the page"),
        Duration::from_secs(30),
        || b.text_now("body")?.contains(what).then_some(()),
    );
}

fn not_injected(b: &Browser) {
    assert_eq!(
        b.run("return window.injected === undefined", json!([])),
        json!(true),
        "markup from outside ran in the page"
    );
}

#[test]
fn the_desk_shows_a_new_incident_live_and_works_it_and_outside_text_stays_text() {
    let Some(d) = setup("desk", 1280, 720) else {
        return;
    };
    let b = &d.b;
    // Without a login, the login page; a wrong token is refused there.
    b.visit(&format!("{}/desk", d.url), "login-page");
    assert!(b.current_url().contains("/login?next=%2Fdesk"));
    b.type_into(&b.find("#name"), "alice");
    b.type_into(&b.find("#token"), "not-the-token");
    b.click(&b.find("#login"));
    wait_text(b, "That is not this collector's API token.");
    b.screenshot("login-refused");
    login(&d, "alice", "/desk");
    wait_text(b, "No incident matches.");
    b.find("#live.on");
    b.screenshot("desk-empty");

    // A detection arrives: its row appears without a reload, and a danger one sounds.
    b.run("window.stillHere = 1; return 1", json!([]));
    send(
        d.a.syslog_tcp,
        &["<13>1 - web1 app - - - console-probe one".to_owned()],
    );
    let row = b.wait("the new incident's row", Duration::from_secs(30), || {
        b.all("#queue tr[data-id]").into_iter().next()
    });
    assert_eq!(
        b.run("return window.stillHere", json!([])),
        json!(1),
        "no reload"
    );
    assert!(
        b.run("return window.vigilBeeps || 0", json!([])).as_u64() >= Some(1),
        "a new danger incident sounds"
    );
    let id = b.attr(&row, "data-id").expect("the row's incident");
    assert!(b.text(&row).contains(HOSTILE), "{}", b.text(&row));
    assert!(b.text(&row).contains("DANGER"), "{}", b.text(&row));
    not_injected(b);
    b.screenshot("desk-new-incident");
    // Loaded again, the page counts it.
    b.go(&format!("{}/desk", d.url));
    assert_eq!(text_of(b, "#matching"), "1");

    // The keyboard: j to the row, o to open it.
    b.keys("jo");
    b.wait("the incident page", Duration::from_secs(10), || {
        b.current_url()
            .ends_with(&format!("/incidents/{id}"))
            .then_some(())
    });
    assert!(text_of(b, "#title").contains(HOSTILE));
    not_injected(b);
    b.screenshot("incident-open");

    // Acknowledge, comment (markup shown as text), retract with a reason.
    b.click(&b.find("#ack"));
    b.wait("acknowledged", Duration::from_secs(10), || {
        (b.text_now("#status")? == "acknowledged").then_some(())
    });
    let comment = format!("Looked at it {HOSTILE}");
    b.type_into(&b.find("#comment"), &comment);
    b.click(&b.find("#comment-send"));
    wait_text(b, &comment);
    not_injected(b);
    // No reason: the form does not go.
    b.click(&b.find("#retract"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(text_of(b, "#status"), "acknowledged");
    b.type_into(&b.find("#reason"), "false alarm: a test from the lab");
    b.click(&b.find("#retract"));
    b.wait("retracted", Duration::from_secs(10), || {
        (b.text_now("#status")? == "retracted").then_some(())
    });
    let timeline = text_of(b, "#timeline");
    for step in [
        "opened",
        "ack by alice",
        "comment by alice",
        "retract by alice",
    ] {
        assert!(timeline.contains(step), "{step} in {timeline}");
    }
    assert!(timeline.contains("false alarm: a test from the lab"));
    b.screenshot("incident-retracted");

    // The API tells the same story.
    let inc = api(&d, &format!("/api/v1/incidents/{id}"));
    assert_eq!(inc["status"], "retracted", "{inc}");
    let actions: Vec<(String, String)> = inc["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["actor"].as_str().unwrap_or("").to_owned(),
            )
        })
        .filter(|(_, actor)| actor == "alice")
        .collect();
    assert_eq!(
        actions,
        [
            ("ack".to_owned(), "alice".to_owned()),
            ("comment".to_owned(), "alice".to_owned()),
            ("retract".to_owned(), "alice".to_owned())
        ]
    );
    assert_eq!(inc["timeline"][2]["detail"]["comment"], comment.as_str());

    // Logged out, or with a session nobody opened: the login page.
    b.click(&b.find("form[action='/logout'] button"));
    b.wait("the login page", Duration::from_secs(10), || {
        b.current_url().contains("/login").then_some(())
    });
    b.visit(&format!("{}/incidents/{id}", d.url), "after-logout");
    assert!(b.current_url().contains("/login?next=%2Fincidents%2F"));
    b.set_cookie("vigil_session", "0123456789abcdef");
    b.visit(&format!("{}/desk", d.url), "forged-session");
    assert!(b.current_url().contains("/login"));
    drop(d.c);
}

#[test]
fn a_phoned_in_incident_takes_a_detected_one_and_the_shift_log_keeps_notes() {
    // A check the agent runs, for the uptime pages.
    let portal = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let check = format!(
        "[[checks]]\nname = \"Portal\"\ntype = \"tcp\"\ntarget = \"{}\"\n\
         interval = \"1s\"\ntimeout = \"500ms\"\n",
        portal.local_addr().expect("addr")
    );
    let Some(d) = setup_with("manual", 1280, 720, &check) else {
        return;
    };
    let b = &d.b;
    // Two lines of one host: one detected incident of two alerts.
    send(
        d.a.syslog_tcp,
        &[
            "<13>1 - db1 app - - - console-probe two".to_owned(),
            "<13>1 - db1 app - - - console-probe three".to_owned(),
        ],
    );
    let detected = wait_for(
        Duration::from_secs(30),
        "the detected incident with both alerts",
        || d.c.proc.log_tail(),
        || queue(&d).into_iter().find(|i| i["count"] == 2),
    );
    let detected_id = detected["id"].as_i64().expect("id");
    let detected_alerts = api(&d, &format!("/api/v1/incidents/{detected_id}"))["alerts"].clone();
    assert_eq!(detected_alerts.as_array().map(Vec::len), Some(2));
    login(&d, "bob", "/incidents/new");
    b.screenshot("new-form");
    b.type_into(&b.find("#title"), "ULB reports the VPN down");
    b.run(
        "document.querySelector('#customer').value = 'ulb';
         document.querySelector('#severity').value = 'high'; return 1",
        json!([]),
    );
    b.type_into(&b.find("#category"), "outage");
    b.type_into(&b.find("#ticket"), "ULB-4711");
    b.type_into(&b.find("#description"), "Called at 14:05 from the ULB NOC");
    b.click(&b.find("#create"));
    let manual_id: i64 = b.wait("the new incident's page", Duration::from_secs(10), || {
        let u = b.current_url();
        u.rsplit_once("/incidents/")?.1.parse().ok()
    });
    assert_ne!(manual_id, detected_id);
    assert_eq!(text_of(b, "#ticket"), "ULB-4711");
    assert_eq!(text_of(b, "#count"), "0");
    b.screenshot("manual-incident");

    // The detected incident is the same problem: merged into the one phoned in.
    b.type_into(&b.find("#merge-ids"), &detected_id.to_string());
    b.click(&b.find("#merge"));
    b.wait("the merge on the timeline", Duration::from_secs(10), || {
        b.text_now("#timeline")?
            .contains("merged by bob")
            .then_some(())
    });
    assert_eq!(text_of(b, "#count"), detected["count"].to_string());
    b.screenshot("merged");
    let manual = api(&d, &format!("/api/v1/incidents/{manual_id}"));
    let old = api(&d, &format!("/api/v1/incidents/{detected_id}"));
    assert_eq!(old["status"], "resolved", "{old}");
    assert_eq!(old["merged_into"], manual_id, "{old}");
    assert_eq!(manual["alerts"], detected_alerts, "{manual}");
    assert!(old["alerts"].is_null(), "moved, not copied: {old}");
    assert_eq!(manual["severity"], "high");
    assert_eq!(
        manual["danger"], true,
        "the detected one's danger joins: {manual}"
    );
    // One of the two alerts was another problem after all: split off into its own.
    let first_alert = detected_alerts[0]["id"]
        .as_str()
        .expect("alert id")
        .to_owned();
    b.click(&b.find(&format!("#alerts input[value='{first_alert}']")));
    b.type_into(&b.find("input[name=title]"), "DB1 disk, not the VPN");
    b.click(&b.find("#split"));
    let split_id: i64 = b.wait(
        "the split-off incident's page",
        Duration::from_secs(10),
        || {
            let id: i64 = b.current_url().rsplit_once("/incidents/")?.1.parse().ok()?;
            (id != manual_id).then_some(id)
        },
    );
    assert_eq!(text_of(b, "#count"), "1");
    assert!(text_of(b, "#title").contains("DB1 disk, not the VPN"));
    b.screenshot("split-off");
    let split = api(&d, &format!("/api/v1/incidents/{split_id}"));
    assert_eq!(split["alerts"][0]["id"], first_alert.as_str(), "{split}");
    let kept = api(&d, &format!("/api/v1/incidents/{manual_id}"));
    assert_eq!(kept["count"], 1, "{kept}");
    assert_eq!(
        kept["alerts"],
        json!([detected_alerts[1].clone()]),
        "{kept}"
    );

    b.visit(&format!("{}/incidents/{detected_id}", d.url), "merged-away");
    assert!(
        b.page_text()
            .contains(&format!("Merged into\n#{manual_id}"))
    );

    // The shift log: a note for the next shift, markup kept as text.
    b.visit(&format!("{}/shift", d.url), "shift-log");
    let note = format!("Hand-over: ULB-4711 still open {HOSTILE}");
    b.type_into(&b.find("#note"), &note);
    b.click(&b.find("#note-send"));
    wait_text(b, &note);
    not_injected(b);
    b.screenshot("shift-log-note");
    let log = api(&d, "/api/v1/shiftlog");
    assert_eq!(log["notes"][0]["author"], "bob");
    assert_eq!(log["notes"][0]["text"], note.as_str());

    // The other pages render, and an unknown one is a page, not the API's JSON.
    for page in ["tasks", "uptime", "agents"] {
        b.visit(&format!("{}/{page}", d.url), page);
        assert!(b.title().ends_with("· Vigil"), "{page}: {}", b.title());
    }
    assert!(text_of(b, "#agents").contains(vigil_e2e::AGENT_ID));
    // The check, up, with its probes' latency from the index.
    wait_for(
        Duration::from_secs(30),
        "the check up with probes searchable",
        || d.c.proc.log_tail(),
        || {
            let c = api(&d, "/api/v1/checks/portal");
            (c["state"] == "up" && c["latency_24h"]["probes"].as_u64() >= Some(2)).then_some(())
        },
    );
    b.visit(&format!("{}/uptime", d.url), "uptime-up");
    b.click(&b.find("#checks a[href='/uptime/portal']"));
    b.wait("the check's page", Duration::from_secs(10), || {
        b.current_url().ends_with("/uptime/portal").then_some(())
    });
    assert_eq!(text_of(b, "#state"), "up");
    assert!(text_of(b, "#vantage").contains(vigil_e2e::AGENT_ID));
    assert!(text_of(b, "#latency").contains("p99"));
    b.screenshot("check");
    let (status, kind, body) = b.fetch("/no/such/page");
    assert_eq!(status, 404);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(body.contains("<h1>404 · Not Found</h1>"), "{body}");
    b.visit(&format!("{}/no/such/page", d.url), "not-found");
    assert_eq!(text_of(b, "#message"), "There is no page /no/such/page.");
    let (status, kind, _) = b.fetch("/api/v1/no-such-endpoint");
    assert_eq!((status, kind.as_str()), (404, "application/json"));
}

/// The sum of the histogram's bars on the page.
fn bars(b: &Browser) -> u64 {
    b.run(
        "return Array.from(document.querySelectorAll('#histogram rect'))
            .reduce((n, r) => n + Number(r.dataset.count), 0)",
        json!([]),
    )
    .as_u64()
    .unwrap_or(0)
}

#[test]
fn a_hunt_filters_by_a_top_value_the_histogram_follows_and_a_bad_query_says_where() {
    let Some(d) = setup("hunt", 1280, 720) else {
        return;
    };
    let b = &d.b;
    let lines: Vec<String> = [("h1", 3), ("h2", 2)]
        .iter()
        .flat_map(|(h, n)| (0..*n).map(move |i| format!("<13>1 - {h} app - - - hunt-probe {i}")))
        .collect();
    send(d.a.syslog_tcp, &lines);
    wait_for(
        Duration::from_secs(30),
        "the probes searchable",
        || d.c.proc.log_tail(),
        || {
            (api(
                &d,
                "/api/v1/search?q=event.kind:syslog%20AND%20message:%22hunt-probe%22&limit=1",
            )["total"]
                == 5)
                .then_some(())
        },
    );
    login(
        &d,
        "carol",
        "/hunt?q=event.kind%3Asyslog+AND+message%3A%22hunt-probe%22",
    );
    assert_eq!(text_of(b, "#total"), "5");
    assert_eq!(bars(b), 5);
    let top = text_of(b, "#top");
    assert!(top.contains("h1\t3") || top.contains("h1 3"), "{top}");
    b.screenshot("hunt");

    // A top value clicked becomes a filter: the total and the histogram follow.
    let h2 = b
        .all("#top a.filter")
        .into_iter()
        .find(|a| b.text(a) == "h2")
        .expect("h2 among the top values");
    b.click(&h2);
    b.wait("the filtered hunt", Duration::from_secs(10), || {
        (b.text_now("#total")? == "2").then_some(())
    });
    assert_eq!(bars(b), 2);
    let q = b
        .run("return document.querySelector('#q').value", json!([]))
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        q,
        "(event.kind:syslog AND message:\"hunt-probe\") AND host.name:\"h2\""
    );
    b.screenshot("hunt-filtered");

    // The search as a command and as an API address; the export has the same events.
    let cli = b.attr(&b.find("#copy-cli"), "data-copy").expect("command");
    assert_eq!(cli, format!("vigil search '{q}' --since 24h"));
    let api_url = b.attr(&b.find("#copy-api"), "data-copy").expect("api url");
    let via_api = api(&d, &api_url);
    assert_eq!(via_api["total"], 2, "{api_url}: {via_api}");
    let (status, _, csv) = b.fetch(&format!(
        "/hunt/export?format=csv&q={}",
        vigil_collector::console::encode(&q)
    ));
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3, "a header and two events: {csv}");
    let (_, kind, ndjson) = b.fetch(&format!(
        "/hunt/export?format=ndjson&q={}",
        vigil_collector::console::encode(&q)
    ));
    assert_eq!(kind, "application/x-ndjson");
    let hosts: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")["host.name"].clone())
        .collect();
    assert_eq!(hosts, [json!("h2"), json!("h2")]);

    // Pivot from the address that sent them: every event that names it.
    let pivot = b
        .all("#hits a.pivot")
        .into_iter()
        .filter_map(|a| b.attr(&a, "href"))
        .find(|h| h.contains("observer.ip"))
        .expect("a pivot on the sender's address");
    b.go(&format!("{}{pivot}", d.url));
    let q = b
        .run("return document.querySelector('#q').value", json!([]))
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        q.starts_with("observer.ip:\"127.0.0.1\" OR source.ip:"),
        "{q}"
    );
    let pivoted: u64 = text_of(b, "#total").parse().expect("a total");
    assert!(pivoted >= 5, "the 5 lines at least: {pivoted}");
    b.screenshot("hunt-pivot");

    // A query that does not parse: the error, and a caret under where it is.
    let bad = "event.kind:syslog AND (host.name:h1";
    let qbox = b.find("#q");
    b.clear(&qbox);
    b.type_into(&qbox, bad);
    b.click(&b.find("#search"));
    let error = b.wait("the query error", Duration::from_secs(10), || {
        b.all("#query-error").into_iter().next()
    });
    let said = b.text(&error);
    let caret = b
        .run(
            "return document.querySelector('#query-error pre.caret').textContent",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (shown, marks) = caret.split_once('\n').expect("query and caret lines");
    assert_eq!(shown, bad);
    assert_eq!(marks.trim_start().len(), 1, "{marks:?}");
    assert_eq!(
        marks.find('^'),
        Some(bad.len()),
        "the caret at the unclosed end: {said}"
    );
    b.screenshot("hunt-bad-query");

    // Nothing in the range, but events outside it: said, with a wider search offered.
    b.visit(
        &format!(
            "{}/hunt?q=event.kind%3Asyslog+AND+message%3A%22hunt-probe%22&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
            d.url
        ),
        "hunt-outside-range",
    );
    assert!(text_of(b, "#outside").contains("5 events match at other times"));
    b.click(&b.find("#widen"));
    b.wait("the wider hunt", Duration::from_secs(10), || {
        (b.text_now("#total")? == "5").then_some(())
    });

    // The rules page: hit counts, and a rule tested on pasted events.
    b.visit(&format!("{}/rules", d.url), "rules");
    let rules = text_of(b, "#rules");
    let line = rules
        .lines()
        .find(|l| l.contains("hunt probe line"))
        .expect("the rule listed");
    assert!(line.contains("\t5\t") || line.contains(" 5 "), "{line}");
    assert!(rules.contains(HOSTILE), "{rules}");
    not_injected(b);
    b.type_into(
        &b.find("#rule"),
        "title: tried here\nlogsource: { product: linux, service: syslog }\n\
         detection:\n  selection:\n    message|contains: boom\n  condition: selection\nlevel: low\n",
    );
    b.type_into(
        &b.find("#events"),
        "{\"event.kind\": \"syslog\", \"message\": \"a boom here\"}\n\
         {\"event.kind\": \"syslog\", \"message\": \"quiet\"}\n",
    );
    b.click(&b.find("#test"));
    b.wait("the test's result", Duration::from_secs(10), || {
        b.all("#test-result").into_iter().next()
    });
    assert_eq!(text_of(b, "#test-result"), "1 alerts");
    b.screenshot("rules-tested");
}

#[test]
fn the_desk_reads_on_a_phone_and_in_the_dark() {
    let Some(d) = setup("phone", 390, 844) else {
        return;
    };
    let b = &d.b;
    send(
        d.a.syslog_tcp,
        &["<13>1 - web9 app - - - console-probe phone".to_owned()],
    );
    wait_for(
        Duration::from_secs(30),
        "the incident",
        || d.c.proc.log_tail(),
        || queue(&d).first().cloned(),
    );
    login(&d, "dave", "/desk");
    b.find("#queue tr[data-id]");
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth + 1";
    assert_eq!(b.run(fits, json!([])), json!(true), "no sideways scrolling");
    b.screenshot("phone-desk");
    b.keys("t");
    assert_eq!(
        b.run("return document.documentElement.dataset.theme", json!([])),
        json!("dark")
    );
    b.screenshot("phone-desk-dark");
    b.keys("jo");
    b.wait("the incident page", Duration::from_secs(10), || {
        b.current_url().contains("/incidents/").then_some(())
    });
    assert_eq!(b.run(fits, json!([])), json!(true), "no sideways scrolling");
    b.screenshot("phone-incident-dark");
}
