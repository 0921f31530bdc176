//! Uptime checks from two real agents as vantage points, against a local HTTP server and a
//! local TCP listener the test breaks and mends, with a quorum of 2 of 2: both up is `up`;
//! one agent killed and the service broken, the survivor's word alone makes it `unknown`
//! (saying 1 of 2 reported), not `down`; the agent back, both see it down: one incident; the
//! service mended: resolved with the outage's length. The probe results are searchable events.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use vigil_e2e::sink::Sink;
use vigil_e2e::{
    AGENT_ID, AGENT_TOKEN, AGENT2_ID, AGENT2_TOKEN, Agent, Collector, total, vigil_cli, wait_for,
};

fn get(url: &str) -> Value {
    reqwest::blocking::get(url)
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

#[test]
fn two_vantage_points_decide_by_quorum_and_an_outage_is_one_incident() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = Sink::start();
    let relay = TcpListener::bind("127.0.0.1:0").expect("bind");
    let relay_addr = relay.local_addr().expect("addr");
    let extra = format!(
        r#"
[[checks]]
name = "Portal"
type = "http"
target = "{portal}"
interval = "1s"
timeout = "500ms"
quorum = 2
danger = true
[[checks]]
name = "Relay"
type = "tcp"
target = "{relay_addr}"
interval = "1s"
timeout = "500ms"
quorum = 2
"#,
        portal = web.url("/health"),
    );
    let c = Collector::start_with(dir.path(), 0, "200ms", &extra);
    let url = c.url();
    let start =
        |id: &str, token: &str| Agent::start_as(&dir.path().join(id), c.port, (id, token), "", "");
    let _a = start(AGENT_ID, AGENT_TOKEN);
    let mut b = start(AGENT2_ID, AGENT2_TOKEN);
    let check = |id: &str| get(&format!("{url}/api/v1/checks/{id}"));
    let logs = || {
        format!(
            "{}\n{}\n{}",
            check("portal"),
            check("relay"),
            c.proc.log_tail()
        )
    };
    let until = |what: &str, id: &str, f: &dyn Fn(&Value) -> bool| {
        wait_for(Duration::from_secs(40), what, logs, || {
            let s = check(id);
            f(&s).then_some(s)
        })
    };
    for id in ["portal", "relay"] {
        let up = until("both vantage points up", id, &|s| s["state"] == "up");
        assert_eq!(
            (&up["reported"], &up["expected"]),
            (&Value::from(2), &Value::from(2)),
            "{up}"
        );
    }
    // The command line shows the state and each vantage point.
    let out = std::process::Command::new(vigil_e2e::bin("vigil"))
        .args(["checks", "show", "portal", "--url", &url])
        .output()
        .expect("vigil checks show");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vantage: Vec<&str> = text.lines().filter(|l| l.starts_with("edge-")).collect();
    assert_eq!(vantage.len(), 2, "{text}");
    assert!(
        vantage
            .iter()
            .all(|l| l.contains(" up ") && l.contains(" yes ")),
        "{text}"
    );
    // Each result is an event.
    for agent in [AGENT_ID, AGENT2_ID] {
        let q = format!("event.kind:probe AND monitor.id:portal AND agent.id:{agent}");
        wait_for(
            Duration::from_secs(20),
            "probe events searchable",
            logs,
            || (total(&url, &q)? > 0).then_some(()),
        );
    }

    // b killed, the portal broken: a alone says down, which is not a quorum: unknown.
    b.proc.kill9();
    web.answer(503);
    let unknown = until("the portal unknown", "portal", &|s| s["state"] == "unknown");
    assert_eq!(unknown["reported"], 1, "{unknown}");
    let open = || {
        get(&format!("{url}/api/v1/incidents?status=open"))["incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        open().iter().all(|i| i["group_key"] != "check=portal"),
        "{:?}",
        open()
    );

    // b back: both say down: one incident, with danger.
    let _b = start(AGENT2_ID, AGENT2_TOKEN);
    until("the portal down", "portal", &|s| s["state"] == "down");
    let portal: Vec<Value> = open()
        .into_iter()
        .filter(|i| i["group_key"] == "check=portal")
        .collect();
    assert_eq!(portal.len(), 1, "{portal:?}");
    assert_eq!(portal[0]["title"], "Check Portal is down");
    assert_eq!(portal[0]["danger"], true);
    let id = portal[0]["id"].as_i64().expect("id");
    let opened = get(&format!("{url}/api/v1/incidents/{id}"));
    let said = opened["timeline"][0]["detail"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(said.starts_with("2 of 2 vantage points say down"), "{said}");
    assert!(said.contains("status 503"), "{said}");

    // The TCP listener stopped: the relay goes down too, an incident of its own.
    drop(relay);
    until("the relay down", "relay", &|s| s["state"] == "down");
    // Mended: both resolved, each with its outage's length.
    web.answer(200);
    let _relay = TcpListener::bind(relay_addr).expect("rebind");
    for (check_id, group) in [("portal", "check=portal"), ("relay", "check=relay")] {
        until("up again", check_id, &|s| s["state"] == "up");
        let inc = get(&format!("{url}/api/v1/incidents?status=resolved"));
        let done = inc["incidents"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["group_key"] == group).cloned())
            .expect("resolved");
        let full = get(&format!("{url}/api/v1/incidents/{}", done["id"]));
        let ended = full["timeline"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["action"] == "outage_ended").cloned())
            .expect("the outage's end");
        assert!(
            ended["detail"]["duration_seconds"].as_i64().is_some(),
            "{ended}"
        );
    }
}

