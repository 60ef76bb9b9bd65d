use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn administrators_create_list_and_inspect_users() {
    let app = spawn_app().await;
    app.login_admin().await;
    let created = app
        .gql(
            "{ createUser(userId: \"  frank \", enabled: true, authRole: \"user\") {
                 userId enabled authRole grantedTeams grantedConnections { dataSourceId } metaParameters } }",
            json!({}),
        )
        .await;
    assert_eq!(
        created["data"]["createUser"],
        json!({ "userId": "frank", "enabled": true, "authRole": "user", "grantedTeams": ["user"],
                "grantedConnections": [], "metaParameters": {} })
    );
    let again = app
        .gql(
            "{ createUser(userId: \"FRANK\", enabled: true) { userId } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&again),
        "alreadyExists",
        "user ids are unique in any case"
    );

    let listed = app
        .gql(
            "{ listUsers(page: {limit: 10}, filter: {userIdMask: \"RAN\"}) { userId } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["listUsers"], json!([{ "userId": "frank" }]));
    let all = app
        .gql(
            "{ listUsers(page: {}, filter: {}) { userId authRole } }",
            json!({}),
        )
        .await;
    assert_eq!(
        all["data"]["listUsers"],
        json!([{ "userId": "admin", "authRole": "admin" }, { "userId": "frank", "authRole": "user" }])
    );
    let info = app
        .gql(
            "{ adminUserInfo(userId: \"frank\") { userId enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(
        info["data"]["adminUserInfo"],
        json!({ "userId": "frank", "enabled": true })
    );
    let missing = app
        .gql("{ adminUserInfo(userId: \"ghost\") { userId } }", json!({}))
        .await;
    assert_eq!(error_code(&missing), "notFound");
}

