//! Device cookies: a browser that has logged in to an account keeps logging in while failed
//! guesses from elsewhere hold the account locked; a forged cookie, or another account's, does
//! not; a trusted browser's own failures lock it alone.

use serde_json::{Value, json};

use crate::helpers::*;

const LOGIN: &str =
    "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }";

/// A password login sending `device` as the device cookie; the answer and the device cookie
/// the server set, if any (its whole `Set-Cookie`).
async fn login(
    app: &TestApp,
    user: &str,
    password: &str,
    device: Option<&str>,
) -> (Value, Option<String>) {
    let mut request = app.client.post(app.gql_url()).json(
        &json!({ "query": LOGIN, "variables": { "c": { "user": user, "password": password } } }),
    );
    if let Some(device) = device {
        request = request.header("Cookie", format!("lodge-device={device}"));
    }
    let response = request.send().await.unwrap();
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("lodge-device="))
        .map(str::to_owned);
    (response.json().await.unwrap(), set)
}

fn value(set_cookie: &str) -> String {
    set_cookie["lodge-device=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn status(answer: &Value) -> &str {
    match answer["data"]["authLogin"]["authStatus"].as_str() {
        Some(status) => status,
        None => error_code(answer),
    }
}

async fn lock_out(app: &TestApp, user: &str) {
    for _ in 0..3 {
        let (answer, _) = login(app, user, "a guess", None).await;
        assert_eq!(status(&answer), "authFailed", "{answer}");
    }
    let (answer, _) = login(app, user, "alice's password", None).await;
    assert_eq!(
        status(&answer),
        "tooManyRequests",
        "locked for others: {answer}"
    );
}

#[tokio::test]
async fn a_trusted_browser_logs_in_while_the_account_is_locked_for_everyone_else() {
    let app = spawn_app_with(|s| s.limits.account_failures = 3).await;
    app.add_user("alice", "alice's password", "user").await;
    app.add_user("bob", "bob's password", "user").await;

    let (answer, set) = login(&app, "alice", "alice's password", None).await;
    assert_eq!(status(&answer), "SUCCESS");
    let set = set.expect("a device cookie after a password login");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/gql",
        "Max-Age=7776000",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    let trusted = value(&set);
    let (_, bobs) = login(&app, "bob", "bob's password", None).await;
    let bobs = value(&bobs.unwrap());

    lock_out(&app, "alice").await;

    let (answer, renewed) = login(&app, "alice", "alice's password", Some(&trusted)).await;
    assert_eq!(status(&answer), "SUCCESS", "the trusted browser: {answer}");
    let renewed = value(&renewed.expect("a fresh device cookie"));

    let mut forged = trusted.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    for (case, cookie) in [
        ("a forged cookie", forged.as_str()),
        ("bob's cookie", bobs.as_str()),
        ("garbage", "not-a-device-cookie"),
    ] {
        let (answer, _) = login(&app, "alice", "alice's password", Some(cookie)).await;
        assert_eq!(status(&answer), "tooManyRequests", "{case}: {answer}");
    }

    // The trusted browser's own failures lock it, not more.
    for _ in 0..3 {
        let (answer, _) = login(&app, "alice", "a guess", Some(&renewed)).await;
        assert_eq!(status(&answer), "authFailed", "{answer}");
    }
    let (answer, _) = login(&app, "alice", "alice's password", Some(&renewed)).await;
    assert_eq!(status(&answer), "tooManyRequests", "its own lock: {answer}");
    app.login_admin().await;
    let audit = app
        .gql(
            "{ auditLog(filter: { kind: \"user.locked\", userId: \"alice\" }) { detail } }",
            json!({}),
        )
        .await;
    let details: Vec<_> = audit["data"]["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(
        details[0].starts_with("a browser trusted for the account locked until"),
        "{details:?}"
    );
    assert!(details[1].starts_with("locked until"), "{details:?}");

    // The key outlives a restart: the first cookie still lets its browser past a lock.
    let restarted = app.restarted(|s| s.limits.account_failures = 3).await;
    if on_postgres() {
        // The failures are kept in the database every node shares: still locked after a restart.
        let (answer, _) = login(&restarted, "alice", "alice's password", None).await;
        assert_eq!(status(&answer), "tooManyRequests", "{answer}");
    } else {
        lock_out(&restarted, "alice").await;
    }
    let (answer, _) = login(&restarted, "alice", "alice's password", Some(&trusted)).await;
    assert_eq!(status(&answer), "SUCCESS", "after a restart: {answer}");
}
