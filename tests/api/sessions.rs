use jiff::SignedDuration;
use serde_json::json;

use crate::helpers::*;

const ME: &str = "{ activeUser { userId } }";
const NEEDS_USER: &str = "{ tokenApiList { tokenName } }";

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    app.login_admin().await;
    let cookie = app.cookie().unwrap();
    assert_eq!(app.count("sessions"), 1);

    let out = app.gql("{ authLogout }", json!({})).await;
    assert_eq!(out["data"]["authLogout"], true);
    assert!(app.cookie().is_none(), "logout clears the cookie");
    assert_eq!(app.count("sessions"), 0);

    app.set_cookie(Some(&cookie));
    let replay = app.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&replay), "sessionExpired");
    let me = app.gql(ME, json!({})).await;
    assert!(me["data"]["activeUser"].is_null());
}

#[tokio::test]
async fn logout_extended_ends_the_session_too() {
    let app = spawn_app().await;
    app.login_admin().await;
    let out = app
        .gql("{ authLogoutExtended { redirectLinks } }", json!({}))
        .await;
    assert_eq!(
        out["data"]["authLogoutExtended"]["redirectLinks"],
        json!([])
    );
    assert_eq!(app.count("sessions"), 0);
}

#[tokio::test]
async fn a_session_ends_after_the_idle_timeout_and_activity_keeps_it_alive() {
    let app = spawn_app().await;
    app.login_admin().await;
    for _ in 0..4 {
        app.advance(SignedDuration::from_mins(20));
        let me = app.gql(ME, json!({})).await;
        assert_eq!(
            me["data"]["activeUser"]["userId"], ADMIN,
            "activity within 30 minutes"
        );
    }
    app.advance(SignedDuration::from_mins(31));
    let late = app.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&late), "sessionExpired");
    assert_eq!(app.count("sessions"), 0, "the dead row is removed");
}

#[tokio::test]
async fn a_session_ends_at_its_maximum_lifetime_however_active() {
    let app = spawn_app().await;
    app.login_admin().await;
    for _ in 0..35 {
        app.advance(SignedDuration::from_mins(20));
        let me = app.gql(ME, json!({})).await;
        assert_eq!(me["data"]["activeUser"]["userId"], ADMIN);
    }
    // 11 h 40 min so far; the next step passes 12 h.
    app.advance(SignedDuration::from_mins(21));
    let late = app.gql(NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&late), "sessionExpired");
}

#[tokio::test]
async fn timeouts_follow_the_configuration() {
    let app = spawn_app_with(|s| {
        s.session.idle_timeout = lodge::config::Duration::parse("2m").unwrap();
    })
    .await;
    app.login_admin().await;
    app.advance(SignedDuration::from_secs(100));
    assert_eq!(
        app.gql(ME, json!({})).await["data"]["activeUser"]["userId"],
        ADMIN
    );
    app.advance(SignedDuration::from_secs(121));
    assert_eq!(
        error_code(&app.gql(NEEDS_USER, json!({})).await),
        "sessionExpired"
    );
}

#[tokio::test]
async fn a_forged_cookie_is_ignored_and_login_issues_a_new_id() {
    let app = spawn_app().await;
    let forged = "A".repeat(43);
    app.set_cookie(Some(&forged));
    let me = app.gql(ME, json!({})).await;
    assert!(me["data"]["activeUser"].is_null());
    assert!(
        app.cookie().is_none(),
        "the server clears a cookie that names no session"
    );
    app.set_cookie(Some(&forged));
    assert_eq!(
        error_code(&app.gql(NEEDS_USER, json!({})).await),
        "sessionExpired"
    );

    app.set_cookie(Some(&forged));
    app.login_admin().await;
    let issued = app.cookie().unwrap();
    assert_ne!(issued, forged);
    assert_eq!(
        app.gql(ME, json!({})).await["data"]["activeUser"]["userId"],
        ADMIN
    );
}

