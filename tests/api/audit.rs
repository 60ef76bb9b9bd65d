use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::helpers::*;

const LOG: &str = "query($filter: AuditFilter, $page: PageInput) {
  auditLog(filter: $filter, page: $page) { time kind success userId provider tokenName address detail }
}";

async fn events(app: &TestApp, filter: Value) -> Vec<Value> {
    let response = app
        .gql(LOG, json!({ "filter": filter, "page": { "limit": 1000 } }))
        .await;
    assert_ok(&response);
    response["data"]["auditLog"].as_array().unwrap().clone()
}

fn find<'a>(events: &'a [Value], kind: &str, success: bool) -> &'a Value {
    events
        .iter()
        .find(|e| e["kind"] == kind && e["success"] == success)
        .unwrap_or_else(|| panic!("no {kind} (success {success}) in {events:#?}"))
}

/// Runs one of every audited action; returns every secret it used.
async fn exercise(app: &TestApp) -> Vec<String> {
    let mut secrets = vec![ADMIN_PASSWORD.to_owned(), "wrong password".to_owned()];
    app.new_client().login(ADMIN, "wrong password").await;
    app.login_admin().await;
    secrets.push(app.cookie().unwrap());
    let token = app.new_token("audited").await;
    secrets.push(token.clone());
    let scripted = app.new_client();
    scripted.login_with_token(&token).await;
    secrets.push(scripted.cookie().unwrap());
    app.gql_bearer(
        "lodge_not_a_real_token",
        "{ tokenApiList { tokenName } }",
        json!({}),
    )
    .await;
    app.gql(
        "mutation { tokenApiDelete(tokenName: \"audited\") }",
        json!({}),
    )
    .await;

    app.add_user("walt", "walt's password", "user").await;
    secrets.push("walt's password".to_owned());
    app.gql(
        "{ setUserAuthRole(userId: \"walt\", authRole: \"admin\") }",
        json!({}),
    )
    .await;
    let walt = app.new_client();
    walt.login("walt", "walt's password").await;
    walt.gql(
        "{ authChangeLocalPassword(oldPassword: \"walt's password\", newPassword: \"walt's new password\") }",
        json!({}),
    )
    .await;
    secrets.push("walt's new password".to_owned());
    walt.gql("{ authLogout }", json!({})).await;
    app.gql(
        "{ enableUser(userId: \"walt\", enabled: false) }",
        json!({}),
    )
    .await;
    app.gql("{ deleteUser(userId: \"walt\") }", json!({})).await;

    let idle = app.new_client();
    idle.login_admin().await;
    secrets.push(idle.cookie().unwrap());
    app.advance(SignedDuration::from_mins(31));
    idle.gql("{ activeUser { userId } }", json!({})).await;
    app.login_admin().await;
    secrets.push(app.cookie().unwrap());
    secrets
}

#[tokio::test]
async fn the_audit_log_records_every_kind_of_event() {
    let app = spawn_app().await;
    exercise(&app).await;
    let all = events(&app, json!({})).await;

    let failed = all
        .iter()
        .find(|e| e["kind"] == "login" && e["provider"] == "local" && e["success"] == false)
        .expect("a failed password login");
    assert_eq!(failed["userId"], "admin");
    assert_eq!(failed["provider"], "local");
    assert_eq!(failed["address"], "127.0.0.1");
    let token_login = all
        .iter()
        .find(|e| e["kind"] == "login" && e["provider"] == "token")
        .expect("a token login");
    assert_eq!(token_login["tokenName"], "audited");
    assert_eq!(token_login["userId"], "admin");
    assert!(
        all.iter()
            .any(|e| e["provider"] == "bearer" && e["success"] == false)
    );
    assert_eq!(find(&all, "token.create", true)["tokenName"], "audited");
    let deleted = find(&all, "token.delete", true);
    assert!(
        deleted["detail"]
            .as_str()
            .unwrap()
            .contains("1 sessions ended"),
        "{deleted}"
    );
    assert_eq!(find(&all, "user.create", true)["userId"], "walt");
    assert!(
        find(&all, "user.update", true)["detail"]
            .as_str()
            .unwrap()
            .contains("by admin")
    );
    assert_eq!(find(&all, "user.delete", true)["userId"], "walt");
    assert_eq!(find(&all, "password.change", true)["userId"], "walt");
    assert_eq!(find(&all, "logout", true)["userId"], "walt");
    assert_eq!(find(&all, "session.end", true)["detail"], "idle timeout");

    // Newest first.
    let times: Vec<&str> = all.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
}

#[tokio::test]
async fn no_secret_reaches_the_audit_log_or_the_database() {
    let app = spawn_app().await;
    let secrets = exercise(&app).await;
    let log = serde_json::to_string(&events(&app, json!({})).await).unwrap();
    let mut files = Vec::new();
    for suffix in ["", "-wal"] {
        files.push(std::fs::read(format!("{}{suffix}", app.db_path.display())).unwrap_or_default());
    }
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret in the audit log");
        for file in &files {
            assert!(
                !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret in the database file"
            );
        }
    }
}

