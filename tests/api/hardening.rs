use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use lodge::{
    auth::limits::{Check, Limits, MAX_TRACKED},
    config::{IpNet, LimitSettings},
};
use serde_json::{Value, json};

use crate::helpers::*;

fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["webErrorCode"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn eleven_wrong_passwords_lock_the_account_softly() {
    let app = spawn_app().await;
    for attempt in 1..=10 {
        let response = app.new_client().login(ADMIN, "wrong password").await;
        assert_eq!(error_code(&response), "authFailed", "attempt {attempt}");
    }
    let eleventh = app.new_client().login(ADMIN, "wrong password").await;
    assert_eq!(error_code(&eleventh), "tooManyRequests");
    let twelfth = app.new_client().login(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        error_code(&twelfth),
        "tooManyRequests",
        "even the right password waits"
    );
    assert!(
        error_message(&twelfth).contains("try again in 300 s"),
        "{twelfth}"
    );

    app.advance(SignedDuration::from_mins(5));
    assert_ok(&app.new_client().login(ADMIN, ADMIN_PASSWORD).await);
    // A success starts the account afresh.
    assert_eq!(
        error_code(&app.new_client().login(ADMIN, "wrong").await),
        "authFailed"
    );
}

#[tokio::test]
async fn the_lock_grows_with_each_failure_after_it() {
    let app = spawn_app().await;
    for _ in 0..10 {
        app.new_client().login("nobody-at-all", "guess").await;
    }
    app.advance(SignedDuration::from_mins(5));
    assert_eq!(
        error_code(&app.new_client().login("nobody-at-all", "guess").await),
        "authFailed"
    );
    let locked = app.new_client().login("nobody-at-all", "guess").await;
    assert!(
        error_message(&locked).contains("try again in 600 s"),
        "{locked}"
    );
}

#[tokio::test]
async fn fifty_aliased_logins_in_one_request_are_not_fifty_attempts() {
    let app = spawn_app().await;
    let fields: String = (0..50)
        .map(|i| format!("a{i}: authLogin(provider: \"local\", credentials: {{user: \"admin\", password: \"guess {i}\"}}) {{ authStatus }}\n"))
        .collect();
    let response = app.gql(&format!("{{ {fields} }}"), json!({})).await;
    // authLogin is non-null, so juniper may fold some errors into the null parent; count what shows.
    let codes = codes(&response);
    let failed = codes.iter().filter(|c| *c == "authFailed").count();
    let refused = codes.iter().filter(|c| *c == "tooManyRequests").count();
    assert!((1..=5).contains(&failed), "{codes:?}");
    assert_eq!(refused, 45, "{codes:?}");
    assert!(
        error_message(&json!({ "errors": [response["errors"][failed]] })).contains("at most 5")
    );
    // Only five were tried: the account is not locked.
    assert_ok(&app.new_client().login(ADMIN, ADMIN_PASSWORD).await);
}

#[tokio::test]
async fn an_address_with_too_many_failures_waits_and_others_do_not() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.login_admin().await;
    let token = app.new_token("valid").await;
    let from = |ip: &'static str| vec![("X-Forwarded-For", ip)];
    let login = |token: String, ip: &'static str| {
        let client = app.new_client();
        async move {
            client
                .gql_with(
                    "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
                    json!({ "c": { "token": token } }),
                    &from(ip),
                )
                .await
        }
    };
    for _ in 0..30 {
        let response = login("lodge_wrong".into(), "198.51.100.7").await;
        assert_eq!(error_code(&response), "authFailed");
    }
    let held = login(token.clone(), "198.51.100.7").await;
    assert_eq!(
        error_code(&held),
        "tooManyRequests",
        "even a valid token waits"
    );
    let bearer = format!("Bearer {token}");
    let held_bearer = app
        .new_client()
        .gql_with(
            "{ tokenApiList { tokenName } }",
            json!({}),
            &[
                ("Authorization", &bearer),
                ("X-Forwarded-For", "198.51.100.7"),
            ],
        )
        .await;
    assert_eq!(error_code(&held_bearer), "tooManyRequests");

    let elsewhere = login(token.clone(), "198.51.100.8").await;
    assert_eq!(
        elsewhere["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{elsewhere}"
    );

    app.advance(SignedDuration::from_secs(2));
    let later = login(token, "198.51.100.7").await;
    assert_eq!(
        later["data"]["authLogin"]["authStatus"], "SUCCESS",
        "one failure forgiven every 2 s"
    );
}

