//! MistUtilCertbot end to end with Debian's certbot and pebble: pebble is the ACME server (its own
//! test CA), pebble-challtestsrv its DNS (every name → 127.0.0.1), and pebble validates http-01 for
//! real against our HTTP listener on port 80 (pebble's `httpPort`), which MistUtilCertbot adds
//! through the controller. Needs root (port 80) and a free port 80: fails, never skips, otherwise.

mod common;

use common::browser::{ensure_chromium, ensure_node_modules, play_js_env};
use common::{free_port, make_mp4, wait_port, Proc, TempDir};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    let f2 = f.try_clone().unwrap();
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
    )
}

#[test]
fn certbot_gets_a_certificate_through_the_running_server() {
    assert!(
        std::net::TcpListener::bind("0.0.0.0:80").is_ok(),
        "this test needs to bind port 80 (run as root, with nothing else on port 80)"
    );
    let dir = TempDir::new("certbot");
    let d = dir.path();
    // Pebble's own HTTPS listener (the ACME directory) gets a throwaway certificate that certbot
    // trusts through REQUESTS_CA_BUNDLE.
    run(Command::new("openssl").current_dir(d).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        "pebble.key",
        "-out",
        "pebble.pem",
    ]));
    let (dns, chall_mgmt, acme, acme_mgmt, tls_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let _dns = spawn(
        Command::new("pebble-challtestsrv").args([
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-management",
            &format!("127.0.0.1:{chall_mgmt}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]),
        &d.join("challtestsrv.log"),
    );
    let pebble_cfg = json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme}"),
        "managementListenAddress": format!("127.0.0.1:{acme_mgmt}"),
        "certificate": d.join("pebble.pem"),
        "privateKey": d.join("pebble.key"),
        "httpPort": 80,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    std::fs::write(d.join("pebble.json"), pebble_cfg.to_string()).unwrap();
    let _pebble = spawn(
        Command::new("pebble")
            .arg("-config")
            .arg(d.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random delay before validations; no nonce rejections (certbot would retry).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID"),
        &d.join("pebble.log"),
    );
    assert!(
        wait_port(acme, Duration::from_secs(10)),
        "pebble never listened"
    );

    // The server: an HTTPS protocol without a certificate, no HTTP listener on port 80; HLS and
    // a VoD stream for the browser at the end.
    let api = free_port();
    let https_port = free_port();
    let vod = d.join("vod.mp4");
    make_mp4(&vod, "640x360", 12);
    let config = json!({
        "config": {
            "controller": {"port": api, "interface": "127.0.0.1"},
            "protocols": [{"connector": "HTTPS", "port": https_port}, {"connector": "HLS"}],
        },
        "streams": {
            "live": {"name": "live", "source": "push://"},
            "vod": {"name": "vod", "source": vod.to_string_lossy()},
        },
    });
    let conf = d.join("mistserver.conf");
    std::fs::write(&conf, config.to_string()).unwrap();
    std::fs::create_dir_all(d.join("shm")).unwrap();
    let sock = d.join("control.sock");
    let _ctl = spawn(
        Command::new(env!("CARGO_BIN_EXE_MistController"))
            .arg("-c")
            .arg(&conf)
            .env("MIST_SHM_DIR", d.join("shm"))
            .env("MIST_CONTROL", &sock),
        &d.join("controller.log"),
    );
    assert!(
        wait_port(api, Duration::from_secs(10)),
        "API never listened"
    );

    // certbot with the command line of the documentation; the hook found on PATH.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_MistUtilCertbot"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let names = ["www.mist.test", "live.mist.test"];
    let mut certbot = Command::new("certbot");
    certbot
        .args(["certonly", "--manual", "--preferred-challenges=http"])
        .args(["--manual-auth-hook", "MistUtilCertbot"])
        .args(["--deploy-hook", "MistUtilCertbot"])
        .args(["-d", names[0], "-d", names[1]])
        .args(["--server", &format!("https://127.0.0.1:{acme}/dir")])
        .args([
            "--non-interactive",
            "--agree-tos",
            "--register-unsafely-without-email",
        ])
        .arg("--config-dir")
        .arg(d.join("le"))
        .arg("--work-dir")
        .arg(d.join("le-work"))
        .arg("--logs-dir")
        .arg(d.join("le-logs"))
        .env("PATH", &path)
        .env("MIST_CONTROL", &sock)
        .env("REQUESTS_CA_BUNDLE", d.join("pebble.pem"));
    let out = certbot.output().expect("run certbot");
    let log = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
    assert!(
        out.status.success(),
        "certbot failed:\n{}\n{}\n--- controller\n{}\n--- pebble\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log("controller.log"),
        log("pebble.log"),
    );

    eprintln!(
        "certbot:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The saved config names the new files in the HTTPS protocol, and HTTP on port 80 exists.
    let lineage = d.join("le/live").join(names[0]);
    let saved: Value = serde_json::from_slice(&std::fs::read(&conf).unwrap()).unwrap();
    let protocols = saved["config"]["protocols"].as_array().unwrap().clone();
    let https: Vec<&Value> = protocols
        .iter()
        .filter(|p| p["connector"] == "HTTPS")
        .collect();
    assert_eq!(https.len(), 1, "{protocols:?}");
    assert_eq!(https[0]["port"], json!(https_port));
    assert_eq!(
        https[0]["cert"],
        json!(lineage.join("fullchain.pem").to_string_lossy()),
        "{protocols:?}"
    );
    assert_eq!(
        https[0]["key"],
        json!(lineage.join("privkey.pem").to_string_lossy())
    );
    let http80 = protocols
        .iter()
        .find(|p| p["connector"] == "HTTP" && p["port"] == json!(80))
        .unwrap_or_else(|| panic!("no HTTP protocol on port 80: {protocols:?}"));
    let challenges = http80["certbot"].as_str().unwrap_or("");
    assert_eq!(
        challenges.split(' ').count(),
        2,
        "one challenge per name: {challenges:?}"
    );

    // The certificate is pebble's, for both names.
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(lineage.join("cert.pem")));
    for n in names {
        assert!(text.contains(&format!("DNS:{n}")), "{text}");
    }
    assert!(text.contains("Pebble"), "issuer is not pebble's CA: {text}");
    // A renewal reuses the stored hooks: the auth hook now updates the HTTP protocol on port 80,
    // the deploy hook finds the HTTPS protocol already pointing at the lineage.
    let before = std::fs::read(lineage.join("cert.pem")).unwrap();
    let mut renew = Command::new("certbot");
    renew
        .args([
            "renew",
            "--force-renewal",
            "--non-interactive",
            "--no-random-sleep-on-renew",
        ])
        .args(["--server", &format!("https://127.0.0.1:{acme}/dir")])
        .arg("--config-dir")
        .arg(d.join("le"))
        .arg("--work-dir")
        .arg(d.join("le-work"))
        .arg("--logs-dir")
        .arg(d.join("le-logs"))
        .env("PATH", &path)
        .env("MIST_CONTROL", &sock)
        .env("REQUESTS_CA_BUNDLE", d.join("pebble.pem"));
    let out = renew.output().expect("run certbot renew");
    assert!(
        out.status.success(),
        "certbot renew failed:\n{}\n{}\n--- controller\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log("controller.log"),
    );
    assert_ne!(
        std::fs::read(lineage.join("cert.pem")).unwrap(),
        before,
        "renewal kept the old certificate"
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&conf).unwrap()).unwrap();
    let protocols = saved["config"]["protocols"].as_array().unwrap();
    assert_eq!(
        protocols
            .iter()
            .filter(|p| p["connector"] == "HTTP" && p["port"] == json!(80))
            .count(),
        1,
        "{protocols:?}"
    );
    assert!(
        protocols.iter().any(|p| p["connector"] == "HTTPS"
            && p["cert"] == json!(lineage.join("fullchain.pem").to_string_lossy())),
        "{protocols:?}"
    );

    let root = run(Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(d.join("pebble.pem"))
        .arg(format!("https://127.0.0.1:{acme_mgmt}/roots/0")));
    std::fs::write(d.join("root.pem"), root).unwrap();
    run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(d.join("root.pem"))
        .arg("-untrusted")
        .arg(lineage.join("chain.pem"))
        .arg(lineage.join("cert.pem")));
    hls_js_plays_with_pebbles_root_trusted(d, &d.join("root.pem"), names[1], https_port);
}

/// hls.js in headless Chromium plays the VoD stream over HTTPS from the certificate certbot just
/// installed, trusting pebble's root the way a system does: an NSS database (`certutil`) in the
/// browser's HOME holding the root as a CA, no certificate exception. The name resolves to this
/// host by Chromium's host rules (pebble-challtestsrv is not the browser's DNS).
fn hls_js_plays_with_pebbles_root_trusted(d: &Path, root: &Path, name: &str, port: u16) {
    // curl with the same root first: the playlist is served (MistInMP4 started) before the
    // browser's clock runs.
    let url = format!("https://{name}:{port}/hls/vod/index.m3u8");
    let resolve = format!("{name}:{port}:127.0.0.1");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "--resolve", &resolve, "--cacert"])
            .arg(root)
            .arg(&url)
            .status()
            .expect("curl");
        if out.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "{url} never answered 200 with pebble's root trusted"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    ensure_chromium();
    let modules = ensure_node_modules();
    let home = d.join("browser-home");
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    run(Command::new("certutil").args(["-N", "--empty-password", "-d", &db]));
    run(Command::new("certutil")
        .args(["-A", "-d", &db, "-n", "pebble-root", "-t", "C,,", "-i"])
        .arg(root));
    let home = home.to_string_lossy().into_owned();
    let rules = format!("MAP {name} 127.0.0.1");
    let watch = 6;
    let results = play_js_env(
        &modules,
        watch,
        &[format!("hls={url}")],
        None,
        &[("HOME", &home), ("HOST_RULES", &rules)],
    );
    let r = &results[0];
    assert_eq!(r["started"], true, "never played over HTTPS: {r}");
    assert!(
        r["advanced"].as_f64().unwrap_or(0.0) >= 3.0,
        "currentTime advanced too little in {watch} s: {r}"
    );
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
    );
    assert!(
        r["fatal"].as_array().is_some_and(|a| a.is_empty())
            && r["errors"].as_array().is_some_and(|a| a.is_empty()),
        "player errors over HTTPS: {r}"
    );
}
