use jiff::SignedDuration;
use serde_json::json;

use crate::helpers::*;

pub(crate) async fn verify(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(format!("{}/api/auth/verify", app.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_valid_bearer_token_or_session_passes_with_the_users_headers() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("proxy").await;

    let bearer = format!("Bearer {token}");
    let response = verify(&app, &[("Authorization", &bearer)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-user"], "admin");
    assert_eq!(response.headers()["x-team"], "admin|user");
    assert_eq!(response.headers()["x-full-name"], "admin");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.text().await.unwrap().is_empty());

    let cookie = format!("cb-session-id={}", app.cookie().unwrap());
    let response = verify(&app, &[("Cookie", &cookie)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-user"], "admin");

    let head = app
        .client
        .head(format!("{}/api/auth/verify", app.url))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-user"], "admin");
}

#[tokio::test]
async fn a_plain_user_is_in_the_user_team_only() {
    let app = spawn_app_with(|s| s.tokens.admins_only = false).await;
    app.add_user("tess", "tess's password", "user").await;
    app.login("tess", "tess's password").await;
    let token = app.new_token("mine").await;
    let response = verify(&app, &[("Authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(response.headers()["x-user"], "tess");
    assert_eq!(response.headers()["x-team"], "user");
}

#[tokio::test]
async fn everything_else_gets_401_with_a_bearer_challenge_at_once() {
    let app = spawn_app().await;
    app.login_admin().await;
    let deleted = app.new_token("deleted").await;
    let expiring = app.create_token("expiring", "DAY").await["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let valid = app.new_token("valid").await;
    let bearer = |t: &str| format!("Bearer {t}");
    // Valid a moment before it is deleted: no cache may outlive the delete.
    assert_eq!(
        verify(&app, &[("Authorization", &bearer(&deleted))])
            .await
            .status(),
        200
    );
    assert_ok(
        &app.gql(
            "mutation { tokenApiDelete(tokenName: \"deleted\") }",
            json!({}),
        )
        .await,
    );
    app.advance(SignedDuration::from_hours(25));

    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no credentials", vec![]),
        (
            "a malformed token",
            vec![("Authorization", bearer("lodge_nonsense"))],
        ),
        ("a deleted token", vec![("Authorization", bearer(&deleted))]),
        (
            "an expired token",
            vec![("Authorization", bearer(&expiring))],
        ),
        (
            "a forged session",
            vec![("Cookie", format!("cb-session-id={}", "B".repeat(43)))],
        ),
        (
            "a password as basic auth",
            vec![("Authorization", "Basic YWRtaW46cGFzc3dvcmQ=".into())],
        ),
        (
            "a forged user header alone",
            vec![("X-User", "admin".into())],
        ),
    ];
    for (case, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = verify(&app, &headers).await;
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"lodge\"",
            "{case}"
        );
        assert!(response.headers().get("x-user").is_none(), "{case}");
    }
    assert_eq!(
        verify(&app, &[("Authorization", &bearer(&valid))])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn disabling_the_user_refuses_their_token_at_once() {
    let app = spawn_app().await;
    app.add_user("uma", "uma's password", "admin").await;
    let uma = app.new_client();
    uma.login("uma", "uma's password").await;
    let token = uma.new_token("uma's").await;
    let bearer = format!("Bearer {token}");
    assert_eq!(
        verify(&app, &[("Authorization", &bearer)]).await.status(),
        200
    );
    app.login_admin().await;
    assert_ok(
        &app.gql("{ enableUser(userId: \"uma\", enabled: false) }", json!({}))
            .await,
    );
    assert_eq!(
        verify(&app, &[("Authorization", &bearer)]).await.status(),
        401
    );
}

#[tokio::test]
async fn tokens_and_sessions_pass_only_when_allowed() {
    let app = spawn_app_with(|s| {
        s.forward_auth.allow_tokens = false;
        s.forward_auth.user_header = lodge::config::HeaderName::parse("Remote-User").unwrap();
    })
    .await;
    app.login_admin().await;
    let token = app.new_token("t").await;
    let response = verify(&app, &[("Authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(response.status(), 401);
    let cookie = format!("cb-session-id={}", app.cookie().unwrap());
    let response = verify(&app, &[("Cookie", &cookie)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["remote-user"], "admin");

    let app = spawn_app_with(|s| s.forward_auth.allow_sessions = false).await;
    app.login_admin().await;
    let cookie = format!("cb-session-id={}", app.cookie().unwrap());
    assert_eq!(verify(&app, &[("Cookie", &cookie)]).await.status(), 401);
}

#[tokio::test]
async fn verifying_a_token_counts_as_its_use() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("used-by-proxy").await;
    verify(&app, &[("Authorization", &format!("Bearer {token}"))]).await;
    let listed = app
        .gql("{ tokenApiList { lastUsedTime } }", json!({}))
        .await;
    assert!(
        listed["data"]["tokenApiList"][0]["lastUsedTime"].is_string(),
        "{listed}"
    );
}

#[tokio::test]
async fn the_login_page_returns_only_to_allowed_origins() {
    let app = spawn_app_with(|s| {
        s.forward_auth.return_origins =
            vec![lodge::config::Origin("https://grafana.example.com".into())];
    })
    .await;
    let host = app.url.trim_start_matches("http://").to_owned();
    let cases = [
        ("/api/gql/console", true),
        ("https://grafana.example.com/dashboards", true),
        (&*format!("http://{host}/"), true),
        ("https://evil.example/", false),
        ("//evil.example/", false),
        ("https://grafana.example.com@evil.example/", false),
        ("javascript:alert(1)", false),
    ];
    for (target, allowed) in cases {
        let response = app
            .gql(
                "query($t: String!) { authReturnUrl(returnTo: $t) }",
                json!({ "t": target }),
            )
            .await;
        let url = &response["data"]["authReturnUrl"];
        if allowed {
            assert_eq!(url, target, "{target}");
        } else {
            assert!(url.is_null(), "{target}: {response}");
        }
    }
}
