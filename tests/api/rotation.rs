//! `tokenApiRotate`: a new secret for the same token, the previous one kept for a grace period.

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::{forward_auth::verify, helpers::*};

const ROTATE: &str = "mutation($name: String!, $grace: Int) {
  tokenApiRotate(tokenName: $name, lifetime: MONTH, graceSeconds: $grace) { tokenName token expireTime }
}";

async fn rotate(app: &TestApp, name: &str, grace: i64) -> Value {
    app.gql(ROTATE, json!({ "name": name, "grace": grace }))
        .await
}

fn secret(rotated: &Value) -> String {
    rotated["data"]["tokenApiRotate"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("rotated: {rotated}"))
        .to_owned()
}

async fn works(app: &TestApp, token: &str) -> bool {
    let answer = app
        .gql_bearer(token, "{ activeUser { userId } }", json!({}))
        .await;
    answer["data"]["activeUser"]["userId"] == "admin"
}

#[tokio::test]
async fn the_previous_secret_works_for_its_grace_then_dies_with_its_sessions() {
    let app = spawn_app().await;
    app.login_admin().await;
    let old = app.new_token("ci").await;
    // The quota is full: a rotation does not count toward it.
    for name in ["b", "c", "d", "e"] {
        app.new_token(name).await;
    }
    let job = app.new_client();
    assert_ok(&job.login_with_token(&old).await);

    let new = secret(&rotate(&app, "ci", 3600).await);
    assert_ne!(new, old);
    assert_eq!(app.count("api_tokens"), 5, "the same token, not a new one");
    assert!(works(&app, &new).await, "the new secret works");
    assert!(works(&app, &old).await, "the old one during its grace");
    let bearer = format!("Bearer {old}");
    assert_eq!(
        verify(&app, &[("Authorization", &bearer)]).await.status(),
        200
    );
    let listed = app
        .gql("{ tokenApiList { tokenName graceExpireTime } }", json!({}))
        .await;
    let grace_end = (app.clock.now() + SignedDuration::from_hours(1)).to_string();
    assert_eq!(
        listed["data"]["tokenApiList"][0]["graceExpireTime"],
        json!(grace_end)
    );
    let me = "{ activeUser { userId } }";
    assert_eq!(
        job.gql(me, json!({})).await["data"]["activeUser"]["userId"],
        "admin"
    );

    app.advance(SignedDuration::from_hours(1));
    app.login_admin().await;
    assert!(!works(&app, &old).await, "refused once the grace is over");
    assert_eq!(
        verify(&app, &[("Authorization", &bearer)]).await.status(),
        401
    );
    assert!(works(&app, &new).await);
    assert!(
        job.gql(me, json!({})).await["data"]["activeUser"].is_null(),
        "the old secret's session ended with its grace"
    );
    let listed = app
        .gql("{ tokenApiList { tokenName graceExpireTime } }", json!({}))
        .await;
    assert!(listed["data"]["tokenApiList"][0]["graceExpireTime"].is_null());
    let events = app
        .gql(
            "{ auditLog(filter: {kind: \"token.rotate\"}) { tokenName detail } }",
            json!({}),
        )
        .await;
    assert_eq!(
        events["data"]["auditLog"][0],
        json!({ "tokenName": "ci", "detail": "the previous secret works for 1h more by admin" })
    );
}

#[tokio::test]
async fn without_a_grace_the_old_secret_and_its_sessions_end_at_once() {
    let app = spawn_app().await;
    app.login_admin().await;
    let old = app.new_token("ci").await;
    let job = app.new_client();
    assert_ok(&job.login_with_token(&old).await);
    let new = secret(&rotate(&app, "ci", 0).await);
    assert!(!works(&app, &old).await);
    assert!(works(&app, &new).await);
    let listed = app.gql("{ sessionList { tokenName } }", json!({})).await;
    assert_eq!(
        listed["data"]["sessionList"].as_array().unwrap().len(),
        1,
        "only the page's own session is listed: {listed}"
    );
    let after = job.gql("{ activeUser { userId } }", json!({})).await;
    assert!(after["data"]["activeUser"].is_null(), "{after}");
    // The new secret's own session is not touched.
    let fresh = app.new_client();
    assert_ok(&fresh.login_with_token(&new).await);
    let seen = fresh.gql("{ activeUser { userId } }", json!({})).await;
    assert_eq!(seen["data"]["activeUser"]["userId"], "admin");
}

