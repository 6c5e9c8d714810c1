//! Headless Chromium driven over the DevTools protocol: start it on a page, evaluate
//! JavaScript in the page, take a screenshot.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The Chromium binary of Debian's `chromium` package (`.ci/run` installs it).
pub fn chromium_path() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// A headless Chromium showing one page.
pub struct Browser {
    child: Child,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// Reads the page target's DevTools URL from `/json/list` on the debugging port.
async fn page_ws_url(port: u16) -> Result<String, String> {
    let list: Value = granary_admin::get_json(
        &format!("127.0.0.1:{port}"),
        "/json/list",
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| e.to_string())?;
    list.as_array()
        .and_then(|targets| {
            targets
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        })
        .map(str::to_owned)
        .ok_or_else(|| format!("no page target in {list}"))
}

impl Browser {
    /// Starts Chromium headless on `url`, with a fresh profile, and connects to the
    /// page over the DevTools protocol.
    pub async fn open(url: &str) -> Result<Browser, String> {
        let binary =
            chromium_path().ok_or("chromium is not installed (apt-get install chromium)")?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                }
            }
            None
        })
        .await
        .map_err(|_| "chromium printed no DevTools address within 30 s".to_owned())?
        .ok_or("chromium exited without a DevTools address")?;
        // Keep draining stderr so that Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ws = page_ws_url(port).await?;
        let (page, _) = tokio_tungstenite::connect_async(ws.as_str())
            .await
            .map_err(|e| format!("devtools connect: {e}"))?;
        Ok(Browser {
            child,
            page,
            next_id: 0,
            _profile: profile,
        })
    }

    /// Sends one DevTools command to the page and waits for its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(WsMessage::Text(request.to_string().into()))
            .await
            .map_err(|e| format!("devtools send: {e}"))?;
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(msg) = self.page.next().await {
                let msg = msg.map_err(|e| format!("devtools recv: {e}"))?;
                let WsMessage::Text(text) = msg else { continue };
                let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                if value["id"] == id {
                    return Ok(value);
                }
            }
            Err("devtools connection closed".to_owned())
        })
        .await
        .map_err(|_| format!("{method}: no answer within 20 s"))??;
        if let Some(error) = answer.get("error") {
            return Err(format!("{method}: {error}"));
        }
        Ok(answer["result"].clone())
    }

    /// Evaluates `expression` in the page and returns its JSON value.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await?;
        if let Some(ex) = result.get("exceptionDetails") {
            return Err(format!("page exception: {ex}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| e.to_string())
    }

    /// Stops Chromium.
    pub async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}
