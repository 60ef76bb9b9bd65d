//! `POST /api/tokens/revoke`: whoever finds a token reports it, and a live one dies at once; the
//! answer tells the reporter nothing.

use serde_json::{Value, json};

use crate::{forward_auth::verify, helpers::*};

async fn report(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/api/tokens/revoke", app.url))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reported_live_token_dies_at_once_with_its_sessions_and_the_answer_tells_nothing() {
    let app = spawn_app().await;
    app.login_admin().await;
    let leaked = app.new_token("leaked").await;
    let kept = app.new_token("kept").await;
    let deleted = app.new_token("deleted").await;
    assert_ok(
        &app.gql(
            "mutation { tokenApiDelete(tokenName: \"deleted\") }",
            json!({}),
        )
        .await,
    );
    let script = app.new_client();
    assert_ok(&script.login_with_token(&leaked).await);

    let anonymous = app.new_client();
    let body = json!({ "tokens": [leaked, "lodge_garbage", deleted, "not a token at all"] });
    let answer = report(&anonymous, &body).await;
    assert_eq!(answer.status(), 202);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({ "received": 4 })
    );

    let refused = app
        .gql_bearer(&leaked, "{ tokenApiList { tokenName } }", json!({}))
        .await;
    assert_eq!(error_code(&refused), "authFailed", "{refused}");
    let bearer = format!("Bearer {leaked}");
    assert_eq!(
        verify(&app, &[("Authorization", &bearer)]).await.status(),
        401
    );
    let session = script.gql("{ activeUser { userId } }", json!({})).await;
    assert!(
        session["data"]["activeUser"].is_null(),
        "its session ended: {session}"
    );
    let other = app
        .gql_bearer(&kept, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(
        other["data"]["activeUser"]["userId"], "admin",
        "only the leaked one"
    );

    let events = app
        .gql(
            "{ auditLog(filter: {kind: \"token.leaked\"}) { userId tokenName address detail } }",
            json!({}),
        )
        .await;
    assert_eq!(
        events["data"]["auditLog"],
        json!([{ "userId": "admin", "tokenName": "leaked", "address": "127.0.0.1",
                 "detail": "reported as leaked: revoked, 1 sessions ended" }])
    );
    assert!(!events.to_string().contains(&leaked), "never the secret");

    // The same answer when nothing in the report was live.
    let nothing = report(
        &anonymous,
        &json!({ "tokens": [leaked, deleted, "lodge_x"] }),
    )
    .await;
    assert_eq!(nothing.status(), 202);
    assert_eq!(
        nothing.json::<Value>().await.unwrap(),
        json!({ "received": 3 })
    );
}

#[tokio::test]
async fn a_broken_report_gets_a_clear_error_and_a_flood_waits() {
    let app = spawn_app_with(|s| s.limits.revoke_per_minute = 3).await;
    let raw = |content_type: &'static str, body: &'static str| {
        app.client
            .post(format!("{}/api/tokens/revoke", app.url))
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let broken = raw("application/json", "{\"tokens\": \"lodge_x\"}")
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    assert!(
        broken
            .text()
            .await
            .unwrap()
            .contains("{\\\"tokens\\\": [\\\"lodge_...\\\"")
    );
    assert_eq!(
        raw("text/plain", "{\"tokens\": []}")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        raw("application/json", "{\"tokens\": [], \"x\": 1}")
            .await
            .unwrap()
            .status(),
        400
    );
    let many: Vec<String> = (0..101).map(|i| format!("lodge_{i}")).collect();
    let too_many = report(&app, &json!({ "tokens": many })).await;
    assert_eq!(too_many.status(), 413);
    assert!(
        too_many
            .text()
            .await
            .unwrap()
            .contains("at most 100 tokens")
    );

    for _ in 0..3 {
        assert_eq!(report(&app, &json!({ "tokens": [] })).await.status(), 202);
    }
    let limited = report(&app, &json!({ "tokens": [] })).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    app.advance(jiff::SignedDuration::from_secs(61));
    assert_eq!(report(&app, &json!({ "tokens": [] })).await.status(), 202);
}
