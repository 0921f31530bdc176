//! A real headless Chromium driven through Debian's `chromedriver` (W3C WebDriver over HTTP,
//! spoken here with blocking requests): one browser per test, screenshots of every page it
//! visits written to a folder a person can review.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{Proc, wait_for};

pub const DRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where the browser tests' screenshots go: `VIGIL_SCREENSHOTS`, else
/// `target/console-screenshots` beside the build.
pub fn screenshots_dir() -> PathBuf {
    std::env::var_os("VIGIL_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::process::bin_dir()
                .parent()
                .map(|p| p.join("console-screenshots"))
                .unwrap_or_else(|| PathBuf::from("console-screenshots"))
        })
}

/// Why a browser cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    [(DRIVER, "chromium-driver"), (CHROMIUM, "chromium")]
        .iter()
        .find(|(p, _)| !Path::new(p).exists())
        .map(|(p, pkg)| format!("{p} is missing (Debian package {pkg})"))
}

pub struct Browser {
    _driver: Proc,
    url: String,
    http: reqwest::blocking::Client,
    /// This test's screenshots: `<dir>/<test>-NN-<name>.png`.
    shots: PathBuf,
    test: String,
    taken: std::cell::Cell<usize>,
}

/// An element of the page.
#[derive(Clone)]
pub struct El(String);

impl Browser {
    /// A headless Chromium of `width`×`height`, its log in `dir`, its screenshots named after
    /// `test`.
    pub fn start(dir: &Path, test: &str, width: u32, height: u32) -> Browser {
        let log = dir.join("chromedriver.log");
        let mut cmd = Command::new(DRIVER);
        cmd.arg("--port=0");
        let driver = Proc::spawn("chromedriver", cmd, &log);
        let port: u16 = wait_for(
            Duration::from_secs(30),
            "chromedriver to say its port",
            || driver.log_tail(),
            || {
                std::fs::read_to_string(&log).ok().and_then(|l| {
                    l.split("started successfully on port ")
                        .nth(1)?
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
            },
        );
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let profile = dir.join("chromium-profile");
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--no-first-run",
                             "--autoplay-policy=no-user-gesture-required",
                             format!("--user-data-dir={}", profile.display()),
                             format!("--window-size={width},{height}")],
                }
            }}}))
            .send()
            .and_then(|r| r.json())
            .expect("a WebDriver session");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        let shots = screenshots_dir();
        std::fs::create_dir_all(&shots).expect("screenshots folder");
        // This test's screenshots of an earlier run go: the folder shows the last run.
        if let Ok(old) = std::fs::read_dir(&shots) {
            for f in old.flatten() {
                if f.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{test}-"))
                {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        Browser {
            _driver: driver,
            url: format!("{base}/session/{id}"),
            http,
            shots,
            test: test.to_owned(),
            taken: std::cell::Cell::new(0),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        if v["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None)
    }

    pub fn go(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub fn current_url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_owned()
    }

    pub fn title(&self) -> String {
        self.get("/title").as_str().unwrap_or_default().to_owned()
    }

    /// The elements matching `css` now.
    pub fn all(&self, css: &str) -> Vec<El> {
        let v = self.post("/elements", json!({"using": "css selector", "value": css}));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| El(s.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> El {
        self.wait(
            &format!("an element {css}"),
            Duration::from_secs(10),
            || self.all(css).into_iter().next(),
        )
    }

    /// Waits up to `within` for `f` to give something, checking every 100 ms.
    pub fn wait<T>(&self, what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > within {
                let shot = self.screenshot("timeout");
                panic!(
                    "waited {within:?} for {what} at {} (screenshot {})",
                    self.current_url(),
                    shot.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, el: &El) {
        self.post(&format!("/element/{}/click", el.0), json!({}));
    }

    pub fn type_into(&self, el: &El, text: &str) {
        self.post(&format!("/element/{}/value", el.0), json!({ "text": text }));
    }

    pub fn clear(&self, el: &El) {
        self.post(&format!("/element/{}/clear", el.0), json!({}));
    }

    /// The text of the first element matching `css` now, if there is one (a page being
    /// replaced may take it away between the two questions).
    pub fn text_now(&self, css: &str) -> Option<String> {
        let el = self.all(css).into_iter().next()?;
        let v: Value = self
            .http
            .get(format!("{}/element/{}/text", self.url, el.0))
            .send()
            .and_then(|r| r.json())
            .ok()?;
        v["value"].as_str().map(str::to_owned)
    }

    pub fn text(&self, el: &El) -> String {
        self.get(&format!("/element/{}/text", el.0))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn attr(&self, el: &El, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", el.0))
            .as_str()
            .map(str::to_owned)
    }

    /// Types `keys` to the page (shortcuts), as a user at the keyboard.
    pub fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        );
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
    }

    /// Sets a cookie of the current site.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.post(
            "/cookie",
            json!({"cookie": {"name": name, "value": value, "path": "/"}}),
        );
    }

    /// Runs `script` (a function body that calls `arguments[arguments.length - 1]` with its
    /// result) in the page and waits for it.
    pub fn run_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": args }))
    }

    /// `GET path` from the page (its cookies): (status, content type, body).
    pub fn fetch(&self, path: &str) -> (u16, String, String) {
        let v = self.run_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {credentials: 'same-origin'})
               .then(async r => done([r.status, r.headers.get('content-type') || '', await r.text()]))
               .catch(e => done([0, '', String(e)]));",
            json!([path]),
        );
        (
            v[0].as_u64().unwrap_or(0) as u16,
            v[1].as_str().unwrap_or_default().to_owned(),
            v[2].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// The page's text.
    pub fn page_text(&self) -> String {
        self.run("return document.body.innerText", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Writes a screenshot of the page as `<test>-NN-<name>.png`; its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let png = self.get("/screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a PNG in base64");
        let n = self.taken.get() + 1;
        self.taken.set(n);
        let path = self.shots.join(format!("{}-{n:02}-{name}.png", self.test));
        std::fs::write(&path, bytes).expect("write the screenshot");
        path
    }

    /// Goes to `url` and writes its screenshot as `name`.
    pub fn visit(&self, url: &str, name: &str) {
        self.go(url);
        self.screenshot(name);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(&self.url)
            .timeout(Duration::from_secs(10))
            .send();
    }
}
