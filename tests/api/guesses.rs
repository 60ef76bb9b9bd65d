//! Parallel guesses: every password check counts before it starts, token logins stay cheap.

use serde_json::{Value, json};

use crate::helpers::*;

const LOGIN: &str = "query login($c: Object) {
    authLogin(provider: \"local\", credentials: $c) { authStatus } }";

fn login_body(user: &str, password: &str) -> Value {
    json!({ "query": LOGIN, "variables": { "c": { "user": user, "password": password } } })
}

#[tokio::test]
async fn two_hundred_parallel_password_guesses_check_at_most_the_accounts_budget() {
    // Every connection let in (server.max_connections_per_address would close most of them):
    // what holds here is the login limits'.
    let app = spawn_app_with(|s| s.server.max_connections_per_address = 0).await;
    // The right password last: it cannot be among the first ten checked.
    let bodies: Vec<Value> = (0..200)
        .map(|i| match i {
            199 => login_body(ADMIN, ADMIN_PASSWORD),
            i => login_body(ADMIN, &format!("guess number {i}")),
        })
        .collect();
    let answers = app.post_all_at_once(&bodies, &[]).await;
    let codes = count_codes(&answers);
    let failed = codes.get("authFailed").copied().unwrap_or(0);
    let throttled = codes.get("tooManyRequests").copied().unwrap_or(0);
    assert!(
        failed <= 10,
        "at most limits.account_failures checked: {codes:?}"
    );
    assert_eq!(failed + throttled, 200, "{codes:?}");
    assert_eq!(
        error_code(&answers[199]),
        "tooManyRequests",
        "the right password came too late"
    );
    assert!(
        answers
            .iter()
            .any(|a| error_message(a).contains("too many password checks at once")),
        "a guess refused while others are in flight says so"
    );
    let audit = app.count("audit_events");
    assert!(audit <= 12, "only checked guesses are recorded: {audit}");
    let after = app.new_client().login(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        error_code(&after),
        "tooManyRequests",
        "the account is locked"
    );
}

#[tokio::test]
async fn parallel_wrong_old_passwords_are_throttled_like_logins() {
    // As above: every connection let in.
    let app = spawn_app_with(|s| s.server.max_connections_per_address = 0).await;
    app.login_admin().await;
    let change = |old: &str| {
        json!({
            "query": "query($old: String!, $new: String!) {
                authChangeLocalPassword(oldPassword: $old, newPassword: $new) }",
            "variables": { "old": old, "new": "a brand new password" },
        })
    };
    let bodies: Vec<Value> = (0..200)
        .map(|i| match i {
            199 => change(ADMIN_PASSWORD),
            i => change(&format!("old guess {i}")),
        })
        .collect();
    let answers = app.post_all_at_once(&bodies, &[]).await;
    let codes = count_codes(&answers);
    let wrong = codes.get("invalidInput").copied().unwrap_or(0);
    let throttled = codes.get("tooManyRequests").copied().unwrap_or(0);
    assert!((1..=10).contains(&wrong), "{codes:?}");
    assert_eq!(wrong + throttled, 200, "{codes:?}");
    assert_eq!(error_code(&answers[199]), "tooManyRequests");

    // The same budget as logins: the account is locked for both.
    let login = app.new_client().login(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(error_code(&login), "tooManyRequests");
    // And with a Bearer token instead of the session.
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("stolen").await;
    let bearer = format!("Bearer {token}");
    let thief = app.new_client();
    let answers = thief
        .post_all_at_once(&bodies[..50], &[("Authorization", &bearer)])
        .await;
    let codes = count_codes(&answers);
    assert!(
        codes.get("invalidInput").copied().unwrap_or(0) <= 10,
        "{codes:?}"
    );
}

#[tokio::test]
async fn sixty_four_parallel_token_logins_from_one_address_all_succeed() {
    // The 64 beside this test's own kept-alive connections would pass
    // server.max_connections_per_address (64): what holds here is the login limits'.
    let app = spawn_app_with(|s| s.server.max_connections_per_address = 0).await;
    app.login_admin().await;
    let token = app.new_token("ci").await;
    let body = json!({
        "query": "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
        "variables": { "c": { "token": token } },
    });
    let answers = app
        .new_client()
        .post_all_at_once(&vec![body; 64], &[])
        .await;
    for answer in &answers {
        assert_eq!(
            answer["data"]["authLogin"]["authStatus"], "SUCCESS",
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_password_reset_lifts_the_lock() {
    let app = spawn_app().await;
    app.login_admin().await;
    app.add_user("carol", "carol's password", "user").await;
    for _ in 0..10 {
        app.new_client().login("carol", "wrong").await;
    }
    let locked = app.new_client().login("carol", "carol's password").await;
    assert_eq!(error_code(&locked), "tooManyRequests");
    let reset = app
        .gql(
            "{ setUserCredentials(userId: \"carol\", providerId: \"local\",
                credentials: {password: \"carol's new password\"}) }",
            json!({}),
        )
        .await;
    assert_ok(&reset);
    let login = app
        .new_client()
        .login("carol", "carol's new password")
        .await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );
}

#[tokio::test]
async fn a_name_with_an_ignorable_character_is_no_account_and_cannot_escape_a_lock() {
    let app = spawn_app_with(|s| s.limits.account_failures = 3).await;
    let disguises = [
        "ad\u{AD}min",
        "ad\u{34F}min",
        "admin\u{FE0F}",
        "\u{200B}admin",
        "ad\u{E0061}min",
    ];
    for name in disguises {
        let answer = app.new_client().login(name, ADMIN_PASSWORD).await;
        assert_eq!(error_code(&answer), "authFailed", "{name:?}: {answer}");
        assert_eq!(
            error_message(&answer),
            "User authentication failed",
            "{name:?}: the same answer as any failed login"
        );
    }
    let events = app.query_i64(
        "SELECT count(*) FROM audit_events WHERE kind = 'login' AND detail = 'no such user id'",
    );
    assert_eq!(events, disguises.len() as i64, "refused before any lookup");

    for _ in 0..3 {
        app.new_client().login(ADMIN, "a wrong password").await;
    }
    for name in ["ADMIN", "ad\u{AD}min", "ad\u{34F}min"] {
        let answer = app.new_client().login(name, ADMIN_PASSWORD).await;
        assert_ne!(
            answer["data"]["authLogin"]["authStatus"], "SUCCESS",
            "{name:?} while admin is locked: {answer}"
        );
    }
}

#[tokio::test]
async fn two_spellings_the_database_takes_for_one_account_share_its_budget() {
    let app = spawn_app_with(|s| s.limits.account_failures = 3).await;
    app.add_user("νικος", "the right password", "user").await;
    // PostgreSQL's collation takes a final sigma for a sigma, `νικοσ` for `νικος` (SQLite's
    // NOCASE does not: there it is no account, with a budget of its own that locks nobody).
    for _ in 0..3 {
        app.new_client().login("νικοσ", "a wrong password").await;
    }
    let answer = app.new_client().login("νικος", "the right password").await;
    if on_postgres() {
        assert_eq!(error_code(&answer), "tooManyRequests", "{answer}");
    } else {
        assert_eq!(
            answer["data"]["authLogin"]["authStatus"], "SUCCESS",
            "{answer}"
        );
    }
}
