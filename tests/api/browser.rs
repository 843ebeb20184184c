//! A real browser for the console's tests: Debian's headless Chromium driven over the
//! DevTools protocol (a WebSocket; `--remote-debugging-port=0`), so a test loads a page,
//! clicks, types, waits for what a person would see and takes a screenshot.
//!
//! Only what the tests need: one page, `Runtime.evaluate`, `Page.navigate`,
//! `Page.captureScreenshot`. Every wait is bounded; the browser dies with the handle.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How every test starts Debian's Chromium: headless, as root (no sandbox), and without the
/// background connections this machine's closed network refuses by the dozen.
pub const HEADLESS_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Browser {
    _child: tokio::process::Child,
    _profile: tempfile::TempDir,
    ws: Socket,
    session: String,
    next_id: u64,
    width: u32,
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens one blank page `width` CSS px wide.
    pub async fn launch(width: u32) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(CHROMIUM)
            .args(HEADLESS_FLAGS)
            .args(["--remote-debugging-port=0", "--remote-allow-origins=*"])
            .arg(format!("--window-size={width},1000"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find("ws://") {
                    return line[at..].trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await
        .expect("chromium's DevTools endpoint within 60 s");
        // Keep draining stderr, or a chatty browser blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .expect("connect to DevTools");
        let mut browser = Browser {
            _child: child,
            _profile: profile,
            ws,
            session: String::new(),
            next_id: 0,
            width,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({})).await;
        browser.set_height(1000).await;
        browser
    }

    /// One DevTools command (on the page's session once attached); its `result`.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send to DevTools");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(frame) = self.ws.next().await {
                let Ok(Message::Text(text)) = frame else {
                    continue;
                };
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if v["id"] == json!(id) {
                    return v;
                }
            }
            panic!("DevTools closed before answering {method}");
        })
        .await
        .unwrap_or_else(|_| panic!("DevTools answers {method} within 30 s"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    async fn set_height(&mut self, height: u32) {
        let width = self.width;
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression} threw: {r}"
        );
        r["result"]["value"].clone()
    }

    /// Waits (bounded) until `condition`, a JavaScript expression, is true in the page.
    pub async fn wait_for(&mut self, what: &str, condition: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let expression =
            format!("(function(){{try{{return !!({condition});}}catch(e){{return false;}}}})()");
        loop {
            if self.eval(&expression).await == json!(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page did not show {what} within 20 s: {}",
                self.eval("document.body ? document.body.innerText : ''")
                    .await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Navigates and waits for the loaded document at a URL starting with `lands_on`.
    pub async fn goto(&mut self, url: &str, lands_on: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_loaded(lands_on).await;
    }

    /// Waits until the page at a URL starting with `prefix` has loaded.
    pub async fn wait_loaded(&mut self, prefix: &str) {
        let condition = format!(
            "document.readyState === 'complete' && location.href.startsWith({})",
            json!(prefix)
        );
        self.wait_for(&format!("a loaded page at {prefix}"), &condition)
            .await;
    }

    /// The page's HTML now.
    pub async fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the whole page (up to 3000 px tall) at `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .await
            .as_u64()
            .unwrap_or(1000)
            .clamp(400, 3000) as u32;
        self.set_height(height).await;
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
        self.set_height(1000).await;
    }
}
