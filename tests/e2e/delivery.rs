//! Nothing acknowledged is lost and nothing is indexed twice: the collector killed under
//! load, the collector down for a while, the agent killed with a full spool, a spool at its
//! bound.

use std::time::Duration;

use vigil_e2e::{Agent, Collector, all_messages, assert_exactly_once, send_tcp, total, wait_for};

fn both_logs(c: &Collector, a: &Agent) -> String {
    format!("{}\n{}", c.proc.log_tail(), a.proc.log_tail())
}

#[test]
fn collector_killed_with_sigkill_under_load_loses_nothing_and_duplicates_nothing() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start(dir.path(), 0);
    let port = c.port;
    let a = Agent::start(dir.path(), port, "", "");
    let url = c.url();

    let addr = a.syslog_tcp;
    let sender = std::thread::spawn(move || {
        // Ten connections of 10,000 events each, one after another.
        for k in 0..10 {
            send_tcp(addr, "load", k * 10_000..(k + 1) * 10_000);
        }
    });
    // Kill only once batches are really flowing into the collector.
    wait_for(
        Duration::from_secs(60),
        "the first acknowledged batches",
        || both_logs(&c, &a),
        || (a.metric("vigil_agent_events_acked_total") >= 10_000.0).then_some(()),
    );
    c.proc.kill9();
    let killed_after = a.metric("vigil_agent_events_acked_total");
    assert!(
        killed_after < N as f64,
        "the kill came too late to test anything"
    );
    c = Collector::start(dir.path(), port);
    sender.join().expect("sender");

    wait_for(
        Duration::from_secs(180),
        "all events searchable",
        || both_logs(&c, &a),
        || (total(&url, "*")? >= N).then_some(()),
    );
    // Let in-flight retries land, then check: exactly N, each once.
    wait_for(
        Duration::from_secs(60),
        "the agent's spool to empty",
        || both_logs(&c, &a),
        || (a.metric("vigil_agent_spool_batches") == 0.0).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_exactly_once(&all_messages(&url), "load", N);
}

#[test]
fn collector_down_for_a_while_costs_no_data() {
    let outage = std::env::var("VIGIL_E2E_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30u64);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start(dir.path(), 0);
    let port = c.port;
    let a = Agent::start(dir.path(), port, "", "");
    let url = c.url();

    send_tcp(a.syslog_tcp, "down", 0..1000);
    wait_for(
        Duration::from_secs(30),
        "events before the outage",
        || both_logs(&c, &a),
        || (total(&url, "*")? == 1000).then_some(()),
    );
    assert!(
        c.proc.terminate(Duration::from_secs(30)),
        "collector did not stop cleanly\n{}",
        c.proc.log_tail()
    );

    // Events keep arriving at the agent while the collector is away: 100 every 100 ms.
    let mut next = 1000;
    let until = std::time::Instant::now() + Duration::from_secs(outage);
    while std::time::Instant::now() < until {
        send_tcp(a.syslog_tcp, "down", next..next + 100);
        next += 100;
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(
        Duration::from_secs(30),
        "the outage's events in the spool",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_events_spooled_total") == next as f64).then_some(()),
    );
    assert!(a.metric("vigil_agent_ship_errors_total") > 0.0);

    c = Collector::start(dir.path(), port);
    wait_for(
        Duration::from_secs(120),
        "every event after the outage",
        || both_logs(&c, &a),
        || (total(&url, "*")? >= next).then_some(()),
    );
    wait_for(
        Duration::from_secs(60),
        "the agent's spool to empty",
        || both_logs(&c, &a),
        || (a.metric("vigil_agent_spool_batches") == 0.0).then_some(()),
    );
    assert_exactly_once(&all_messages(&url), "down", next);
}

#[test]
fn agent_killed_with_batches_in_its_spool_delivers_them_after_restart() {
    const N: u64 = 5000;
    let dir = tempfile::tempdir().expect("tempdir");
    // A port with no collector behind it (yet): bind, note it, release it.
    let port = vigil_e2e::free_port();
    let mut a = Agent::start(dir.path(), port, "", "");
    send_tcp(a.syslog_tcp, "spooled", 0..N);
    wait_for(
        Duration::from_secs(30),
        "all events in the spool",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_events_spooled_total") == N as f64).then_some(()),
    );
    a.proc.kill9();
    assert!(
        spooled_events(&dir.path().join("spool")) > 0,
        "nothing in the spool after the kill"
    );

    let c = Collector::start(dir.path(), port);
    let a = Agent::start(dir.path(), port, "", "");
    let url = c.url();
    wait_for(
        Duration::from_secs(60),
        "the spooled events",
        || both_logs(&c, &a),
        || (total(&url, "*")? >= N).then_some(()),
    );
    assert_exactly_once(&all_messages(&url), "spooled", N);
}

#[test]
fn full_spool_drops_the_oldest_counts_them_and_keeps_running() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = vigil_e2e::free_port();
    let bound = 64 * 1024;
    let a = Agent::start(
        dir.path(),
        port,
        &format!("max_bytes = {bound}"),
        "[batch]\nmax_events = 200\n",
    );
    send_tcp(a.syslog_tcp, "full", 0..N);
    wait_for(
        Duration::from_secs(60),
        "all events through the spool",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_events_spooled_total") == N as f64).then_some(()),
    );
    let dropped_batches = a.metric("vigil_agent_spool_dropped_batches_total");
    assert!(dropped_batches > 0.0, "nothing was dropped");
    assert!(a.metric("vigil_agent_spool_bytes") <= bound as f64 * 1.5);

    // Still running and still receiving.
    send_tcp(a.syslog_tcp, "after", 0..10);
    wait_for(
        Duration::from_secs(30),
        "events after the drops",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_events_spooled_total") == (N + 10) as f64).then_some(()),
    );
    let healthz = reqwest::blocking::get(format!("http://{}/healthz", a.http)).expect("healthz");
    assert!(healthz.status().is_success());

    // What is left on disk, as the next start reads it, plus what was dropped is everything:
    // no silent loss.
    let dropped_events = a.metric("vigil_agent_spool_dropped_events_total") as u64;
    let mut a = a;
    assert!(
        a.proc.terminate(Duration::from_secs(30)),
        "agent did not stop"
    );
    let left = spooled_events(&dir.path().join("spool"));
    assert_eq!(
        left + dropped_events,
        N + 10,
        "left {left}, dropped {dropped_events}"
    );
    let log = std::fs::read_to_string(&a.proc.log).unwrap_or_default();
    assert!(
        log.contains("spool full: dropped oldest batch"),
        "no log line for the drops"
    );
}

/// Events in a stopped agent's spool, as its next start reads them.
fn spooled_events(dir: &std::path::Path) -> u64 {
    let metrics = std::sync::Arc::new(vigil_agent::metrics::Metrics::new());
    vigil_agent::spool::Spool::open(dir, u64::MAX, false, metrics)
        .expect("spool reopens")
        .events()
}
