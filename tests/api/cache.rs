//! The server remembers the sessions and tokens it looked up. A change made anywhere else (the
//! command line in another process, another connection to the file) must take effect on the very
//! next request, as it would if nothing were remembered.

use serde_json::json;

use crate::{
    binary::{lodge, run_command},
    forward_auth::verify,
    helpers::*,
};

const ME: &str = "{ activeUser { userId } }";
const NEEDS_USER: &str = "{ tokenApiList { tokenName } }";

/// Runs `lodge ARGS` in another process on the test server's database.
fn command_line(app: &TestApp, args: &[&str], stdin: &str) {
    let mut command = lodge(app.db_path.parent().unwrap());
    command.env("LODGE_DATABASE__PATH", &app.db_path);
    run_command(command, args, stdin);
}

/// The session id a cookie (`id.secret`) names.
fn session_id(cookie: Option<String>) -> i64 {
    let cookie = cookie.expect("a session cookie");
    cookie.split_once('.').unwrap().0.parse().unwrap()
}

async fn verify_status(app: &TestApp, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    verify(app, &[("Authorization", &bearer)])
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_token_deleted_by_the_command_line_stops_working_at_once() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("ci").await;
    let session = app.new_client();
    assert_ok(&session.login_with_token(&token).await);
    // Each used twice: looked up once, then answered from memory.
    for _ in 0..2 {
        assert_ok(&app.gql_bearer(&token, NEEDS_USER, json!({})).await);
        assert_eq!(verify_status(&app, &token).await, 200);
        assert_ok(&session.gql(ME, json!({})).await);
    }

    command_line(
        &app,
        &["token", "delete", "--user", ADMIN, "--name", "ci"],
        "",
    );

    let bearer = app.gql_bearer(&token, NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&bearer), "authFailed", "{bearer}");
    assert_eq!(verify_status(&app, &token).await, 401);
    let login = app.new_client().login_with_token(&token).await;
    assert_eq!(error_code(&login), "authFailed", "{login}");
    // The session the token opened ended with it.
    let me = session.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&me), "sessionExpired", "{me}");
}

#[tokio::test]
async fn a_password_set_by_the_command_line_ends_remembered_sessions_at_once() {
    let app = spawn_app().await;
    app.add_user("carol", "carol's first password", "user")
        .await;
    let carol = app.new_client();
    assert_ok(&carol.login("carol", "carol's first password").await);
    for _ in 0..2 {
        let me = carol.gql(ME, json!({})).await;
        assert_eq!(me["data"]["activeUser"]["userId"], "carol", "{me}");
    }

    command_line(
        &app,
        &["user", "passwd", "carol"],
        "carol's second password\n",
    );

    let me = carol.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&me), "sessionExpired", "{me}");
}

#[tokio::test]
async fn a_user_disabled_through_another_connection_is_refused_at_once() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("ci").await;
    for _ in 0..2 {
        assert_ok(&app.gql_bearer(&token, NEEDS_USER, json!({})).await);
        assert_ok(&app.gql(ME, json!({})).await);
    }

    app.execute(&format!(
        "UPDATE users SET enabled = FALSE WHERE user_id = '{ADMIN}'"
    ));
    assert_eq!(app.count("users WHERE enabled = FALSE"), 1);

    let bearer = app.gql_bearer(&token, NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&bearer), "authFailed", "{bearer}");
    let me = app.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&me), "sessionExpired", "{me}");
}

#[tokio::test]
async fn a_session_deleted_through_another_connection_ends_at_once() {
    let app = spawn_app().await;
    app.login_admin().await;
    let other = app.new_client();
    other.login_admin().await;
    for _ in 0..2 {
        assert_ok(&app.gql(ME, json!({})).await);
        assert_ok(&other.gql(ME, json!({})).await);
    }
    let id = session_id(app.cookie());
    app.execute(&format!("DELETE FROM sessions WHERE id = {id}"));

    let me = app.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&me), "sessionExpired", "{me}");
    // The other session, forgotten with everything else, is read again and still works.
    assert_ok(&other.gql(ME, json!({})).await);
}

