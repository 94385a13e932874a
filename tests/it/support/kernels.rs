//! Work inside a real single-user server, for the `--activity=server`
//! tests: kernels started, kept busy and left idle, terminals opened,
//! through the hub's proxy with a token holding `access:servers`, as a user
//! at a notebook or a terminal would.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// Runs `code` in a kernel over its websocket (jupyter-server's JSON
/// protocol), and returns once the kernel says it is busy with it: the
/// code runs on after the socket closes, as a training run goes on with no
/// browser attached. Needs tornado, which jupyter-server brings.
const EXECUTE: &str = r#"
import asyncio, json, sys, uuid
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

url, token, code = sys.argv[1:4]

async def main():
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": "token " + token}))
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3",
                   "date": "2026-01-01T00:00:00.000000Z"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    while True:
        text = await asyncio.wait_for(ws.read_message(), 60)
        if text is None:
            sys.exit("the kernel's websocket closed before it went busy")
        msg = json.loads(text)
        if (msg.get("msg_type") == "status"
                and msg.get("parent_header", {}).get("msg_id") == msg_id
                and msg["content"]["execution_state"] == "busy"):
            print("busy")
            return

asyncio.run(main())
"#;

/// A single-user server reached through the proxy at `public_url`.
pub struct SingleUser {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl SingleUser {
    /// `user`'s default server, asked with `token`.
    pub fn of(public_url: &str, user: &str, token: &str) -> SingleUser {
        SingleUser {
            base: format!("{public_url}/user/{user}"),
            token: token.to_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .redirects(0)
                .build(),
        }
    }

    fn call(&self, method: &str, path: &str) -> Value {
        let url = format!("{}/{path}", self.base);
        let answer = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("token {}", self.token))
            .call()
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        answer
            .into_json()
            .unwrap_or_else(|e| panic!("{method} {url}: not JSON: {e}"))
    }

    /// Starts a kernel (`POST api/kernels`); its id.
    pub fn start_kernel(&self) -> String {
        let kernel = self.call("POST", "api/kernels");
        kernel["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no kernel id in {kernel}"))
            .to_owned()
    }

    /// Runs `code` in kernel `id` with `python` (see [`EXECUTE`]) and
    /// returns once the kernel is busy with it.
    pub fn run_in_kernel(&self, python: &Path, id: &str, code: &str) {
        let url = format!("{}/api/kernels/{id}/channels", self.base).replacen("http", "ws", 1);
        let out = Command::new(python)
            .args(["-c", EXECUTE, &url, &self.token, code])
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("busy"),
            "the kernel did not go busy: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The kernels as the server lists them (`GET api/kernels`).
    pub fn kernels(&self) -> Vec<Value> {
        self.call("GET", "api/kernels")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Opens a terminal (`POST api/terminals`): its shell prints a prompt
    /// at once, which is terminal activity.
    pub fn open_terminal(&self) -> Value {
        self.call("POST", "api/terminals")
    }

    /// The terminals as the server lists them (`GET api/terminals`).
    pub fn terminals(&self) -> Vec<Value> {
        self.call("GET", "api/terminals")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