#[tokio::test]
async fn a_rotation_during_a_grace_ends_that_grace_and_limits_keep() {
    let app = spawn_app().await;
    app.login_admin().await;
    let first = app
        .gql(
            "mutation { tokenApiCreate(tokenName: \"ci\", scopes: [\"read_api\"]) { token } }",
            json!({}),
        )
        .await["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = secret(&rotate(&app, "ci", 3600).await);
    let third = secret(&rotate(&app, "ci", 3600).await);
    assert!(!works(&app, &first).await, "at most two live secrets");
    assert!(works(&app, &second).await);
    assert!(works(&app, &third).await);
    let scopes = app.gql("{ tokenApiList { scopes } }", json!({})).await;
    assert_eq!(
        scopes["data"]["tokenApiList"][0]["scopes"],
        json!(["read_api"]),
        "kept"
    );
    let stronger = app
        .gql_bearer(
            &third,
            "mutation { tokenApiCreate(tokenName: \"x\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&stronger), "accessDenied");
}

#[tokio::test]
async fn a_grace_beyond_the_maximum_or_an_unknown_token_is_refused() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("ci").await;
    let too_long = rotate(&app, "ci", 7 * 24 * 3600 + 1).await;
    assert_eq!(error_code(&too_long), "invalidInput", "{too_long}");
    assert!(error_message(&too_long).contains("tokens.max_rotation_grace"));
    let negative = rotate(&app, "ci", -1).await;
    assert_eq!(error_code(&negative), "invalidInput");
    assert!(works(&app, &token).await, "nothing changed");
    let unknown = rotate(&app, "nope", 0).await;
    assert_eq!(error_code(&unknown), "notFound", "{unknown}");
    assert_ok(&rotate(&app, "ci", 7 * 24 * 3600).await);
}

/// `tokenApiRotate` of `name` with `lifetime`, or none, and no grace.
async fn rotate_with(app: &TestApp, name: &str, lifetime: Option<&str>) -> Value {
    let lifetime = lifetime.map_or(String::new(), |l| format!(", lifetime: {l}"));
    app.gql(
        &format!(
            "mutation($name: String!) {{
               tokenApiRotate(tokenName: $name{lifetime}) {{ tokenName token expireTime }}
             }}"
        ),
        json!({ "name": name }),
    )
    .await
}

fn expiry(answer: &Value) -> Option<jiff::Timestamp> {
    answer["data"]["tokenApiRotate"]["expireTime"]
        .as_str()
        .map(|t| t.parse().unwrap())
}

#[tokio::test]
async fn a_rotation_without_a_lifetime_keeps_the_tokens_own_rule() {
    let app = spawn_app().await;
    app.login_admin().await;
    for (name, lifetime) in [("yearly", "YEAR"), ("forever", "NEVER"), ("daily", "DAY")] {
        assert_ok(&app.create_token(name, lifetime).await);
    }
    let dated = app
        .gql(
            "mutation($at: DateTime!) { tokenApiCreate(tokenName: \"dated\", expiresAt: $at) { token } }",
            json!({ "at": (app.clock.now() + SignedDuration::from_hours(36)).to_string() }),
        )
        .await;
    assert_ok(&dated);
    app.advance(SignedDuration::from_hours(10));
    app.login_admin().await;
    let now = app.clock.now().to_zoned(jiff::tz::TimeZone::UTC);

    let yearly = rotate_with(&app, "yearly", None).await;
    assert_ok(&yearly);
    assert_eq!(
        expiry(&yearly),
        Some(
            now.checked_add(jiff::Span::new().years(1))
                .unwrap()
                .timestamp()
        ),
        "a year from the rotation, not tokens.default_lifetime: {yearly}"
    );
    let forever = rotate_with(&app, "forever", None).await;
    assert_ok(&forever);
    assert_eq!(expiry(&forever), None, "still never expires: {forever}");
    let daily = rotate_with(&app, "daily", None).await;
    assert_eq!(
        expiry(&daily),
        Some(now.timestamp() + SignedDuration::from_hours(24))
    );
    let dated = rotate_with(&app, "dated", None).await;
    assert_eq!(
        expiry(&dated),
        Some(now.timestamp() + SignedDuration::from_hours(36)),
        "as long as it was made for"
    );
    // A lifetime asked for is the new rule, kept by the next rotation.
    assert_ok(&rotate_with(&app, "yearly", Some("WEEK")).await);
    app.advance(SignedDuration::from_hours(1));
    app.login_admin().await;
    let again = rotate_with(&app, "yearly", None).await;
    assert_eq!(
        expiry(&again),
        Some(app.clock.now() + SignedDuration::from_hours(7 * 24))
    );
    let listed = app
        .gql("{ tokenApiList { tokenName expireTime } }", json!({}))
        .await;
    let yearly = listed["data"]["tokenApiList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tokenName"] == "yearly")
        .unwrap()
        .clone();
    assert_eq!(
        yearly["expireTime"].as_str().map(|t| t.parse().unwrap()),
        expiry(&again),
        "{listed}"
    );
}

