//! What a client sends cannot forge a line: escaped alike in the audit log, the command line
//! and the server's log.

use serde_json::json;

use crate::binary::{lodge, login, post, run_command, start};

/// A user name that would clear a terminal, colour it, and start a forged line.
const FORGED: &str = "\u{1b}[2J\u{1b}[32mx\nlogin          ok      user=admin provider=local";
const ESCAPED: &str = "\\u{1b}[2J\\u{1b}[32mx\\u{a}login          ok      user=admin";

#[test]
fn an_escape_sequence_and_a_newline_in_a_login_name_come_out_escaped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start(dir.path());
    let (failed, _) = login(&url, FORGED, "guess");
    assert!(
        failed.to_string().contains("User authentication failed"),
        "{failed}"
    );

    let audit = run_command(lodge(dir.path()), &["audit", "--kind", "login"], "");
    let printed = String::from_utf8(audit.stdout).unwrap();
    assert!(printed.contains(ESCAPED), "{printed}");
    assert!(!printed.contains('\u{1b}'), "{printed:?}");
    assert_eq!(printed.lines().count(), 1, "one event, one line: {printed}");

    let (_, cookie) = login(&url, "admin", "binary admin password");
    let (events, _) = post(
        &url,
        json!({ "query": "{ auditLog(filter: {kind: \"login\"}) { userId success } }" }),
        cookie.as_deref(),
    );
    let failed = &events["data"]["auditLog"][1];
    assert_eq!(failed["success"], false, "{events}");
    assert!(
        failed["userId"].as_str().unwrap().starts_with(ESCAPED),
        "{events}"
    );

    drop(server);
    let log = std::fs::read_to_string(dir.path().join("lodge.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("login failed"))
        .unwrap_or_else(|| panic!("no failed login in the log: {log}"));
    assert!(line.contains(ESCAPED), "{line}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("login ")),
        "no forged line: {log}"
    );
}
