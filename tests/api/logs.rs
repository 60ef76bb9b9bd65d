//! The server's log as an operator reads it: JSON lines that all parse, failed and throttled
//! logins with who and where but never the password, an access line for each request, and no
//! colour codes in a file.

use serde_json::{Value, json};

use crate::binary::{lodge, login, post, run_command, start_with, token_login};

fn lines_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("lodge.log")).unwrap()
}

#[test]
fn json_logs_parse_line_by_line_and_hold_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start_with(
        dir.path(),
        &[
            ("LODGE_LOG__FORMAT", "json"),
            ("LODGE_LOG__REQUESTS", "true"),
            ("LODGE_LIMITS__ACCOUNT_FAILURES", "3"),
        ],
    );
    for _ in 0..3 {
        let (failed, _) = login(&url, "admin", "guess-Xyz-123");
        assert!(failed["errors"].is_array(), "{failed}");
    }
    let (throttled, _) = login(&url, "admin", "guess-Xyz-123");
    assert!(throttled["errors"].is_array(), "{throttled}");
    let (_, cookie) = login(&url, "nobody-here", "whatever");
    assert!(cookie.is_none());
    drop(server);

    let text = lines_of(dir.path());
    assert!(!text.contains("guess-Xyz-123"), "a password in the log");
    assert!(!text.contains('\u{1b}'), "colour codes in a file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let with = |message: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    };
    let failed = with("login failed");
    assert!(failed.len() >= 3, "{text}");
    assert_eq!(failed[0]["user"], "admin");
    assert_eq!(failed[0]["provider"], "local");
    assert_eq!(failed[0]["address"], "127.0.0.1");
    assert_eq!(failed[0]["level"], "INFO");
    let throttled = with("login throttled");
    assert_eq!(throttled.len(), 1, "{text}");
    assert_eq!(throttled[0]["user"], "admin");
    assert_eq!(throttled[0]["check"], "password");
    let locked = with("account locked");
    assert_eq!(locked.len(), 1, "{text}");
    assert_eq!(locked[0]["level"], "WARN");

    let requests: Vec<_> = lines.iter().filter(|l| l["target"] == "access").collect();
    assert_eq!(requests.len(), 5, "one line a request: {text}");
    let first = requests[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/api/gql");
    assert_eq!(first["status"], 200);
    assert_eq!(first["operation"], "authLogin");
    assert!(
        first["ms"].as_str().unwrap().parse::<f64>().is_ok(),
        "{first}"
    );
}

#[test]
fn the_access_log_names_the_operation_and_the_user_and_text_logs_have_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start_with(dir.path(), &[("LODGE_LOG__REQUESTS", "true")]);
    let (_, cookie) = login(&url, "admin", "binary admin password");
    let (me, _) = post(
        &url,
        json!({ "query": "query Me { activeUser { userId } }", "operationName": "Me" }),
        cookie.as_deref(),
    );
    assert_eq!(me["data"]["activeUser"]["userId"], "admin");
    let health = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(reqwest::get(format!(
            "{url}/healthz?token=lodge_not_logged"
        )))
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(server);
    let text = lines_of(dir.path());
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text}");
    let me = text
        .lines()
        .find(|l| l.contains("operation=\"Me\"") || l.contains("operation=Me"))
        .unwrap_or_else(|| panic!("no access line for Me: {text}"));
    assert!(
        me.contains("user=\"admin\"") || me.contains("user=admin"),
        "{me}"
    );
    assert!(
        me.contains("status=200") && me.contains("method=POST"),
        "{me}"
    );
    assert!(
        text.contains("path=\"/healthz\"") || text.contains("path=/healthz"),
        "{text}"
    );
    assert!(
        !text.contains("lodge_not_logged"),
        "no query string in the log"
    );
}

/// At `log.level = debug` on PostgreSQL the log shows the client's statements but never their
/// parameters: no session id, token digest or user id sent with one.
#[test]
fn at_debug_no_statement_parameter_reaches_the_log() {
    if !crate::helpers::on_postgres() {
        return;
    }
    let cluster = crate::postgres::cluster().expect("checked by on_postgres");
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.fresh_url();
    let (server, address, _) = start_with(
        dir.path(),
        // start_with asks for debug (LODGE_LOG); log.level too, for the case the issue names.
        &[
            ("LODGE_DATABASE__URL", url.as_str()),
            ("LODGE_LOG__LEVEL", "debug"),
        ],
    );
    let (answer, cookie) = login(&address, "admin", "binary admin password");
    assert!(answer["errors"].is_null(), "{answer}");
    let cookie = cookie.expect("a session");
    let (me, _) = post(
        &address,
        json!({ "query": "{ activeUser { userId } }" }),
        Some(&cookie),
    );
    assert_eq!(me["data"]["activeUser"]["userId"], "admin", "{me}");
    drop(server);

    let text = lines_of(dir.path());
    assert!(
        text.contains("preparing query"),
        "the client's debug lines are there: {text}"
    );
    assert!(!text.contains("parameters"), "{text}");
}

/// A token login that fails on a token whose secret matched a row names that token and its
/// owner in the log, and why it failed; the secret itself never appears.
#[test]
fn a_failed_token_login_names_the_matched_token_in_the_log_and_never_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start_with(dir.path(), &[("LODGE_LOG__FORMAT", "json")]);
    run_command(
        lodge(dir.path()),
        &["user", "add", "ned"],
        "ned's password\n",
    );
    let created = run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "ned", "--name", "nightly"],
        "",
    );
    let secret = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    run_command(lodge(dir.path()), &["user", "disable", "ned"], "");
    let (refused, _) = token_login(&url, &secret);
    assert!(refused["errors"].is_array(), "{refused}");
    let (refused, _) = token_login(&url, "lodge_nonsense");
    assert!(refused["errors"].is_array(), "{refused}");
    drop(server);

    let text = lines_of(dir.path());
    assert!(!text.contains(&secret[..20]), "a secret in the log: {text}");
    let failed: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("login failed"))
        })
        .collect();
    assert_eq!(failed.len(), 2, "{text}");
    assert_eq!(failed[0]["token"], "nightly", "{text}");
    assert_eq!(failed[0]["user"], "ned", "{text}");
    assert_eq!(failed[0]["provider"], "token", "{text}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("owner is disabled"),
        "{text}"
    );
    assert!(failed[1].get("token").is_none(), "no row, no name: {text}");
    assert!(
        failed[1]["message"].as_str().unwrap().contains("malformed"),
        "{text}"
    );
}
