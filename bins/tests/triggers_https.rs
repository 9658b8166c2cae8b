//! End to end: an `https://` trigger handler (a python3 `ssl` server with a certificate of a
//! private CA) answers a sync PUSH_REWRITE once the controller trusts its CA through
//! `MIST_TLS_CA_FILE`; without it the handshake is refused and the trigger's default is used.
//!
//! One test in this file: it sets `MIST_TLS_CA_FILE` in its own environment, which the
//! controller and its children inherit.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = r#"
import http.server, ssl, sys
port, cert, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(log, "a") as f:
            f.write("%s %s %s\n" % (self.path, self.headers.get("X-Trigger"), body.decode().replace("\n", "|")))
        answer = b"live+tlsok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

fn wait_for_stream(ctl: &Controller, name: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let a = ctl.api(&serde_json::json!({"active_streams": true}));
        if a["active_streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == name))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn controller_with_hook(port: u16) -> Controller {
    Controller::start_edited(serde_json::json!({}), |c| {
        c["config"]["triggers"] = serde_json::json!({
            "PUSH_REWRITE": [{
                "handler": format!("https://127.0.0.1:{port}/hook"),
                "sync": true, "streams": [], "default": "live+fallback"
            }],
        });
    })
}

fn hook_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn https_trigger_handler_with_a_private_ca() {
    let dir = TempDir::new("trig-https");
    // A CA and a leaf it signed (webpki refuses a CA certificate as the server's own).
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let log = dir.path().join("hook.log");
    let port = free_port();
    let _server = Proc(
        Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .arg(&cert)
            .arg(&key)
            .arg(&log)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run python3 (scripts/test installs it)"),
    );
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "the python TLS server never listened"
    );

    // Without the CA: the handshake is refused, so the trigger's default renames the push.
    std::env::remove_var("MIST_TLS_CA_FILE");
    {
        let ctl = controller_with_hook(port);
        let _p = publish(&ctl.publish_url("anything"), "320x240", 20);
        assert!(
            wait_for_stream(&ctl, "live+fallback"),
            "the default answer of the failed https handler was not used"
        );
        assert_eq!(
            hook_log(&log),
            "",
            "a request arrived over an untrusted TLS"
        );
    }

    // With the CA in MIST_TLS_CA_FILE: the handler is reached and its answer used.
    std::env::set_var("MIST_TLS_CA_FILE", &ca);
    let ctl = controller_with_hook(port);
    let _p = publish(&ctl.publish_url("anything"), "320x240", 20);
    assert!(
        wait_for_stream(&ctl, "live+tlsok"),
        "the https handler's answer was not used; hook log: {}",
        hook_log(&log)
    );
    let seen = hook_log(&log);
    let first = seen.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("/hook PUSH_REWRITE rtmp://127.0.0.1:"),
        "{seen}"
    );
    assert!(
        first.ends_with("/live/anything|127.0.0.1|anything"),
        "{seen}"
    );
}
