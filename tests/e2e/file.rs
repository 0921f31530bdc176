//! The agent's file source: a log rotated by rename and by copytruncate while it is tailed,
//! and rotated again while the agent is stopped, loses no line and repeats none.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use vigil_e2e::{Agent, Collector, all_messages, assert_exactly_once, total, wait_for};

fn append(f: &mut File, range: std::ops::Range<u64>) {
    let text: String = range.map(|i| format!("rot-{i}\n")).collect();
    f.write_all(text.as_bytes()).expect("write the log");
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log")
}

#[test]
fn a_file_rotated_three_ways_loses_no_line_and_repeats_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let log = logs.join("app.log");
    let c = Collector::start(dir.path(), 0);
    let extra = format!(
        "\n[[file]]\npaths = [\"{}\"]\nstart_at = \"beginning\"\n\
         poll_interval = \"50ms\"\nrotate_wait = \"1s\"\ncustomer = \"files\"\n",
        logs.join("*.log").display()
    );
    let start = || Agent::start(dir.path(), c.port, "", &extra);
    let read = |a: &Agent| a.metric("vigil_agent_events_received_total");
    let caught_up = |a: &Agent, n: u64, what: &str| {
        wait_for(
            Duration::from_secs(60),
            what,
            || format!("read {}\n{}", read(a), a.proc.log_tail()),
            || (read(a) >= n as f64).then_some(()),
        )
    };

    // Written before the agent starts: read from the beginning, as configured.
    let mut w = open_append(&log);
    append(&mut w, 0..1000);
    let mut a = start();
    append(&mut w, 1000..1500);

    // Rotation 1, by rename: the writer keeps writing to the renamed file for a while (it
    // has not reopened yet), then moves to a new file at the old name.
    std::fs::rename(&log, logs.join("app.log.1")).expect("rename");
    append(&mut w, 1500..1600);
    let mut w = open_append(&log);
    append(&mut w, 1600..2500);
    caught_up(&a, 2500, "the lines around the rename");

    // Rotation 2, copytruncate: copy, then cut the file the writer still appends to. A
    // tailer cannot read what the truncate removed before it read it (the copy is not in
    // the glob), so the copy is made once the agent has read everything.
    std::fs::copy(&log, logs.join("app.log.2.old")).expect("copy");
    w.set_len(0).expect("truncate");
    append(&mut w, 2500..3000);
    caught_up(&a, 3000, "the lines after the copytruncate");

    // Rotation 3, by rename while the agent is stopped: it resumes the old file where it
    // left off and reads the new one from its start.
    assert!(a.proc.terminate(Duration::from_secs(30)), "clean stop");
    append(&mut w, 3000..3500);
    std::fs::rename(&log, logs.join("app.log.3")).expect("rename");
    append(&mut w, 3500..3600);
    let mut w = open_append(&log);
    append(&mut w, 3600..4000);
    a = start();
    append(&mut w, 4000..4500);

    let url = c.url();
    wait_for(
        Duration::from_secs(60),
        "4,500 lines in the index",
        || format!("indexed {:?}\n{}", total(&url, "*"), a.proc.log_tail()),
        || (total(&url, "customer:files")? >= 4500).then_some(()),
    );
    // A little longer, so a duplicate on its way would arrive before the count is checked.
    std::thread::sleep(Duration::from_secs(2));
    assert_exactly_once(&all_messages(&url), "rot", 4500);
    let r = vigil_e2e::search(&url, "message:rot-4499", 1, 0).expect("search");
    assert_eq!(r["hits"][0]["log.file.path"], log.display().to_string());
    assert_eq!(
        r["hits"][0]["host.name"].as_str().map(str::is_empty),
        Some(false)
    );
}
