//! scripts/package builds a Debian package from the tree (binaries from this build): lintian
//! reports no errors or warnings (and no tag is overridden), the layout is
//! Debian's (binaries in /usr/bin, compressed man pages, the unit in /lib/systemd/system, the
//! sysusers.d entry, copyright), Depends comes from the binaries' libraries, and the maintainer
//! scripts are valid shell.

mod common;

use common::TempDir;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn run(c: &mut Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{c:?} failed: {text}");
    text
}

#[test]
fn debian_package_is_lintian_clean_with_the_install_layout() {
    let dir = TempDir::new("package");
    let out = dir.path().join("debian");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_MistController"))
        .parent()
        .unwrap();
    // lintian runs inside the script (LINTIAN=1) and fails it on any error or warning.
    let text = run(Command::new(repo().join("scripts/package"))
        .env("BIN_DIR", bin_dir)
        .env("OUT", &out)
        .env("LINTIAN", "1"));
    let deb = PathBuf::from(
        text.lines()
            .find(|l| l.ends_with(".deb"))
            .unwrap_or_else(|| panic!("no .deb named: {text}")),
    );
    assert!(deb.is_file(), "{}", deb.display());
    assert!(!text.contains("W: ") && !text.contains("E: "), "{text}");

    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    assert!(depends.contains("libc6"), "{depends}");
    assert!(depends.contains("init-system-helpers"), "{depends}");

    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let ctl = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctl));
    for n in [
        "MistController",
        "MistUtilCertbot",
        "MistOutHTTP",
        "MistOutHTTPS",
        "MistInBuffer",
    ] {
        assert!(root.join("usr/bin").join(n).is_file(), "{n}");
        assert!(
            root.join(format!("usr/share/man/man1/{n}.1.gz")).is_file(),
            "man page of {n}"
        );
    }
    assert!(root
        .join("usr/share/man/man5/mistserver.conf.5.gz")
        .is_file());
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/mistserver.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/MistController -c /etc/mistserver/mistserver.conf"),
        "{unit}"
    );
    assert!(root.join("usr/lib/sysusers.d/mistserver.conf").is_file());
    assert!(root.join("usr/share/doc/mist-rs/copyright").is_file());
    // The default config is not a conffile (the server rewrites it): postinst installs it.
    assert!(root.join("usr/share/mist-rs/mistserver.conf").is_file());
    assert!(!root.join("etc").exists());
    assert!(!ctl.join("conffiles").exists());
    for s in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(ctl.join(s)));
    }
    let postinst = std::fs::read_to_string(ctl.join("postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers"), "{postinst}");
}