/// The page at `url` as headless Chromium renders it (`--dump-dom` on stdout).
fn dump_dom(browser: &str, url: &str) -> std::process::Output {
    std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--dump-dom",
        ])
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The public status page in a real browser (headless Chromium): each public check with the
/// state the JSON gives, the private one absent.
#[test]
fn the_status_page_renders_in_headless_chromium_with_each_check_s_state() {
    let Some(browser) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| vigil_e2e::have(b))
    else {
        vigil_e2e::skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port nothing listens on");
    let check = |name: &str, target: String, public: bool| {
        format!(
            "[[checks]]\nname = \"{name}\"\ntype = \"tcp\"\ntarget = \"{target}\"\n\
             interval = \"1s\"\ntimeout = \"500ms\"\npublic = {public}\n\
             labels = {{ group = \"Alerting platform\" }}\n"
        )
    };
    let extra = check("Portal", open.local_addr().expect("addr").to_string(), true)
        + &check("Relay", closed.to_string(), true)
        + &check("SIEM", closed.to_string(), false)
        + "customer = \"ulb\"\n[[customers]]\nid = \"ulb\"\nname = \"ULB\"\nlanguage = \"fr\"\n";
    let c = Collector::start_with(dir.path(), 0, "200ms", &extra);
    let url = c.url();
    let _a = Agent::start_as(
        &dir.path().join("a"),
        c.port,
        (AGENT_ID, AGENT_TOKEN),
        "",
        "",
    );
    let status = || get(&format!("{url}/api/v1/status"));
    let states = wait_for(
        Duration::from_secs(40),
        "both public checks decided",
        || c.proc.log_tail(),
        || {
            let s = status();
            let list: Vec<(String, String)> = s["checks"]
                .as_array()?
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or("").to_owned(),
                        c["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            (list
                == [
                    ("portal".to_owned(), "up".to_owned()),
                    ("relay".to_owned(), "down".to_owned()),
                ])
            .then_some(list)
        },
    );
    let out = dump_dom(browser, &format!("{url}/status"));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("<h1>Status</h1>"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (id, state) in &states {
        assert!(
            dom.contains(&format!("data-check=\"{id}\" data-state=\"{state}\"")),
            "{id} {state}: {dom}"
        );
    }
    assert!(!dom.contains("SIEM") && !dom.contains("siem"), "{dom}");
    assert_eq!(
        dom.matches("<i style=").count(),
        2 * 90,
        "two bars of 90 days"
    );

    // An operator's notice, and ULB's own page from the link `vigil notices token` prints:
    // in French, with ULB's SIEM check beside the public ones, and the notice.
    let (ok, _, err) = vigil_cli(
        "notices",
        &["add", "Travaux ce soir", "--body", "22:00 à 23:00"],
        &url,
    );
    assert!(ok, "{err}");
    let (ok, link, err) = vigil_cli("notices", &["token", "ulb"], &url);
    assert!(ok, "{err}");
    let path = link
        .trim()
        .split_once("/status/c/")
        .map(|(_, t)| format!("/status/c/{t}"))
        .expect("a page link");
    let dom =
        String::from_utf8_lossy(&dump_dom(browser, &format!("{url}{path}")).stdout).into_owned();
    assert!(dom.contains("<html lang=\"fr\">"), "{dom}");
    assert!(dom.contains("<h1>État des services</h1>"), "{dom}");
    assert!(
        dom.contains("data-check=\"siem\" data-state=\"down\""),
        "{dom}"
    );
    assert!(
        dom.contains(">En panne<") && dom.contains("Travaux ce soir"),
        "{dom}"
    );
    // The public page shows the notice too, but never ULB's check.
    let (ok, list, _) = vigil_cli("notices", &["list"], &url);
    assert!(ok && list.contains("Travaux ce soir"), "{list}");
}

/// An agent cut off from the collector keeps probing with the checks it was last given (kept
/// beside its spool, so a restart while cut off probes too); the results wait in the spool
/// and are searchable once the collector is back.
#[test]
fn an_agent_cut_off_keeps_probing_and_its_results_arrive_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let extra = format!(
        "[[checks]]\nname = \"Relay\"\ntype = \"tcp\"\ntarget = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        open.local_addr().expect("addr")
    );
    let mut c = Collector::start_with(dir.path(), 0, "200ms", &extra);
    let port = c.port;
    let agent_dir = dir.path().join("a");
    let mut a = Agent::start_as(&agent_dir, port, (AGENT_ID, AGENT_TOKEN), "", "");
    let probes =
        |a: &Agent| vigil_e2e::metric(&format!("http://{}", a.http), "vigil_agent_probes_total");
    wait_for(
        Duration::from_secs(30),
        "the first probes",
        || a.proc.log_tail(),
        || (probes(&a) >= 1.0).then_some(()),
    );
    assert!(
        agent_dir.join("spool/checks.json").exists(),
        "the checks kept on disk"
    );

    // The collector gone, and the agent restarted while it is: it still probes.
    c.proc.kill9();
    a.proc.kill9();
    let killed_at = chrono::Utc::now();
    let a = Agent::start_as(&agent_dir, port, (AGENT_ID, AGENT_TOKEN), "", "");
    wait_for(
        Duration::from_secs(30),
        "probes while cut off",
        || a.proc.log_tail(),
        || (probes(&a) >= 3.0).then_some(()),
    );
    let spooled = vigil_e2e::metric(&format!("http://{}", a.http), "vigil_agent_spool_batches");
    assert!(spooled >= 1.0, "results wait in the spool: {spooled}");
    let cut_off_at = chrono::Utc::now();

    let c = Collector::start_with(dir.path(), port, "200ms", &extra);
    let url = c.url();
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let q = format!(
        "event.kind:probe AND monitor.id:relay AND @timestamp:[{} TO {}]",
        stamp(killed_at),
        stamp(cut_off_at)
    );
    wait_for(
        Duration::from_secs(40),
        "the results taken while cut off",
        || c.proc.log_tail(),
        || (total(&url, &q)? >= 3).then_some(()),
    );
}