#[tokio::test]
async fn a_forwarded_address_is_ignored_unless_the_peer_is_trusted() {
    let app = spawn_app().await;
    for i in 0..30 {
        let spoofed = format!("203.0.113.{i}");
        let response = app
            .new_client()
            .gql_with(
                "{ authLogin(provider: \"token\", credentials: {token: \"x\"}) { authStatus } }",
                json!({}),
                &[("X-Forwarded-For", &spoofed)],
            )
            .await;
        assert_eq!(error_code(&response), "authFailed");
    }
    let response = app.new_client().login_with_token("x").await;
    assert_eq!(
        error_code(&response),
        "tooManyRequests",
        "all counted against 127.0.0.1"
    );
}

#[test]
fn a_flood_from_many_addresses_leaves_memory_bounded() {
    let limits = Limits::new(LimitSettings::default());
    let now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
    for i in 0..(MAX_TRACKED as u32 * 2 + 1000) {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000_u32 + i));
        let account = format!("user-{i}");
        if let Ok(attempt) = limits.begin(now, Check::Password, Some(ip), Some(&account)) {
            attempt.failed(now);
        }
    }
    let (addresses, accounts) = limits.tracked();
    assert!(
        addresses <= MAX_TRACKED && accounts <= MAX_TRACKED,
        "{addresses} / {accounts}"
    );
    limits.prune(now + SignedDuration::from_hours(25));
    assert_eq!(limits.tracked(), (0, 0), "keys expire");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_changes_nothing() {
    let app = spawn_app_with(|s| {
        s.server.public_url = lodge::config::PublicUrl::parse("https://lodge.example.com").unwrap();
    })
    .await;
    app.login_admin().await;
    let create = json!({ "query": "mutation { tokenApiCreate(tokenName: \"csrf\") { token } }" });
    let refused: [&[(&str, &str)]; 4] = [
        &[("Origin", "https://evil.example")],
        &[("Origin", "null")],
        &[("Origin", "https://lodge.example.com.evil.example")],
        &[("Sec-Fetch-Site", "cross-site")],
    ];
    for headers in refused {
        let response = app.post(&create, headers).await;
        assert_eq!(response.status(), 403, "{headers:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("refused")
        );
    }
    assert_eq!(app.count("api_tokens"), 0, "nothing was created");

    let own = app.url.replace("localhost", "127.0.0.1");
    let allowed: [&[(&str, &str)]; 4] = [
        &[("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
        &[("Origin", "https://lodge.example.com")],
        &[("Sec-Fetch-Site", "none")],
        &[],
    ];
    for (i, headers) in allowed.into_iter().enumerate() {
        let body = json!({ "query": format!("mutation {{ tokenApiCreate(tokenName: \"ok-{i}\") {{ token }} }}") });
        let response = app.post(&body, headers).await;
        assert_eq!(response.status(), 200, "{headers:?}");
        let body: Value = response.json().await.unwrap();
        assert_ok(&body);
    }
}

#[tokio::test]
async fn deep_long_and_wide_queries_are_refused_and_the_server_keeps_answering() {
    let app = spawn_app().await;
    let deep = |levels: usize| format!("{}{}", "{a".repeat(levels), "}".repeat(levels));
    let wide: String = (0..1500).map(|i| format!("f{i}: __typename ")).collect();
    let long: String = (0..5100).map(|_| "__typename ").collect();
    let cases = [
        ("5,000 levels deep", deep(5000), "limit of"),
        ("1,000 levels deep", deep(1000), "nesting"),
        ("1,500 fields", format!("{{ {wide} }}"), "fields"),
        ("5,100 tokens", format!("{{ {long} }}"), "tokens"),
    ];
    for (case, query, needle) in cases {
        let response = app.gql(&query, json!({})).await;
        let message = error_message(&response).to_lowercase();
        assert!(message.contains(needle), "{case}: {message}");
        assert!(response["data"].is_null(), "{case}");
    }
    let huge = "x".repeat(1024 * 1024);
    let response = app
        .client
        .post(app.gql_url())
        .header("Content-Type", "application/json")
        .body(json!({ "query": huge }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "a 1 MB query");
    assert_eq!(
        app.gql("{ __typename }", json!({})).await["data"]["__typename"],
        "Query"
    );
}

#[tokio::test]
async fn no_version_banner_is_sent() {
    let app = spawn_app().await;
    for path in ["/", "/api/auth/verify", "/healthz"] {
        let response = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert!(response.headers().get("server").is_none(), "{path}");
        assert!(response.headers().get("x-powered-by").is_none(), "{path}");
    }
}

#[test]
fn an_unknown_user_costs_the_same_argon2_work_as_a_wrong_password() {
    // The hash checked for an unknown user has the parameters of every stored hash.
    let stored = lodge::auth::password::NewPassword::parse_plain("some password")
        .unwrap()
        .hash();
    let params = |hash: &str| hash.split('$').take(4).collect::<Vec<_>>().join("$");
    assert_eq!(params(lodge::auth::password::DUMMY_HASH), params(&stored));
    assert_eq!(params(&stored), "$argon2id$v=19$m=19456,t=2,p=1");
}

#[tokio::test]
async fn a_page_from_a_rebinding_name_is_refused_and_its_host_not_trusted() {
    let app = spawn_app_with(|s| s.server.allowed_hosts = vec!["lodge.internal".into()]).await;
    let port = app.url.rsplit(':').next().unwrap().to_owned();
    let query = json!({ "query": "{ authReturnUrl(returnTo: \"http://evil.example:1/x\") }" });
    let from = |host: &str| {
        let authority = format!("{host}:{port}");
        (authority.clone(), format!("http://{authority}"))
    };
    for (host, allowed) in [
        ("evil.example", false),
        ("127.0.0.1", true),
        ("localhost", true),
        ("lodge.internal", true),
        ("LODGE.internal", true),
    ] {
        let (authority, origin) = from(host);
        let response = app
            .post(&query, &[("Host", &authority), ("Origin", &origin)])
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if allowed {
            assert_eq!(status, 200, "{host}: {body}");
        } else {
            assert_eq!(status, 403, "{host}: {body}");
            assert!(
                error_message(&body).contains("server.allowed_hosts"),
                "{body}"
            );
        }
    }
    // A script (no Origin) still gets an answer, but its Host is no reason to redirect there.
    for host in ["evil.example:1", "lodge.internal:1"] {
        let target = format!("http://{host}/x");
        let body = json!({
            "query": "query($t: String!) { authReturnUrl(returnTo: $t) }",
            "variables": { "t": target },
        });
        let response: Value = app
            .post(&body, &[("Host", host)])
            .await
            .json()
            .await
            .unwrap();
        let url = &response["data"]["authReturnUrl"];
        if host.starts_with("evil") {
            assert!(url.is_null(), "{host}: {response}");
        } else {
            assert_eq!(url, &target, "an allowed host is Lodge's own");
        }
    }
}

#[tokio::test]
async fn an_ipv6_network_shares_one_budget_and_an_ipv4_address_counts_however_written() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
        s.limits.address_burst = 5;
    })
    .await;
    app.login_admin().await;
    let token = app.new_token("valid").await;
    let login = |token: String, ip: String| {
        let client = app.new_client();
        async move {
            let answer = client
                .gql_with(
                    "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
                    json!({ "c": { "token": token } }),
                    &[("X-Forwarded-For", ip.as_str())],
                )
                .await;
            error_code_or_none(&answer)
        }
    };
    // Five wrong tokens, each from another address of one /64.
    for i in 1..=5 {
        let from = format!("2001:db8:1:2::{i:x}");
        assert_eq!(
            login("lodge_wrong".into(), from).await.as_deref(),
            Some("authFailed")
        );
    }
    let held = login(token.clone(), "2001:db8:1:2:ffff::9".into()).await;
    assert_eq!(held.as_deref(), Some("tooManyRequests"), "the /64 waits");
    let other = login(token.clone(), "2001:db8:1:3::1".into()).await;
    assert_eq!(other, None, "the next /64 does not");

    for i in 0..5 {
        let from = if i % 2 == 0 {
            "192.0.2.7"
        } else {
            "::ffff:192.0.2.7"
        };
        assert_eq!(
            login("lodge_wrong".into(), from.into()).await.as_deref(),
            Some("authFailed")
        );
    }
    for from in ["192.0.2.7", "::ffff:192.0.2.7"] {
        let held = login(token.clone(), from.into()).await;
        assert_eq!(held.as_deref(), Some("tooManyRequests"), "{from}");
    }

    // limits.ipv6_prefix = 128: each address on its own.
    let exact = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
        s.limits.address_burst = 5;
        s.limits.ipv6_prefix = lodge::config::Ipv6Prefix(128);
    })
    .await;
    exact.login_admin().await;
    let token = exact.new_token("valid").await;
    for i in 1..=5 {
        exact
            .new_client()
            .gql_with(
                "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
                json!({ "c": { "token": "lodge_wrong" } }),
                &[("X-Forwarded-For", format!("2001:db8:1:2::{i:x}").as_str())],
            )
            .await;
    }
    let answer = exact
        .new_client()
        .gql_with(
            "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
            json!({ "c": { "token": token } }),
            &[("X-Forwarded-For", "2001:db8:1:2::9")],
        )
        .await;
    assert_eq!(
        answer["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{answer}"
    );
}

fn error_code_or_none(answer: &serde_json::Value) -> Option<String> {
    answer["errors"][0]["extensions"]["webErrorCode"]
        .as_str()
        .map(str::to_owned)
}
