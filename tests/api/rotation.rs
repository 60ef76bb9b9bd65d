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