#[tokio::test]
async fn the_audit_log_filters_and_is_for_administrators_only() {
    let app = spawn_app().await;
    exercise(&app).await;
    let walt = events(&app, json!({ "userId": "WALT" })).await;
    assert!(!walt.is_empty() && walt.iter().all(|e| e["userId"] == "walt"));
    let creates = events(&app, json!({ "kind": "token.create" })).await;
    assert_eq!(creates.len(), 1);
    let future = app.clock.now() + SignedDuration::from_hours(1);
    assert!(
        events(&app, json!({ "since": future.to_string() }))
            .await
            .is_empty()
    );

    let unknown = app
        .gql(LOG, json!({ "filter": { "kind": "nonsense" } }))
        .await;
    assert_eq!(error_code(&unknown), "invalidInput");
    app.add_user("xena", "xena's password", "user").await;
    let xena = app.new_client();
    xena.login("xena", "xena's password").await;
    assert_eq!(error_code(&xena.gql(LOG, json!({})).await), "accessDenied");
    assert_eq!(
        error_code(&app.new_client().gql(LOG, json!({})).await),
        "authRequired"
    );
}

#[tokio::test]
async fn events_older_than_the_retention_are_removed() {
    let app = spawn_app().await;
    app.login_admin().await;
    app.new_token("old").await;
    app.advance(SignedDuration::from_hours(24 * 91));
    app.auth.housekeeping().await.unwrap();
    app.login_admin().await;
    let left = events(&app, json!({})).await;
    assert_eq!(left.len(), 1, "only the login after the purge: {left:#?}");
    assert_eq!(left[0]["kind"], "login");
}

#[tokio::test]
async fn beyond_the_event_limit_the_oldest_events_are_removed() {
    let app = spawn_app_with(|s| s.audit.max_events = 4).await;
    for _ in 0..6 {
        app.login_admin().await;
    }
    app.new_token("newest").await;
    app.auth.housekeeping().await.unwrap();
    let left = events(&app, json!({})).await;
    assert_eq!(left.len(), 4, "{left:#?}");
    assert_eq!(
        left[0]["kind"], "token.create",
        "the newest stay: {left:#?}"
    );
}

/// Every kind the audit log records is named where people choose one: the schema's filter
/// description and the Audit tab's list.
#[test]
fn every_audit_kind_is_offered_by_the_schema_and_the_page() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema = std::fs::read_to_string(root.join("schema.graphql")).unwrap();
    let page = std::fs::read_to_string(root.join("static/audit.js")).unwrap();
    for kind in lodge::auth::audit::kind::ALL {
        assert!(
            schema.contains(&format!("`{kind}`")),
            "schema.graphql: {kind}"
        );
        assert!(
            page.contains(&format!("\"{kind}\"")),
            "static/audit.js: {kind}"
        );
    }
}

#[tokio::test]
async fn a_failed_token_names_the_token_it_matched_and_never_its_secret() {
    let app = spawn_app_with(|s| s.tokens.admins_only = false).await;
    app.login_admin().await;
    app.add_user("olga", "olga's password", "user").await;
    let olga = app.new_client();
    olga.login("olga", "olga's password").await;
    let brief = olga.create_token("brief", "DAY").await["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let owned = olga.new_token("owned").await;
    let deleted = olga.new_token("gone").await;
    assert_ok(
        &olga
            .gql(
                "mutation { tokenApiDelete(tokenName: \"gone\") }",
                json!({}),
            )
            .await,
    );
    app.advance(SignedDuration::from_hours(25));
    app.login_admin().await;

    // Expired: by login and by Bearer.
    app.new_client().login_with_token(&brief).await;
    app.new_client()
        .gql_bearer(&brief, "{ tokenApiList { tokenName } }", json!({}))
        .await;
    // Deleted, and a malformed one: no row to name.
    app.new_client().login_with_token(&deleted).await;
    app.new_client().login_with_token("lodge_nonsense").await;
    // Its owner disabled.
    assert_ok(
        &app.gql(
            "{ enableUser(userId: \"olga\", enabled: false) }",
            json!({}),
        )
        .await,
    );
    app.new_client().login_with_token(&owned).await;

    let failed: Vec<Value> = events(&app, json!({ "kind": "login" }))
        .await
        .into_iter()
        .filter(|e| e["success"] == false)
        .collect();
    let with = |token: Option<&str>, detail: &str| {
        failed
            .iter()
            .filter(|e| {
                e["tokenName"].as_str() == token && e["detail"].as_str().unwrap().contains(detail)
            })
            .count()
    };
    assert_eq!(with(Some("brief"), "expired"), 2, "{failed:#?}");
    assert!(
        failed.iter().any(|e| e["tokenName"] == "brief"
            && e["userId"] == "olga"
            && e["provider"] == "bearer")
    );
    assert_eq!(with(None, "unknown or deleted"), 1, "{failed:#?}");
    assert_eq!(with(None, "malformed"), 1, "{failed:#?}");
    assert_eq!(with(Some("owned"), "owner is disabled"), 1, "{failed:#?}");
    let text = serde_json::to_string(&failed).unwrap();
    for secret in [&brief, &owned, &deleted] {
        assert!(!text.contains(&secret[..20]), "never a secret: {text}");
    }
}