#[tokio::test]
async fn an_expired_token_is_not_rotated() {
    let app = spawn_app().await;
    app.login_admin().await;
    assert_ok(&app.create_token("brief", "DAY").await);
    app.advance(SignedDuration::from_hours(25));
    app.login_admin().await;
    for lifetime in [None, Some("MONTH")] {
        let refused = rotate_with(&app, "brief", lifetime).await;
        assert_eq!(error_code(&refused), "invalidInput", "{refused}");
        assert!(
            error_message(&refused).contains("expired"),
            "{}",
            error_message(&refused)
        );
    }
}

#[tokio::test]
async fn under_admins_only_a_users_rotation_keeps_the_expiry_an_administrator_gave() {
    let app = spawn_app().await;
    app.add_user("ned", "ned's password", "user").await;
    let dir = app.db_path.parent().unwrap().to_owned();
    let given = crate::binary::lodge(&dir)
        .args([
            "token",
            "create",
            "--user",
            "ned",
            "--name",
            "ci",
            "--lifetime",
            "week",
        ])
        .output()
        .unwrap();
    assert!(given.status.success(), "{given:?}");
    let ned = app.new_client();
    ned.login("ned", "ned's password").await;

    for longer in ["NEVER", "YEAR", "MONTH"] {
        let refused = rotate_with(&ned, "ci", Some(longer)).await;
        assert_eq!(error_code(&refused), "accessDenied", "{longer}: {refused}");
    }
    let kept = rotate_with(&ned, "ci", None).await;
    assert_ok(&kept);
    assert_eq!(
        expiry(&kept),
        Some(app.clock.now() + SignedDuration::from_hours(7 * 24)),
        "{kept}"
    );
    let shorter = rotate_with(&ned, "ci", Some("DAY")).await;
    assert_ok(&shorter);
    assert_eq!(
        expiry(&shorter),
        Some(app.clock.now() + SignedDuration::from_hours(24))
    );
    let refused = rotate_with(&ned, "ci", Some("WEEK")).await;
    assert_eq!(
        error_code(&refused),
        "accessDenied",
        "the day is the rule now"
    );
}

#[tokio::test]
async fn a_lookup_of_the_previous_secret_says_so_while_its_grace_lasts() {
    let app = spawn_app().await;
    app.login_admin().await;
    let old = app.new_token("ci").await;
    let new = secret(&rotate(&app, "ci", 3600).await);
    let lookup = |secret: String| {
        let app = &app;
        async move {
            let answer = app
                .gql(
                    "query($t: String!) { adminTokenLookup(token: $t) {
                       tokenName previousSecret graceExpireTime } }",
                    json!({ "t": secret }),
                )
                .await;
            answer["data"]["adminTokenLookup"].clone()
        }
    };
    let grace_ends = app.clock.now() + SignedDuration::from_hours(1);
    let previous = lookup(old.clone()).await;
    assert_eq!(previous["tokenName"], "ci");
    assert_eq!(previous["previousSecret"], true, "{previous}");
    assert_eq!(
        previous["graceExpireTime"]
            .as_str()
            .map(|t| t.parse::<jiff::Timestamp>().unwrap()),
        Some(grace_ends)
    );
    let current = lookup(new.clone()).await;
    assert_eq!(current["previousSecret"], false, "{current}");

    app.advance(SignedDuration::from_secs(3601));
    app.login_admin().await;
    assert!(
        lookup(old).await.is_null(),
        "after its grace: no live token"
    );
    let current = lookup(new).await;
    assert_eq!(current["previousSecret"], false);
    assert!(current["graceExpireTime"].is_null(), "{current}");
}
