//! The sessions a person sees and ends (`sessionList`, `sessionEnd`, `sessionEndOthers`), and
//! those an administrator sees and ends for anyone (`adminSessionList`, `adminSessionEnd`).

use serde_json::{Value, json};

use crate::helpers::*;

const LIST: &str =
    "{ sessionList { id current provider tokenName address userAgent createTime lastSeenTime } }";
const ME: &str = "{ activeUser { userId } }";

/// Logs `client` in with a password, saying it is `agent`.
async fn login_as_browser(client: &TestApp, user: &str, password: &str, agent: &str) {
    let answer = client
        .gql_with(
            "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
            json!({ "c": { "user": user, "password": password } }),
            &[("User-Agent", agent)],
        )
        .await;
    assert_eq!(
        answer["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{answer}"
    );
}

fn sessions(answer: &Value, field: &str) -> Vec<Value> {
    answer["data"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no list: {answer}"))
        .clone()
}

fn logged_in(answer: &Value) -> bool {
    !answer["data"]["activeUser"].is_null()
}

/// uma logged in from a laptop and a phone, and with a token from a script: the app, the
/// laptop's client, the phone's, the script's, and her token.
async fn uma_everywhere() -> (TestApp, TestApp, TestApp, TestApp, String) {
    let app = spawn_app_with(|s| s.tokens.admins_only = false).await;
    app.add_user("uma", "uma's password", "user").await;
    app.add_user("vic", "vic's password", "user").await;
    let laptop = app.new_client();
    login_as_browser(
        &laptop,
        "uma",
        "uma's password",
        "Mozilla/5.0 (X11; Linux) Firefox/140.0",
    )
    .await;
    let token = laptop.new_token("nightly").await;
    let phone = app.new_client();
    login_as_browser(
        &phone,
        "uma",
        "uma's password",
        "Mozilla/5.0 (iPhone) Safari/605.1",
    )
    .await;
    let script = app.new_client();
    let answer = script.login_with_token(&token).await;
    assert_eq!(
        answer["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{answer}"
    );
    (app, laptop, phone, script, token)
}

#[tokio::test]
async fn a_person_sees_their_sessions_where_from_and_which_is_this_one() {
    let (app, laptop, phone, script, _) = uma_everywhere().await;
    let listed = sessions(&laptop.gql(LIST, json!({})).await, "sessionList");
    assert_eq!(listed.len(), 3, "{listed:?}");
    let current: Vec<_> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(
        current[0]["userAgent"],
        "Mozilla/5.0 (X11; Linux) Firefox/140.0"
    );
    assert_eq!(current[0]["provider"], "local");
    assert!(current[0]["tokenName"].is_null());
    assert_eq!(current[0]["address"], "127.0.0.1");
    let by_token: Vec<_> = listed.iter().filter(|s| s["provider"] == "token").collect();
    assert_eq!(by_token.len(), 1);
    assert_eq!(by_token[0]["tokenName"], "nightly");
    assert_eq!(listed[0]["id"], by_token[0]["id"], "the newest first");

    // The ids name sessions and tell nothing of their cookies.
    for client in [&laptop, &phone, &script] {
        let cookie = client.cookie().unwrap();
        for session in &listed {
            let id = session["id"].as_str().unwrap();
            let (_, secret) = cookie.split_once('.').unwrap_or(("", &cookie));
            assert!(!secret.contains(id) && !id.contains(&secret[..8.min(secret.len())]));
        }
    }
    // Each sees the same three with its own marked; vic sees none of them.
    let from_phone = sessions(&phone.gql(LIST, json!({})).await, "sessionList");
    assert_eq!(from_phone.len(), 3);
    let marked = from_phone.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(marked["userAgent"], "Mozilla/5.0 (iPhone) Safari/605.1");
    let vic = app.new_client();
    vic.login("vic", "vic's password").await;
    assert_eq!(
        sessions(&vic.gql(LIST, json!({})).await, "sessionList").len(),
        1
    );
    let anonymous = app.new_client().gql(LIST, json!({})).await;
    assert_eq!(error_code(&anonymous), "authRequired");
}

#[tokio::test]
async fn a_person_ends_one_of_their_sessions_and_no_one_elses() {
    let (app, laptop, phone, _, _) = uma_everywhere().await;
    let listed = sessions(&laptop.gql(LIST, json!({})).await, "sessionList");
    let phones = listed
        .iter()
        .find(|s| {
            s["userAgent"]
                .as_str()
                .is_some_and(|a| a.contains("iPhone"))
        })
        .unwrap()["id"]
        .clone();
    let end = "mutation($id: ID!) { sessionEnd(id: $id) }";

    let vic = app.new_client();
    vic.login("vic", "vic's password").await;
    let not_vics = vic.gql(end, json!({ "id": phones })).await;
    assert_eq!(not_vics["data"]["sessionEnd"], false, "{not_vics}");
    assert!(
        logged_in(&phone.gql(ME, json!({})).await),
        "uma's phone is still in"
    );

    let ended = laptop.gql(end, json!({ "id": phones })).await;
    assert_eq!(ended["data"]["sessionEnd"], true, "{ended}");
    let gone = phone.gql(ME, json!({})).await;
    assert!(!logged_in(&gone), "the phone is out at once: {gone}");
    let again = laptop.gql(end, json!({ "id": phones })).await;
    assert_eq!(again["data"]["sessionEnd"], false, "already ended");
    assert!(logged_in(&laptop.gql(ME, json!({})).await));
    assert_eq!(
        sessions(&laptop.gql(LIST, json!({})).await, "sessionList").len(),
        2
    );

    let malformed = laptop.gql(end, json!({ "id": "the phone" })).await;
    assert_eq!(error_code(&malformed), "invalidInput", "{malformed}");
    assert!(error_message(&malformed).contains("is not a session id"));
    let audit = app.new_client();
    audit.login_admin().await;
    let events = audit
        .gql(
            "{ auditLog(filter: {kind: \"session.end\", userId: \"uma\"}) { detail } }",
            json!({}),
        )
        .await;
    assert_eq!(
        events["data"]["auditLog"][0]["detail"], "ended from the session list by uma",
        "{events}"
    );
}

#[tokio::test]
async fn ending_the_others_leaves_this_session_alive_and_ends_the_rest() {
    let (app, laptop, phone, script, token) = uma_everywhere().await;
    let ended = laptop.gql("mutation { sessionEndOthers }", json!({})).await;
    assert_eq!(ended["data"]["sessionEndOthers"], 2, "{ended}");
    assert!(logged_in(&laptop.gql(ME, json!({})).await));
    assert!(!logged_in(&phone.gql(ME, json!({})).await));
    assert!(!logged_in(&script.gql(ME, json!({})).await));
    let listed = sessions(&laptop.gql(LIST, json!({})).await, "sessionList");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["current"], true);
    // The token itself still works: only its sessions ended.
    let bearer = app.gql_bearer(&token, ME, json!({})).await;
    assert_eq!(bearer["data"]["activeUser"]["userId"], "uma");
    // With a Bearer token there is no current session: every session ends.
    let all = app
        .gql_bearer(&token, "mutation { sessionEndOthers }", json!({}))
        .await;
    assert_eq!(all["data"]["sessionEndOthers"], 1, "{all}");
    assert!(!logged_in(&laptop.gql(ME, json!({})).await));
}

#[tokio::test]
async fn an_administrator_lists_and_ends_anyones_sessions_and_sees_counts_and_last_logins() {
    let (app, laptop, phone, _, _) = uma_everywhere().await;
    let admin = app.new_client();
    admin.login_admin().await;
    let listed = admin
        .gql(
            "{ adminSessionList(userId: \"uma\") { id current provider userAgent } }",
            json!({}),
        )
        .await;
    let listed = sessions(&listed, "adminSessionList");
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().all(|s| s["current"] == false),
        "none is the admin's"
    );
    let info = "{ adminUserInfo(userId: \"uma\") { sessionCount lastLoginTime } }";
    let before = admin.gql(info, json!({})).await;
    assert_eq!(
        before["data"]["adminUserInfo"]["sessionCount"], 3,
        "{before}"
    );
    assert_eq!(
        before["data"]["adminUserInfo"]["lastLoginTime"],
        json!(app.clock.now().to_string()),
    );
    let never = admin
        .gql(
            "{ adminUserInfo(userId: \"vic\") { sessionCount lastLoginTime } }",
            json!({}),
        )
        .await;
    assert_eq!(
        never["data"]["adminUserInfo"],
        json!({ "sessionCount": 0, "lastLoginTime": null })
    );

    let laptops = listed
        .iter()
        .find(|s| {
            s["userAgent"]
                .as_str()
                .is_some_and(|a| a.contains("Firefox"))
        })
        .unwrap();
    let ended = admin
        .gql(
            "mutation($id: ID!) { adminSessionEnd(id: $id) }",
            json!({ "id": laptops["id"] }),
        )
        .await;
    assert_eq!(ended["data"]["adminSessionEnd"], true, "{ended}");
    assert!(
        !logged_in(&laptop.gql(ME, json!({})).await),
        "ended at once"
    );
    assert!(logged_in(&phone.gql(ME, json!({})).await), "only that one");
    let after = admin.gql(info, json!({})).await;
    assert_eq!(after["data"]["adminUserInfo"]["sessionCount"], 2);
    let events = admin
        .gql(
            "{ auditLog(filter: {kind: \"session.end\"}) { userId detail } }",
            json!({}),
        )
        .await;
    assert_eq!(
        events["data"]["auditLog"][0],
        json!({ "userId": "uma", "detail": "ended by admin" })
    );

    // A disabled user's sessions are gone from the list and the count at once.
    admin
        .gql("{ enableUser(userId: \"uma\", enabled: false) }", json!({}))
        .await;
    let disabled = admin.gql(info, json!({})).await;
    assert_eq!(
        disabled["data"]["adminUserInfo"]["sessionCount"], 0,
        "{disabled}"
    );
}

#[tokio::test]
async fn the_last_login_is_kept_in_the_file_once_flushed() {
    let (app, ..) = uma_everywhere().await;
    let stored = || app.query_opt_i64("SELECT last_login_at FROM users WHERE user_id = 'uma'");
    assert_eq!(stored(), None, "held in memory until the next flush");
    app.auth.flush_last_used().await.unwrap();
    assert_eq!(stored(), Some(app.clock.now().as_microsecond()));
}