#[tokio::test]
async fn every_login_starts_a_new_session_id_and_ends_the_one_it_replaces() {
    let app = spawn_app().await;
    app.login_admin().await;
    let first = app.cookie().unwrap();
    app.login_admin().await;
    let second = app.cookie().unwrap();
    assert_ne!(first, second);
    assert_eq!(app.count("sessions"), 1, "the replaced session ended");
}

#[tokio::test]
async fn anonymous_requests_create_no_session_rows() {
    let app = spawn_app().await;
    let before = app.count("sessions");
    for _ in 0..1000 {
        let response = app
            .gql(
                "{ activeUser { userId } sessionState { valid } }",
                json!({}),
            )
            .await;
        assert!(response["data"]["activeUser"].is_null());
    }
    assert_eq!(app.count("sessions"), before);
    assert!(app.cookie().is_none(), "no cookie for anonymous requests");
}

#[tokio::test]
async fn session_cookie_is_http_only_same_site_strict_on_root_path() {
    let app = spawn_app().await;
    let response = app
        .post(
            &json!({
                "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
                "variables": { "c": { "user": ADMIN, "password": ADMIN_PASSWORD } }
            }),
            &[],
        )
        .await;
    let cookie = session_set_cookie(&response).unwrap();
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["httponly", "samesite=strict", "path=/"] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{wanted} in {cookie}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a == "secure"),
        "no Secure over plain http: {cookie}"
    );
}

