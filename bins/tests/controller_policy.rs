//! One policy for controller requests (mist_connector::ask): a connector whose controller is
//! configured (MIST_CONTROL set) but cannot be reached refuses, instead of serving without the
//! controller's rules.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn http_refuses_play_when_the_controller_is_unreachable() {
    let shm = TempDir::new("policy");
    let port = free_port();
    let _http = Proc(
        Command::new(env!("CARGO_BIN_EXE_MistOutHTTP"))
            .args([
                "-p",
                &port.to_string(),
                "-i",
                "127.0.0.1",
                "--formats",
                "HTTPTS",
            ])
            .env("MIST_SHM_DIR", &shm.0)
            .env("MIST_CONTROL", shm.0.join("no-controller.sock"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start MistOutHTTP"),
    );
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "MistOutHTTP never listened"
    );
    let answer = http_raw(
        port,
        b"GET /somestream.ts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(15),
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("controller unreachable"), "{answer}");
}
