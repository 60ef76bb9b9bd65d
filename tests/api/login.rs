use md5::{Digest as _, Md5};
use serde_json::json;

use crate::helpers::*;

fn client_hash(password: &str) -> String {
    Md5::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[tokio::test]
async fn first_start_creates_the_administrator_and_a_second_start_does_not() {
    let app = spawn_app().await;
    assert_eq!(app.count("users"), 1);
    let db_path = app.db_path.clone();

    let mut settings = lodge::Settings::default();
    settings.server.port = 0;
    app.same_database(&mut settings);
    assert_eq!(settings.database.path, db_path);
    settings.admin.user = "someone-else".into();
    let again = lodge::App::build(settings, lodge::Clock::system())
        .await
        .unwrap();
    assert!(again.created_admin.is_none());
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn a_generated_admin_password_is_returned_once_and_logs_in() {
    let app = spawn_app_with(|s| s.admin.password.clear()).await;
    assert_eq!(app.count("users"), 1);
    // The test server was built with a known password; build one with none on a fresh file.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = lodge::Settings::default();
    settings.server.port = 0;
    settings.database.path = dir.path().join("nested/folder/lodge.db");
    let built = lodge::App::build(settings, lodge::Clock::system())
        .await
        .unwrap();
    let (user, password) = built.created_admin.clone().unwrap();
    let password = password.expect("a generated password");
    assert_eq!(user, "admin");
    assert!(password.len() >= 16);
    let url = built.url();
    tokio::spawn(built.run());
    let response = reqwest::Client::new()
        .post(format!("{url}/api/gql"))
        .json(&json!({
            "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
            "variables": { "c": { "user": "admin", "password": password } }
        }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"]["authLogin"]["authStatus"], "SUCCESS", "{body}");
}

#[tokio::test]
async fn plain_password_and_md5_client_hash_both_log_in_and_set_a_cookie() {
    let app = spawn_app().await;
    for credential in [ADMIN_PASSWORD.to_owned(), client_hash(ADMIN_PASSWORD)] {
        let client = app.new_client();
        let response = client.login(ADMIN, &credential).await;
        assert_ok(&response);
        let login = &response["data"]["authLogin"];
        assert_eq!(login["authStatus"], "SUCCESS");
        assert_eq!(login["userTokens"][0]["userId"], ADMIN);
        assert!(login["authId"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(client.cookie().is_some(), "login sets cb-session-id");

        let me = client
            .gql(
                "{ activeUser { userId authRole isAnonymous teams { teamId } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            me["data"]["activeUser"],
            json!({ "userId": "admin", "authRole": "admin", "isAnonymous": false,
                    "teams": [{ "teamId": "admin" }, { "teamId": "user" }] })
        );
    }
}

#[tokio::test]
async fn every_password_failure_gets_the_same_answer() {
    let app = spawn_app().await;
    app.add_user("dora", "dora's password", "user").await;
    let admin = app.new_client();
    admin.login_admin().await;
    assert_ok(
        &admin
            .gql(
                "query { enableUser(userId: \"dora\", enabled: false) }",
                json!({}),
            )
            .await,
    );

    let cases = [
        ("wrong password", ADMIN, "not the password"),
        ("unknown user", "nobody", ADMIN_PASSWORD),
        ("disabled user", "dora", "dora's password"),
        ("empty password", ADMIN, ""),
        (
            "wrong client hash",
            ADMIN,
            "0123456789ABCDEF0123456789ABCDEF",
        ),
    ];
    for (case, user, password) in cases {
        let client = app.new_client();
        let response = client.login(user, password).await;
        assert_eq!(
            error_message(&response),
            "User authentication failed",
            "{case}"
        );
        assert_eq!(error_code(&response), "authFailed", "{case}");
        assert!(response["data"].is_null(), "{case}: {response}");
        assert!(client.cookie().is_none(), "{case}: no cookie on failure");
    }
}

#[tokio::test]
async fn stored_password_hashes_are_argon2id_with_owasp_parameters() {
    let app = spawn_app().await;
    app.add_user("erin", "erin's password", "user").await;
    let hashes = app.query_texts("SELECT password_hash FROM users");
    assert_eq!(hashes.len(), 2);
    for hash in hashes {
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }
}

#[tokio::test]
async fn login_asks_for_the_credentials_its_provider_needs() {
    let app = spawn_app().await;
    let cases = [
        (
            "authLogin(provider: \"local\", credentials: { user: \"admin\" })",
            "invalidInput",
        ),
        (
            "authLogin(provider: \"token\", credentials: { user: \"admin\" })",
            "invalidInput",
        ),
        (
            "authLogin(provider: \"ldap\", credentials: { user: \"admin\" })",
            "invalidInput",
        ),
    ];
    for (call, code) in cases {
        let response = app
            .gql(&format!("{{ {call} {{ authStatus }} }}"), json!({}))
            .await;
        assert_eq!(error_code(&response), code, "{call}");
    }
    let unknown_field = app
        .gql(
            "{ authLogin(provider: \"local\", credentials: { name: \"x\" }) { authStatus } }",
            json!({}),
        )
        .await;
    assert!(
        error_message(&unknown_field).contains("name"),
        "{unknown_field}"
    );
}

#[tokio::test]
async fn auth_providers_lists_local_and_token_with_their_credentials() {
    let app = spawn_app().await;
    let response = app
        .gql(
            "{ authProviders { id credentialProfiles { credentialParameters { id encryption } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response["data"]["authProviders"],
        json!([
            { "id": "local", "credentialProfiles": [{ "credentialParameters": [
                { "id": "user", "encryption": "plain" }, { "id": "password", "encryption": "hash" } ] }] },
            { "id": "token", "credentialProfiles": [{ "credentialParameters": [
                { "id": "token", "encryption": "plain" } ] }] },
        ])
    );
}

#[tokio::test]
async fn changing_the_own_password_needs_the_old_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let other = app.new_client();
    other.login_admin().await;
    app.login_admin().await;

    let wrong = app
        .gql(
            "{ authChangeLocalPassword(oldPassword: \"nope\", newPassword: \"a new password\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&wrong), "invalidInput");
    let short = app
        .gql(
            "query($old: String!) { authChangeLocalPassword(oldPassword: $old, newPassword: \"short\") }",
            json!({ "old": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&short), "invalidInput");

    let changed = app
        .gql(
            "query($old: String!) { authChangeLocalPassword(oldPassword: $old, newPassword: \"a new password\") }",
            json!({ "old": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(
        changed["data"]["authChangeLocalPassword"], true,
        "{changed}"
    );
    let still = app.gql("{ activeUser { userId } }", json!({})).await;
    assert_eq!(
        still["data"]["activeUser"]["userId"], ADMIN,
        "this session goes on"
    );
    let ended = other.gql("{ tokenApiList { tokenName } }", json!({})).await;
    assert_eq!(
        error_code(&ended),
        "sessionExpired",
        "the other session ended"
    );

    let old = app.new_client().login(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(error_code(&old), "authFailed");
    let new = app.new_client().login(ADMIN, "a new password").await;
    assert_ok(&new);
}

/// The response with the values that differ from one login to the next (the keys named in
/// `varying`) replaced, keeping the text as the server wrote it: key order and all.
fn without_varying(body: &str, varying: &[&str]) -> String {
    fn collect(value: &serde_json::Value, varying: &[&str], found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        serde_json::Value::String(s) if varying.contains(&key.as_str()) => {
                            found.push(s.clone());
                        }
                        other => collect(other, varying, found),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|v| collect(v, varying, found));
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    collect(&serde_json::from_str(body).unwrap(), varying, &mut found);
    found.iter().fold(body.to_owned(), |text, value| {
        text.replace(value.as_str(), "<varies>")
    })
}

/// Login documents of the shape scripts send run without juniper's executor (`graphql::direct`);
/// each must answer byte for byte what juniper answers. `@include(if: true)` on the field changes
/// nothing in the answer but makes juniper run the document, so each is sent both ways.
#[tokio::test]
async fn a_login_run_directly_answers_what_juniper_answers() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("direct").await;
    let cases = [
        (
            "query authLogin($credentials: Object) { authLogin(provider: \"token\", credentials: $credentials) @D { authId userTokens { userId } authStatus } }",
            json!({ "credentials": { "token": token } }),
        ),
        (
            "query ($token: String) {\n  login: authLogin(provider: \"token\", credentials: {token: $token}, linkUser: true) @D {\n    __typename id: authId redirectLink authStatus\n    userTokens { __typename authProvider authConfiguration at: loginTime userId displayName message }\n  }\n}",
            json!({ "token": token }),
        ),
        (
            "query ($p: ID! = \"token\", $c: Object, $f: Boolean) { authLogin(provider: $p, credentials: $c, forceSessionsLogout: $f, configuration: \"x\") @D { authStatus } }",
            json!({ "c": { "token": token }, "f": false }),
        ),
        (
            "query ($c: Object) { authLogin(provider: \"local\", credentials: $c) @D { authStatus userTokens { authProvider userId } } }",
            json!({ "c": { "user": ADMIN, "password": ADMIN_PASSWORD } }),
        ),
        // Failures: a wrong token, missing credentials, an unknown provider.
        (
            "query ($c: Object) {\n    authLogin(provider: \"token\", credentials: $c) @D { authId } }",
            json!({ "c": { "token": "lodge_not_a_token" } }),
        ),
        (
            "{ authLogin(provider: \"token\", credentials: {}) @D { authId } }",
            json!({}),
        ),
        ("{ authLogin(provider: \"ldap\") @D { authId } }", json!({})),
        // Where the error is placed: after a byte-order mark, a comment, tabs, an alias; after
        // Windows line ends (left to juniper).
        (
            "\u{feff}# ü\n\tquery ($c: Object) {\n\t\tfailed: authLogin(provider: \"token\", credentials: $c) @D { authId } }",
            json!({ "c": { "token": "lodge_not_a_token" } }),
        ),
        (
            "query ($c: Object) {\r\n  authLogin(provider: \"token\", credentials: $c) @D { authId }\r\n}",
            json!({ "c": { "token": "lodge_not_a_token" } }),
        ),
        // Variables juniper refuses: the direct path leaves them to juniper, which says why.
        (
            "query ($c: Object) { authLogin(provider: \"token\", credentials: $c) @D { authId } }",
            json!({ "c": { "token": 5 } }),
        ),
        (
            "query ($p: ID!) { authLogin(provider: $p) @D { authId } }",
            json!({}),
        ),
    ];
    for (document, variables) in cases {
        let mut bodies = Vec::new();
        for directive in ["", "@include(if: true)"] {
            let client = app.new_client();
            let query = document.replace("@D", directive);
            let response = client
                .post(&json!({ "query": query, "variables": variables }), &[])
                .await;
            assert_eq!(response.status(), 200);
            let body = response.text().await.unwrap();
            let succeeded = body.contains("\"SUCCESS\"");
            assert_eq!(client.cookie().is_some(), succeeded, "{query}: {body}");
            bodies.push(without_varying(&body, &["authId", "id", "at", "loginTime"]));
        }
        assert_eq!(bodies[0], bodies[1], "{document}");
    }
}