#[tokio::test]
async fn session_cookie_is_secure_behind_an_https_public_url() {
    let app = spawn_app_with(|s| {
        s.server.public_url = lodge::config::PublicUrl::parse("https://lodge.example.com").unwrap();
    })
    .await;
    let response = app
        .post(
            &json!({
                "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
                "variables": { "c": { "user": ADMIN, "password": ADMIN_PASSWORD } }
            }),
            &[],
        )
        .await;
    let cookie = session_set_cookie(&response).unwrap().to_ascii_lowercase();
    assert!(cookie.split(';').any(|a| a.trim() == "secure"), "{cookie}");
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookie_is_a_host_cookie_and_the_old_name_still_reads() {
    let app = spawn_app_with(|s| {
        s.server.public_url = lodge::config::PublicUrl::parse("https://lodge.example.com").unwrap();
    })
    .await;
    let login = json!({
        "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
        "variables": { "c": { "user": ADMIN, "password": ADMIN_PASSWORD } }
    });
    // A browser that still holds the plain cookie from before the upgrade.
    let response = app
        .new_client()
        .post(&login, &[("Cookie", "cb-session-id=left.over")])
        .await;
    let set: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let host = set
        .iter()
        .find(|c| c.starts_with("__Host-cb-session-id="))
        .unwrap_or_else(|| panic!("{set:?}"));
    let attributes: Vec<String> = host
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["secure", "path=/", "httponly", "samesite=strict"] {
        assert!(attributes.iter().any(|a| a == wanted), "{wanted}: {host}");
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "{host}"
    );
    assert!(
        set.iter().any(
            |c| c.starts_with("cb-session-id=") && c.to_ascii_lowercase().contains("max-age=0")
        ),
        "the plain one is removed: {set:?}"
    );
    let value = host.split_once('=').unwrap().1.split(';').next().unwrap();
    for name in ["__Host-cb-session-id", "cb-session-id"] {
        let me = app
            .client
            .post(app.gql_url())
            .header("Content-Type", "application/json")
            .header("Cookie", format!("{name}={value}"))
            .body(json!({ "query": "{ activeUser { userId } }" }).to_string())
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(me["data"]["activeUser"]["userId"], ADMIN, "{name}: {me}");
    }
}

#[tokio::test]
async fn two_session_cookies_are_refused_as_ambiguous_not_decided_by_order() {
    let app = spawn_app().await;
    app.login_admin().await;
    let mine = app.cookie().unwrap();
    let other = app.new_client();
    other.add_user("eve", "eve's password", "user").await;
    other.login("eve", "eve's password").await;
    let eves = other.cookie().unwrap();
    for cookies in [
        format!("cb-session-id={eves}; cb-session-id={mine}"),
        format!("cb-session-id={mine}; theme=dark; cb-session-id={eves}"),
        format!("__Host-cb-session-id={eves}; __Host-cb-session-id={mine}"),
    ] {
        let response = app
            .client
            .post(app.gql_url())
            .header("Content-Type", "application/json")
            .header("Cookie", &cookies)
            .body(json!({ "query": "{ activeUser { userId } }" }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{cookies}");
        let body: serde_json::Value = response.json().await.unwrap();
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("more than one"), "{message}");

        let verify = crate::forward_auth::verify(&app, &[("Cookie", &cookies)]).await;
        assert_eq!(verify.status(), 401, "{cookies}");
        assert!(verify.headers().get("x-user").is_none());
    }
    // One of each name: the __Host- one is the session, whatever the order.
    let both = format!("cb-session-id={eves}; __Host-cb-session-id={mine}");
    let verify = crate::forward_auth::verify(&app, &[("Cookie", &both)]).await;
    assert_eq!(verify.status(), 200);
    assert_eq!(verify.headers()["x-user"], ADMIN);
}

#[tokio::test]
async fn force_sessions_logout_ends_the_users_other_sessions() {
    let app = spawn_app().await;
    let laptop = app.new_client();
    laptop.login_admin().await;
    let phone = app.new_client();
    let response = phone
        .gql(
            "query($c: Object) { authLogin(provider: \"local\", credentials: $c, forceSessionsLogout: true) { authStatus } }",
            json!({ "c": { "user": ADMIN, "password": ADMIN_PASSWORD } }),
        )
        .await;
    assert_ok(&response);
    assert_eq!(
        error_code(&laptop.gql(NEEDS_USER, json!({})).await),
        "sessionExpired"
    );
    assert_eq!(
        phone.gql(ME, json!({})).await["data"]["activeUser"]["userId"],
        ADMIN
    );
}

#[tokio::test]
async fn sessions_survive_a_restart_of_the_server() {
    let app = spawn_app().await;
    app.login_admin().await;
    let mut settings = lodge::Settings::default();
    settings.server.port = 0;
    app.same_database(&mut settings);
    let restarted = lodge::App::build(settings, app.clock.clone())
        .await
        .unwrap();
    let url = restarted.url();
    tokio::spawn(restarted.run());
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/gql"))
        .header("Cookie", format!("cb-session-id={}", app.cookie().unwrap()))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["data"]["activeUser"]["userId"], ADMIN);
}

#[tokio::test]
async fn session_state_reports_the_time_left() {
    let app = spawn_app().await;
    let anonymous = app
        .gql("{ sessionState { valid remainingTime } }", json!({}))
        .await;
    assert_eq!(
        anonymous["data"]["sessionState"],
        json!({ "valid": false, "remainingTime": 0 })
    );
    app.login_admin().await;
    app.advance(SignedDuration::from_mins(10));
    let state = app
        .gql("{ sessionState { valid remainingTime } }", json!({}))
        .await;
    assert_eq!(state["data"]["sessionState"]["valid"], true);
    // Touched by this request: 30 minutes from now.
    assert_eq!(
        state["data"]["sessionState"]["remainingTime"],
        30 * 60 * 1000
    );
}

#[tokio::test]
async fn a_login_beyond_the_users_session_limit_ends_their_oldest_session() {
    let app = spawn_app_with(|s| s.session.max_per_user = 3).await;
    let clients: Vec<_> = (0..5).map(|_| app.new_client()).collect();
    for client in &clients {
        client.login_admin().await;
    }
    for (i, client) in clients.iter().enumerate() {
        if i < 2 {
            let response = client.gql(NEEDS_USER, json!({})).await;
            assert_eq!(error_code(&response), "sessionExpired", "client {i}");
        } else {
            let response = client.gql(ME, json!({})).await;
            assert_eq!(
                response["data"]["activeUser"]["userId"], ADMIN,
                "client {i}"
            );
        }
    }
    assert_eq!(app.count("sessions"), 3);
}

#[tokio::test]
async fn after_a_restart_the_session_limit_still_ends_the_oldest_session() {
    let limit = |s: &mut lodge::Settings| s.session.max_per_user = 3;
    let app = spawn_app_with(limit).await;
    // Five logins a second apart: the fourth and fifth take the rows of the first two, so the
    // rows' order is no longer the sessions' age.
    let mut clients = Vec::new();
    for _ in 0..5 {
        let client = app.new_client();
        client.login_admin().await;
        app.advance(SignedDuration::from_secs(1));
        clients.push(client);
    }
    assert_eq!(app.count("sessions"), 3);

    let restarted = app.restarted(limit).await;
    restarted.login_admin().await;
    let mut live = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let asked = restarted.new_client();
        asked.set_cookie(client.cookie().as_deref());
        let response = asked.gql(ME, json!({})).await;
        if response["data"]["activeUser"]["userId"] == ADMIN {
            live.push(i);
        }
    }
    assert_eq!(live, [3, 4], "the third login was the oldest");
    assert_eq!(app.count("sessions"), 3);
}

