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
    let modules =
        std::fs::read_to_string(root.join("usr/lib/modules-load.d/mist-rs.conf")).unwrap();
    assert!(
        modules.lines().any(|l| l.trim() == "tls"),
        "the kTLS module is loaded at boot: {modules}"
    );
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

/// The package in a clean Debian root (`scripts/package-check`: a debootstrap minbase root of
/// the host's release, cached as a tarball under target/debian/): `dpkg -i` with no network,
/// postinst's user, config and enabled unit, the server started as the unit would and answering
/// its API as the mistserver user, `apt-get remove` keeping the config, `apt-get purge` leaving
/// nothing of the package. Needs root (chroot, mount namespaces); scripts/test installs
/// debootstrap.
#[test]
fn debian_package_installs_runs_and_purges_in_a_clean_root() {
    assert_eq!(
        effective_uid(),
        0,
        "the clean-root package test needs root (chroot); CI runs as root"
    );
    let dir = TempDir::new("package-root");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_MistController"))
        .parent()
        .unwrap();
    let text = run(Command::new(repo().join("scripts/package"))
        .env("BIN_DIR", bin_dir)
        .env("OUT", dir.path().join("debian")));
    let deb = text
        .lines()
        .find(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no .deb named: {text}"))
        .to_string();
    let text = run(Command::new(repo().join("scripts/package-check")).arg(&deb));
    for step in [
        "ok: installed",
        "ok: the installed server ran as mistserver",
        "ok: removed (config kept)",
        "ok: purged",
    ] {
        assert!(text.contains(step), "{step} missing in: {text}");
    }
}

/// The effective user id, from /proc (no libc call needed).
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap()
}
