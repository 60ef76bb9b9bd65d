//! `deploy/lodge.service` as systemd reads it: valid (`systemd-analyze verify`) and hardened
//! (`systemd-analyze security`, an exposure of at most 2.0 of 10). Skipped where systemd's
//! tools are not installed.

use std::{path::Path, process::Command};

#[test]
fn the_service_unit_verifies_and_is_hardened() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/lodge.service"))
            .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/lodge serve"));
    // verify checks that ExecStart's binary exists: this build's stands in for the installed one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lodge.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/lodge", env!("CARGO_BIN_EXE_lodge")),
    )
    .unwrap();

    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warns: {said}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "{report}");
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for lodge.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(exposure <= 2.0, "exposure {exposure}: {report}");
}