#[tokio::test]
async fn bad_user_ids_and_roles_are_refused_with_a_reason() {
    let app = spawn_app().await;
    app.login_admin().await;
    let long = "x".repeat(65);
    let cases = [
        (
            "empty",
            "{ createUser(userId: \"  \", enabled: true) { userId } }".to_owned(),
        ),
        (
            "too long",
            format!("{{ createUser(userId: \"{long}\", enabled: true) {{ userId }} }}"),
        ),
        (
            "a space inside",
            "{ createUser(userId: \"a b\", enabled: true) { userId } }".to_owned(),
        ),
        (
            "a markup character",
            "{ createUser(userId: \"<b>\", enabled: true) { userId } }".to_owned(),
        ),
        (
            "an unknown role",
            "{ createUser(userId: \"ok\", enabled: true, authRole: \"root\") { userId } }"
                .to_owned(),
        ),
    ];
    for (case, query) in cases {
        let response = app.gql(&query, json!({})).await;
        assert_eq!(error_code(&response), "invalidInput", "{case}: {response}");
    }
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn only_administrators_manage_users() {
    let app = spawn_app().await;
    app.add_user("gina", "gina's password", "user").await;
    let operations = [
        "{ createUser(userId: \"x\", enabled: true) { userId } }",
        "{ deleteUser(userId: \"admin\") }",
        "{ listUsers(page: {}, filter: {}) { userId } }",
        "{ adminUserInfo(userId: \"admin\") { userId } }",
        "{ setUserCredentials(userId: \"admin\", providerId: \"local\", credentials: {password: \"hijacked!\"}) }",
        "{ enableUser(userId: \"admin\", enabled: false) }",
        "{ setUserAuthRole(userId: \"gina\", authRole: \"admin\") }",
    ];
    let anonymous = app.new_client();
    let gina = app.new_client();
    assert_ok(&gina.login("gina", "gina's password").await);
    for operation in operations {
        assert_eq!(
            error_code(&anonymous.gql(operation, json!({})).await),
            "authRequired",
            "{operation}"
        );
        assert_eq!(
            error_code(&gina.gql(operation, json!({})).await),
            "accessDenied",
            "{operation}"
        );
    }
    assert_eq!(app.count("users"), 2);
    assert_ok(&app.new_client().login(ADMIN, ADMIN_PASSWORD).await);
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_refuses_login() {
    let app = spawn_app().await;
    app.add_user("hank", "hank's password", "user").await;
    let hank = app.new_client();
    assert_ok(&hank.login("hank", "hank's password").await);
    app.login_admin().await;
    assert_ok(
        &app.gql(
            "{ enableUser(userId: \"hank\", enabled: false) }",
            json!({}),
        )
        .await,
    );

    assert_eq!(
        error_code(&hank.gql("{ tokenApiList { tokenName } }", json!({})).await),
        "sessionExpired"
    );
    assert_eq!(
        error_code(&hank.login("hank", "hank's password").await),
        "authFailed"
    );

    assert_ok(
        &app.gql("{ enableUser(userId: \"hank\", enabled: true) }", json!({}))
            .await,
    );
    assert_ok(&hank.login("hank", "hank's password").await);
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions() {
    let app = spawn_app().await;
    app.add_user("ivy", "ivy's password", "user").await;
    let ivy = app.new_client();
    assert_ok(&ivy.login("ivy", "ivy's password").await);
    app.login_admin().await;
    assert_eq!(
        app.gql("{ deleteUser(userId: \"ivy\") }", json!({})).await["data"]["deleteUser"],
        true
    );
    assert_eq!(
        error_code(&ivy.gql("{ tokenApiList { tokenName } }", json!({})).await),
        "sessionExpired"
    );
    assert_eq!(
        error_code(&ivy.login("ivy", "ivy's password").await),
        "authFailed"
    );
    assert_eq!(app.count("users"), 1);
}

#[tokio::test]
async fn administrators_cannot_lock_themselves_out() {
    let app = spawn_app().await;
    app.login_admin().await;
    for operation in [
        "{ deleteUser(userId: \"admin\") }",
        "{ enableUser(userId: \"admin\", enabled: false) }",
        "{ setUserAuthRole(userId: \"admin\", authRole: \"user\") }",
    ] {
        assert_eq!(
            error_code(&app.gql(operation, json!({})).await),
            "invalidInput",
            "{operation}"
        );
    }
    assert_eq!(
        app.gql("{ activeUser { authRole } }", json!({})).await["data"]["activeUser"]["authRole"],
        "admin"
    );
}

#[tokio::test]
async fn changing_a_role_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    app.add_user("jack", "jack's password", "user").await;
    let jack = app.new_client();
    assert_ok(&jack.login("jack", "jack's password").await);
    assert_eq!(
        error_code(
            &jack
                .gql("{ listUsers(page: {}, filter: {}) { userId } }", json!({}))
                .await
        ),
        "accessDenied"
    );
    app.login_admin().await;
    assert_ok(
        &app.gql(
            "{ setUserAuthRole(userId: \"jack\", authRole: \"admin\") }",
            json!({}),
        )
        .await,
    );
    assert_ok(
        &jack
            .gql("{ listUsers(page: {}, filter: {}) { userId } }", json!({}))
            .await,
    );
}

#[tokio::test]
async fn setting_credentials_replaces_the_password_and_ends_sessions() {
    let app = spawn_app().await;
    app.add_user("kim", "kim's first password", "user").await;
    let kim = app.new_client();
    assert_ok(&kim.login("kim", "kim's first password").await);
    app.login_admin().await;
    let short = app
        .gql("{ setUserCredentials(userId: \"kim\", providerId: \"local\", credentials: {password: \"short\"}) }", json!({}))
        .await;
    assert_eq!(error_code(&short), "invalidInput");
    let other = app
        .gql("{ setUserCredentials(userId: \"kim\", providerId: \"token\", credentials: {password: \"long enough\"}) }", json!({}))
        .await;
    assert_eq!(error_code(&other), "invalidInput");
    assert_ok(
        &app.gql("{ setUserCredentials(userId: \"kim\", providerId: \"local\", credentials: {password: \"kim's second password\"}) }", json!({}))
            .await,
    );
    assert_eq!(
        error_code(&kim.gql("{ tokenApiList { tokenName } }", json!({})).await),
        "sessionExpired"
    );
    assert_eq!(
        error_code(&kim.login("kim", "kim's first password").await),
        "authFailed"
    );
    assert_ok(&kim.login("kim", "kim's second password").await);
}

#[tokio::test]
async fn a_user_created_without_credentials_cannot_log_in() {
    let app = spawn_app().await;
    app.login_admin().await;
    assert_ok(
        &app.gql(
            "{ createUser(userId: \"lee\", enabled: true) { userId } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        error_code(&app.new_client().login("lee", "").await),
        "authFailed"
    );
    assert_eq!(
        error_code(&app.new_client().login("lee", "whatever password").await),
        "authFailed"
    );
}

#[tokio::test]
async fn user_ids_are_normalised_and_confusable_ones_refused() {
    let app = spawn_app().await;
    app.login_admin().await;
    let create = |id: &str| {
        app.gql(
            "query($id: ID!) { createUser(userId: $id, enabled: true) { userId } }",
            json!({ "id": id }),
        )
    };
    let refused = [
        ("a Cyrillic а among Latin letters", "\u{430}dmin"),
        ("Greek and Latin", "\u{3b1}lpha-beta"),
        ("a right-to-left override", "ad\u{202e}nim"),
        ("a zero-width space", "ad\u{200b}min"),
        ("a byte order mark", "\u{feff}root"),
        ("a newline", "a\nb"),
    ];
    for (case, id) in refused {
        let response = create(id).await;
        assert_eq!(error_code(&response), "invalidInput", "{case}: {response}");
    }
    // Full-width letters are the same id as plain ones after NFKC: `admin` exists already.
    let full_width = create("\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}").await;
    assert_eq!(error_code(&full_width), "alreadyExists", "{full_width}");
    let accented = create("Zo\u{0065}\u{0301}").await;
    assert_eq!(
        accented["data"]["createUser"]["userId"], "Zo\u{e9}",
        "{accented}"
    );
    let cyrillic = create("\u{431}\u{43e}\u{440}\u{438}\u{441}").await;
    assert_ok(&cyrillic);
    assert_eq!(app.count("users"), 3);

    // A login with the full-width spelling finds the administrator.
    let login = app
        .new_client()
        .login("\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}", ADMIN_PASSWORD)
        .await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );
}

#[tokio::test]
async fn a_demoted_administrators_own_tokens_are_suspended_until_promoted_again() {
    let app = spawn_app().await;
    app.login_admin().await;
    app.add_user("nora", "nora's password", "admin").await;
    let nora = app.new_client();
    assert_ok(&nora.login("nora", "nora's password").await);
    let made = nora.new_token("nora's deploy").await;
    let token_session = app.new_client();
    assert_ok(&token_session.login_with_token(&made).await);
    // The operator's grant on the command line is not suspended (made here as the CLI does).
    let nora_user = app.auth.users().user("nora").await.unwrap();
    let granted = app
        .auth
        .tokens()
        .create_token(
            &lodge::auth::Actor::command_line(),
            &nora_user,
            &lodge::auth::TokenName::parse("granted").unwrap(),
            lodge::auth::Expiry::Default,
            None,
        )
        .await
        .unwrap()
        .secret
        .expose()
        .to_owned();
    let set_role = |role: &str| {
        app.gql(
            "query($r: String) { setUserAuthRole(userId: \"nora\", authRole: $r) }",
            json!({ "r": role }),
        )
    };
    let active = "{ activeUser { userId } }";
    let needs_user = "{ tokenApiList { tokenName } }";

    assert_ok(&set_role("user").await);
    let refused = app.new_client().login_with_token(&made).await;
    assert_eq!(error_code(&refused), "authFailed", "{refused}");
    assert_eq!(
        error_code(&app.gql_bearer(&made, needs_user, json!({})).await),
        "authFailed"
    );
    assert_eq!(
        error_code(&token_session.gql(needs_user, json!({})).await),
        "sessionExpired",
        "the session the token opened ends"
    );
    let granted_login = app.gql_bearer(&granted, active, json!({})).await;
    assert_eq!(
        granted_login["data"]["activeUser"]["userId"], "nora",
        "{granted_login}"
    );
    let detail = app
        .gql(
            "{ auditLog(filter: {kind: \"session.end\"}) { detail } }",
            json!({}),
        )
        .await;
    assert!(
        detail.to_string().contains("no longer an administrator"),
        "{detail}"
    );

    assert_ok(&set_role("admin").await);
    let again = app.gql_bearer(&made, active, json!({})).await;
    assert_eq!(again["data"]["activeUser"]["userId"], "nora", "{again}");
}

/// The upper-case hex MD5 of `password`: CloudBeaver's client hash.
fn client_hash(password: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[tokio::test]
async fn a_client_hash_sets_a_password_only_while_accepted_and_never_the_empty_one() {
    let set = |hash: &str| {
        format!(
            "{{ setUserCredentials(userId: \"kim\", providerId: \"local\", credentials: {{password: \"{hash}\"}}) }}"
        )
    };
    let change = "query($old: String!, $new: String!) {
        authChangeLocalPassword(oldPassword: $old, newPassword: $new) }";

    let app = spawn_app().await;
    app.add_user("kim", "kim's first password", "user").await;
    app.login_admin().await;
    for (case, hash) in [
        ("the empty password", client_hash("")),
        (
            "the empty password, lower case",
            client_hash("").to_lowercase(),
        ),
    ] {
        let refused = app.gql(&set(&hash), json!({})).await;
        assert_eq!(error_code(&refused), "invalidInput", "{case}: {refused}");
        assert!(error_message(&refused).contains("empty"), "{refused}");
    }
    // On (the default), as CloudBeaver's web client sends it: the hash sets the password.
    assert_ok(
        &app.gql(&set(&client_hash("kim's hashed password")), json!({}))
            .await,
    );
    let kim = app.new_client();
    assert_ok(&kim.login("kim", "kim's hashed password").await);
    let empty = kim
        .gql(
            change,
            json!({ "old": "kim's hashed password", "new": client_hash("") }),
        )
        .await;
    assert_eq!(error_code(&empty), "invalidInput", "{empty}");

    let strict = spawn_app_with(|s| s.password.accept_client_hash = false).await;
    strict.add_user("kim", "kim's first password", "user").await;
    strict.login_admin().await;
    let refused = strict
        .gql(&set(&client_hash("kim's hashed password")), json!({}))
        .await;
    assert_eq!(error_code(&refused), "invalidInput", "{refused}");
    assert!(
        error_message(&refused).contains("password.accept_client_hash"),
        "{refused}"
    );
    let kim = strict.new_client();
    assert_ok(&kim.login("kim", "kim's first password").await);
    let refused = kim
        .gql(
            change,
            json!({ "old": "kim's first password", "new": client_hash("x") }),
        )
        .await;
    assert_eq!(error_code(&refused), "invalidInput", "{refused}");
    assert_ok(
        &kim.gql(
            change,
            json!({ "old": "kim's first password", "new": "kim's second password" }),
        )
        .await,
    );
    // Logins still take the hash: CloudBeaver's client logs in with it.
    assert_ok(
        &strict
            .new_client()
            .login("kim", &client_hash("kim's second password"))
            .await,
    );
}
