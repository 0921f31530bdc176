//! A test that cannot run here (no root, no peer, no service, no corpus) says so, and CI
//! refuses it: one file, included by every test crate of the workspace.

/// Reports that the calling test did not run, and why. With `VIGIL_TEST_REQUIRE_ALL=1` (set
/// by `.ci/run`) this is a failure naming what was missing. Without it, the line is written
/// to the terminal directly, past the test harness's capture, so that `cargo test` shows
/// every skip even for tests that then pass.
pub fn skip(why: &str) {
    if std::env::var_os("VIGIL_TEST_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("cannot run (VIGIL_TEST_REQUIRE_ALL=1): {why}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {why}");
}
