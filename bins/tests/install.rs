//! scripts/install into a temporary DESTDIR: every binary, man page, the unit and a default config
//! that an upgrade does not overwrite; every man page renders with `man -l` without warnings;
//! every binary answers --help and --version and has a man page.

mod common;

use common::TempDir;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn bin_names() -> Vec<String> {
    std::fs::read_to_string(repo().join("bins/Cargo.toml"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.strip_prefix("name = \"Mist")?
                .strip_suffix('"')
                .map(|n| format!("Mist{n}"))
        })
        .collect()
}

fn install(dest: &Path) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_MistController"))
        .parent()
        .unwrap();
    let o = Command::new(repo().join("scripts/install"))
        .env("PREFIX", "/usr")
        .env("DESTDIR", dest)
        .env("BIN_DIR", bin_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "scripts/install failed: {text}");
    text
}

#[test]
fn install_into_a_destdir_and_upgrade() {
    let dir = TempDir::new("install");
    let root = dir.path();
    install(root);
    let names = bin_names();
    assert!(
        names.len() >= 20 && names.contains(&"MistUtilCertbot".to_string()),
        "{names:?}"
    );
    for n in &names {
        let p = root.join("usr/bin").join(n);
        let mode = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{n}");
        assert!(
            root.join("usr/share/man/man1")
                .join(format!("{n}.1"))
                .is_file(),
            "no man page for {n}"
        );
    }
    assert!(root.join("usr/share/man/man5/mistserver.conf.5").is_file());
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/mistserver.service")).unwrap();
    assert!(
        unit.contains("/usr/bin/MistController -c /etc/mistserver/mistserver.conf"),
        "{unit}"
    );
    assert!(root.join("var/lib/mist-rs").is_dir());
    // The default config is the controller's built-in default.
    assert!(unit.contains("User=mistserver"), "{unit}");
    assert!(root.join("usr/lib/sysusers.d/mistserver.conf").is_file());
    let modules =
        std::fs::read_to_string(root.join("usr/lib/modules-load.d/mist-rs.conf")).unwrap();
    assert!(
        modules.lines().any(|l| l.trim() == "tls"),
        "the kTLS module is loaded at boot: {modules}"
    );
    let conf = root.join("etc/mistserver/mistserver.conf");
    let loaded = mist_core::config::Config::load(&conf).unwrap().unwrap();
    assert_eq!(loaded, mist_core::config::default_config());
    // An upgrade keeps the operator's config.
    std::fs::write(&conf, "{\"streams\": {}}").unwrap();
    let text = install(root);
    assert!(
        text.contains("kept /etc/mistserver/mistserver.conf"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "{\"streams\": {}}");
    assert!(root.join("etc/mistserver/mistserver.conf.dist").is_file());
    // PREFIX=/usr/local: the unit starts the binary where it is.
    let dir2 = TempDir::new("install-local");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_MistController"))
        .parent()
        .unwrap();
    let o = Command::new(repo().join("scripts/install"))
        .env("DESTDIR", dir2.path())
        .env_remove("PREFIX")
        .env("BIN_DIR", bin_dir)
        .output()
        .unwrap();
    assert!(o.status.success());
    let unit = std::fs::read_to_string(
        dir2.path()
            .join("usr/local/lib/systemd/system/mistserver.service"),
    )
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/MistController "),
        "{unit}"
    );
    assert!(dir2.path().join("usr/local/bin/MistUtilHealth").is_file());
}

#[test]
fn man_pages_render_without_warnings() {
    let mut pages: Vec<_> = std::fs::read_dir(repo().join("man"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 20);
    for p in pages {
        let o = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&p)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .expect("man (man-db) is installed; scripts/test installs it");
        assert!(o.status.success(), "{}: {:?}", p.display(), o.status);
        assert!(
            o.stderr.is_empty(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.stdout.len() > 200, "{}", p.display());
    }
}

#[test]
fn every_binary_answers_help_and_version() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_MistController"))
        .parent()
        .unwrap();
    for n in bin_names() {
        for flag in ["--help", "--version"] {
            let o = Command::new(bin_dir.join(&n)).arg(flag).output().unwrap();
            assert!(o.status.success(), "{n} {flag}: {:?}", o.status);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(!out.trim().is_empty(), "{n} {flag} printed nothing");
        }
    }
}

/// `systemd-analyze verify` of the installed unit, with the binary where the unit says (in the
/// DESTDIR: the unit copy points there) and the installed man pages for its Documentation=.
#[test]
fn installed_unit_passes_systemd_analyze_verify() {
    let dir = TempDir::new("install-verify");
    let root = dir.path();
    install(root);
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/mistserver.service"))
        .unwrap()
        .replace(
            "/usr/bin/MistController",
            root.join("usr/bin/MistController").to_str().unwrap(),
        );
    assert!(unit.contains("WatchdogSec="), "{unit}");
    let check = root.join("check");
    std::fs::create_dir_all(&check).unwrap();
    let path = check.join("mistserver.service");
    std::fs::write(&path, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .expect("systemd-analyze (systemd) is installed; scripts/test installs it");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success() && text.trim().is_empty(), "{text}");
}
