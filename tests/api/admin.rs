//! Administrators and every user's tokens: list, revoke, find the owner of a leaked secret,
//! lift a lock.

use serde_json::{Value, json};

use crate::helpers::*;

const LIST_ALL: &str = "{ adminTokenList { userId tokenName createTime expireTime lastUsedTime } }";

fn listed(response: &Value, field: &str) -> Vec<(String, String)> {
    response["data"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no list: {response}"))
        .iter()
        .map(|t| {
            (
                t["userId"].as_str().unwrap().to_owned(),
                t["tokenName"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(user: &str, token: &str) -> (String, String) {
    (user.to_owned(), token.to_owned())
}

/// An administrator and two other users with tokens: (the administrator's client, uma's
/// token, vic's token).
async fn team() -> (TestApp, String, String) {
    let app = spawn_app_with(|s| s.tokens.admins_only = false).await;
    app.add_user("uma", "uma's password", "user").await;
    app.add_user("vic", "vic's password", "user").await;
    app.login_admin().await;
    app.new_token("admin's").await;
    let uma = app.new_client();
    uma.login("uma", "uma's password").await;
    let umas = uma.new_token("deploy").await;
    let vic = app.new_client();
    vic.login("vic", "vic's password").await;
    let vics = vic.new_token("deploy").await;
    (app, umas, vics)
}

#[tokio::test]
async fn an_administrator_lists_every_users_tokens_or_one_users_and_never_a_secret() {
    let (app, umas, _) = team().await;
    let all = app.gql(LIST_ALL, json!({})).await;
    assert_eq!(
        listed(&all, "adminTokenList"),
        [
            pair("admin", "admin's"),
            pair("uma", "deploy"),
            pair("vic", "deploy")
        ]
    );
    assert!(!all.to_string().contains(&umas), "no secret is listed");
    let one = app
        .gql(
            "{ adminTokenList(userId: \"uma\") { userId tokenName } }",
            json!({}),
        )
        .await;
    assert_eq!(listed(&one, "adminTokenList"), [pair("uma", "deploy")]);
    let nobody = app
        .gql("{ adminTokenList(userId: \"zed\") { userId } }", json!({}))
        .await;
    assert_eq!(error_code(&nobody), "notFound");
}

#[tokio::test]
async fn a_token_an_administrator_revokes_fails_at_once_everywhere_and_is_audited() {
    let (app, umas, vics) = team().await;
    let session = app.new_client();
    assert_ok(&session.login_with_token(&umas).await);
    let verify = |token: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/api/auth/verify", app.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(verify(umas.clone()).await, 200);

    let revoked = app
        .gql(
            "mutation { adminTokenDelete(userId: \"uma\", tokenName: \"deploy\") }",
            json!({}),
        )
        .await;
    assert_ok(&revoked);
    assert_eq!(
        verify(umas.clone()).await,
        401,
        "forward auth refuses it at once"
    );
    let bearer = app
        .gql_bearer(&umas, "{ tokenApiList { tokenName } }", json!({}))
        .await;
    assert_eq!(error_code(&bearer), "authFailed", "and so does /api/gql");
    let ended = session
        .gql("{ tokenApiList { tokenName } }", json!({}))
        .await;
    assert_eq!(error_code(&ended), "sessionExpired", "its session ended");
    assert_eq!(
        verify(vics).await,
        200,
        "another user's token of the same name lives"
    );

    let again = app
        .gql(
            "mutation { adminTokenDelete(userId: \"uma\", tokenName: \"deploy\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&again), "notFound");
    assert!(
        error_message(&again).contains("`uma` has no token"),
        "{again}"
    );
    let audit = app
        .gql(
            "{ auditLog(filter: {kind: \"token.delete\"}) { userId tokenName detail } }",
            json!({}),
        )
        .await;
    let event = &audit["data"]["auditLog"][0];
    assert_eq!(event["userId"], "uma", "{audit}");
    assert!(
        event["detail"].as_str().unwrap().contains("by admin"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_pasted_secret_finds_its_live_token_and_nothing_else() {
    let (app, umas, _) = team().await;
    let lookup = |token: String| {
        app.gql(
            "query($t: String!) { adminTokenLookup(token: $t) { userId tokenName } }",
            json!({ "t": token }),
        )
    };
    let found = lookup(format!("  {umas}\n")).await;
    assert_eq!(
        found["data"]["adminTokenLookup"],
        json!({ "userId": "uma", "tokenName": "deploy" })
    );
    for (case, token) in [
        ("garbage", "not a token".to_owned()),
        ("a changed character", umas.replacen("lodge_", "lodge_x", 1)),
    ] {
        let response = lookup(token).await;
        assert!(
            response["data"]["adminTokenLookup"].is_null(),
            "{case}: {response}"
        );
    }
    app.gql(
        "mutation { adminTokenDelete(userId: \"uma\", tokenName: \"deploy\") }",
        json!({}),
    )
    .await;
    let deleted = lookup(umas).await;
    assert!(deleted["data"]["adminTokenLookup"].is_null(), "{deleted}");

    let audit = app
        .gql(
            "{ auditLog(filter: {kind: \"token.lookup\"}) { success userId tokenName } }",
            json!({}),
        )
        .await;
    let events = audit["data"]["auditLog"].as_array().unwrap();
    assert_eq!(events.len(), 4, "every lookup is recorded: {audit}");
    assert_eq!(events[3]["success"], true);
    assert_eq!(events[3]["userId"], "uma");
    assert!(
        !audit.to_string().contains("lodge_"),
        "never the secret: {audit}"
    );
}

#[tokio::test]
async fn an_administrator_unlocks_a_locked_account() {
    let (app, _, _) = team().await;
    for _ in 0..10 {
        app.new_client().login("uma", "wrong").await;
    }
    let info = "{ adminUserInfo(userId: \"uma\") { locked tokenCount } }";
    let before = app.gql(info, json!({})).await;
    assert_eq!(
        before["data"]["adminUserInfo"],
        json!({ "locked": true, "tokenCount": 1 })
    );
    let refused = app.new_client().login("uma", "uma's password").await;
    assert_eq!(error_code(&refused), "tooManyRequests");

    let unlocked = app
        .gql("{ adminUnlockUser(userId: \"uma\") }", json!({}))
        .await;
    assert_eq!(unlocked["data"]["adminUnlockUser"], true, "{unlocked}");
    assert_eq!(
        app.gql(info, json!({})).await["data"]["adminUserInfo"]["locked"],
        false
    );
    let login = app.new_client().login("uma", "uma's password").await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );
    let again = app
        .gql("{ adminUnlockUser(userId: \"uma\") }", json!({}))
        .await;
    assert_eq!(again["data"]["adminUnlockUser"], false, "was not locked");
    let audit = app
        .gql(
            "{ auditLog(filter: {kind: \"user.unlock\"}) { userId detail } }",
            json!({}),
        )
        .await;
    assert_eq!(
        audit["data"]["auditLog"].as_array().unwrap().len(),
        2,
        "{audit}"
    );
}

#[tokio::test]
async fn every_admin_operation_is_refused_to_others() {
    let (app, umas, _) = team().await;
    let uma = app.new_client();
    uma.login("uma", "uma's password").await;
    let operations = [
        "{ adminTokenList { tokenName } }".to_owned(),
        "{ adminTokenList(userId: \"vic\") { tokenName } }".to_owned(),
        format!("{{ adminTokenLookup(token: \"{umas}\") {{ userId }} }}"),
        "{ adminUnlockUser(userId: \"vic\") }".to_owned(),
        "mutation { adminTokenDelete(userId: \"vic\", tokenName: \"deploy\") }".to_owned(),
        "{ adminSessionList(userId: \"vic\") { id } }".to_owned(),
        "mutation { adminSessionEnd(id: \"1-0011223344556677\") }".to_owned(),
        "{ adminUserInfo(userId: \"vic\") { sessionCount lastLoginTime } }".to_owned(),
    ];
    for operation in &operations {
        let as_user = uma.gql(operation, json!({})).await;
        assert_eq!(error_code(&as_user), "accessDenied", "{operation}");
        let with_token = app.gql_bearer(&umas, operation, json!({})).await;
        assert_eq!(
            error_code(&with_token),
            "accessDenied",
            "{operation} (Bearer)"
        );
        let anonymous = app.new_client().gql(operation, json!({})).await;
        assert_eq!(error_code(&anonymous), "authRequired", "{operation}");
    }
    assert_eq!(app.count("api_tokens"), 3, "nothing was revoked");
}