/// The CAP corpus served by a real HTTP server (Python's): a watched feed (the National
/// Weather Service's Atom index) and a watched alert become searchable events, each alert
/// once however often the feeds are read; a document that is not CAP (the schema itself)
/// is counted, named in the feed's status and in the agents' probe results, and nothing
/// crashes.
#[test]
fn watched_cap_feeds_from_the_corpus_become_events_and_a_bad_one_is_named() {
    let corpus =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/cap");
    if !corpus.is_dir() {
        vigil_e2e::skip("../shared/corpus is not beside the workspace");
        return;
    }
    if !vigil_e2e::have("python3") {
        vigil_e2e::skip("python3 is not installed");
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&corpus)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(server);
    let base = format!("http://127.0.0.1:{port}");
    let feed = std::fs::read_to_string(corpus.join("examples/ibm-cap/nws_atom_feed_example.xml"))
        .expect("feed");
    let entries = feed.matches("<entry>").count() as u64;
    let watch = |name: &str, path: &str| {
        format!(
            "[[checks]]\nname = \"{name}\"\ntype = \"cap\"\ntarget = \"{base}/{path}\"\n\
             interval = \"2s\"\ntimeout = \"2s\"\nwatch = true\n"
        )
    };
    let extra = watch("NWS feed", "examples/ibm-cap/nws_atom_feed_example.xml")
        + &watch(
            "Appendix alert",
            "examples/oasis-spec-appendix-a/v1dot2_appendix_adot1.xml",
        )
        + &watch("Not CAP", "schema/CAP-v1.2.xsd");
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start_with(dir.path(), 0, "200ms", &extra);
    let url = c.url();
    let _a = Agent::start_as(
        &dir.path().join("a"),
        c.port,
        (AGENT_ID, AGENT_TOKEN),
        "",
        "",
    );
    wait_for(
        Duration::from_secs(60),
        "every alert of the feed and the alert searchable",
        || c.proc.log_tail(),
        || (total(&url, "event.kind:cap")? == entries + 1).then_some(()),
    );
    let appendix = total(&url, "event.kind:cap AND cap.identifier:43b080713727");
    assert_eq!(appendix, Some(1));
    // The bad one: named in its feed's status, and by the agent's probes.
    let status = wait_for(
        Duration::from_secs(30),
        "the bad feed's status",
        || c.proc.log_tail(),
        || {
            let w = get(&format!("{url}/api/v1/cap/watched"));
            let bad = w["feeds"]
                .as_array()?
                .iter()
                .find(|f| f["check"] == "not-cap")?
                .clone();
            bad["error"].is_string().then_some(bad)
        },
    );
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("neither a CAP <alert> nor an Atom <feed>")),
        "{status}"
    );
    wait_for(
        Duration::from_secs(30),
        "the agent's probe names the problem",
        || c.proc.log_tail(),
        || {
            (total(
                &url,
                "event.kind:probe AND monitor.id:not-cap AND monitor.status:down",
            )? > 0)
                .then_some(())
        },
    );
    // Read again and again: still each alert once.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(total(&url, "event.kind:cap"), Some(entries + 1));
    assert!(vigil_e2e::metric(&url, "vigil_cap_feed_reads_total") >= 3.0);
}