#[tokio::test]
async fn housekeeping_removes_every_ended_session_across_parts_and_no_live_one() {
    let app = spawn_app().await;
    app.login_admin().await;
    // 2,500 sessions ended by their idle timeout an hour ago: more than one part (1,000).
    let hour_ago = (app.clock.now() - SignedDuration::from_hours(1)).as_microsecond();
    let numbers = if on_postgres() {
        "SELECT i FROM generate_series(1, 2500) AS n(i)"
    } else {
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
         SELECT i FROM n"
    };
    let blob = if on_postgres() {
        "decode(repeat('00', 32), 'hex')"
    } else {
        "zeroblob(32)"
    };
    app.execute(&format!(
        "INSERT INTO sessions (secret_digest, user_id, provider, created_at, last_seen_at)
         SELECT {blob}, (SELECT id FROM users WHERE user_id = '{ADMIN}'), 'local', {hour_ago},
             {hour_ago}
         FROM ({numbers}) AS n"
    ));
    assert_eq!(app.count("sessions"), 2501);
    let (sessions, _) = app.auth.housekeeping().await.unwrap();
    assert_eq!(sessions, 2500);
    assert_eq!(app.count("sessions"), 1);
    assert_ok(&app.gql("{ activeUser { userId } }", json!({})).await);
}

#[tokio::test]
async fn a_scripts_token_logins_never_end_its_owners_password_session() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("script").await;
    for _ in 0..150 {
        assert_ok(&app.new_client().login_with_token(&token).await);
    }
    let me = app.gql(ME, json!({})).await;
    assert_eq!(
        me["data"]["activeUser"]["userId"], ADMIN,
        "the browser's password session lives on: {me}"
    );
    assert_eq!(
        app.count("sessions"),
        101,
        "the password session and the token's 100 newest"
    );
}

#[tokio::test]
async fn a_tokens_101st_session_ends_that_tokens_oldest_only() {
    let app = spawn_app().await;
    app.login_admin().await;
    let first = app.new_token("first").await;
    let second = app.new_token("second").await;
    let other = app.new_client();
    assert_ok(&other.login_with_token(&second).await);
    let clients: Vec<_> = (0..101).map(|_| app.new_client()).collect();
    for client in &clients {
        assert_ok(&client.login_with_token(&first).await);
    }
    let ended = clients[0].gql(NEEDS_USER, json!({})).await;
    assert_eq!(
        error_code(&ended),
        "sessionExpired",
        "the token's oldest: {ended}"
    );
    for (i, client) in clients.iter().enumerate().skip(1) {
        assert_ok(&client.gql(ME, json!({})).await);
        assert!(client.cookie().is_some(), "client {i}");
    }
    assert_ok(&other.gql(NEEDS_USER, json!({})).await);
    assert_ok(&app.gql(NEEDS_USER, json!({})).await);
    assert_eq!(app.count("sessions"), 1 + 1 + 100);
}