#[tokio::test]
async fn the_session_limit_counts_only_sessions_still_open_after_ends_elsewhere() {
    let app = spawn_app_with(|s| s.session.max_per_user = 2).await;
    let clients: Vec<_> = (0..3).map(|_| app.new_client()).collect();
    clients[0].login_admin().await;
    clients[1].login_admin().await;
    // The server's list of the user's sessions holds both; another connection ends the newer.
    let newer = session_id(clients[1].cookie());
    app.execute(&format!("DELETE FROM sessions WHERE id = {newer}"));
    // A third login makes two open sessions: within the limit, so the oldest stays open.
    clients[2].login_admin().await;
    assert_ok(&clients[0].gql(ME, json!({})).await);
    assert_ok(&clients[2].gql(ME, json!({})).await);
    assert_eq!(app.count("sessions"), 2);
    // And the limit still holds: one more login ends the oldest.
    clients[1].login_admin().await;
    let me = clients[0].gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&me), "sessionExpired", "{me}");
    assert_eq!(app.count("sessions"), 2);
}

#[tokio::test]
async fn sessions_the_server_ends_itself_end_although_remembered() {
    let app = spawn_app_with(|s| s.session.max_per_user = 2).await;
    let clients: Vec<_> = (0..4).map(|_| app.new_client()).collect();
    for client in &clients[..2] {
        client.login_admin().await;
        assert_ok(&client.gql(ME, json!({})).await);
        assert_ok(&client.gql(ME, json!({})).await);
    }
    // Two more logins end the two remembered sessions, in the logins' own writes.
    for client in &clients[2..] {
        client.login_admin().await;
    }
    for (i, client) in clients.iter().enumerate() {
        let me = client.gql(NEEDS_USER, json!({})).await;
        if i < 2 {
            assert_eq!(error_code(&me), "sessionExpired", "client {i}: {me}");
        } else {
            assert_ok(&me);
        }
    }
    // A logout of a remembered session ends it too: its cookie, replayed, names no session.
    let cookie = clients[3].cookie().unwrap();
    assert_ok(&clients[3].gql(ME, json!({})).await);
    let out = clients[3].gql("{ authLogout }", json!({})).await;
    assert_eq!(out["data"]["authLogout"], true, "{out}");
    clients[3].set_cookie(Some(&cookie));
    let me = clients[3].gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&me), "sessionExpired", "{me}");
}

#[tokio::test]
async fn a_cookie_with_a_wrong_secret_for_a_live_session_id_names_no_session() {
    let app = spawn_app().await;
    app.login_admin().await;
    assert_ok(&app.gql(ME, json!({})).await);
    let cookie = app.cookie().unwrap();
    let (id, secret) = cookie.split_once('.').unwrap();
    let flipped = if secret.starts_with('a') { "b" } else { "a" };
    let forged = format!("{id}.{flipped}{}", &secret[1..]);
    let thief = app.new_client();
    thief.set_cookie(Some(&forged));
    let me = thief.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&me), "sessionExpired", "{me}");
    assert_ok(&app.gql(ME, json!({})).await);
}

#[tokio::test]
async fn a_token_list_shows_tokens_the_command_line_creates_and_deletes_at_once() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("ci").await;
    let names = || async {
        let listed = app.gql_bearer(&token, NEEDS_USER, json!({})).await;
        assert_ok(&listed);
        listed["data"]["tokenApiList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tokenName"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names().await, ["ci"]);
    assert_eq!(names().await, ["ci"]);

    command_line(
        &app,
        &["token", "create", "--user", ADMIN, "--name", "deploy"],
        "",
    );
    assert_eq!(names().await, ["ci", "deploy"]);
    assert_eq!(names().await, ["ci", "deploy"]);

    command_line(
        &app,
        &["token", "delete", "--user", ADMIN, "--name", "deploy"],
        "",
    );
    assert_eq!(names().await, ["ci"]);
}
