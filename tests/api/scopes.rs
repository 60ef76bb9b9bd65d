//! Scoped tokens: `read_api`, proxy-only, `read_proxy`, services and `allowFrom`, checked
//! wherever the token or a session it opened is used.

use lodge::config::RequestHeaders;
use serde_json::{Value, json};

use crate::{forward_auth::verify, helpers::*};

const CREATE: &str = "mutation($name: String!, $scopes: [String!], $services: [String!], $from: [String!]) {
  tokenApiCreate(tokenName: $name, lifetime: WEEK, scopes: $scopes, services: $services, allowFrom: $from) { token }
}";

/// Creates a token with these grants as `client`; its secret.
async fn scoped(
    client: &TestApp,
    name: &str,
    scopes: Value,
    services: Value,
    from: Value,
) -> String {
    let created = client
        .gql(
            CREATE,
            json!({ "name": name, "scopes": scopes, "services": services, "from": from }),
        )
        .await;
    created["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("created: {created}"))
        .to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn denied_events(app: &TestApp) -> Vec<Value> {
    let admin = app.new_client();
    admin.login_admin().await;
    let events = admin
        .gql(
            "{ auditLog(filter: {kind: \"token.denied\"}) { tokenName address detail success } }",
            json!({}),
        )
        .await;
    events["data"]["auditLog"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_token_made_without_scopes_lists_todays_access() {
    let app = spawn_app().await;
    app.login_admin().await;
    app.new_token("plain").await;
    let narrow = scoped(
        &app,
        "narrow",
        json!(["read_api", "read_proxy"]),
        json!(["Grafana.example.com", "ci.example.com/api/"]),
        json!(["10.0.0.0/8", "192.0.2.7"]),
    )
    .await;
    let listed = app
        .gql(
            "{ tokenApiList { tokenName scopes services allowFrom } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["tokenApiList"],
        json!([
            { "tokenName": "plain", "scopes": ["api", "proxy"], "services": [], "allowFrom": [] },
            { "tokenName": "narrow", "scopes": ["read_api", "read_proxy"],
              "services": ["grafana.example.com", "ci.example.com/api/"],
              "allowFrom": ["10.0.0.0/8", "192.0.2.7/32"] },
        ])
    );
    let admin_view = app
        .gql("{ adminTokenList { tokenName scopes } }", json!({}))
        .await;
    assert_eq!(
        admin_view["data"]["adminTokenList"][1]["scopes"],
        json!(["read_api", "read_proxy"])
    );
    // Found by its secret, after a use that keeps it in memory, with its limits.
    app.gql_bearer(&narrow, "{ activeUser { userId } }", json!({}))
        .await;
    let found = app
        .gql(
            "query($t: String!) { adminTokenLookup(token: $t) { tokenName scopes allowFrom } }",
            json!({ "t": narrow }),
        )
        .await;
    assert_eq!(
        found["data"]["adminTokenLookup"],
        json!({ "tokenName": "narrow", "scopes": ["read_api", "read_proxy"],
                "allowFrom": ["10.0.0.0/8", "192.0.2.7/32"] })
    );
}

#[tokio::test]
async fn bad_scopes_services_and_ranges_are_refused_with_what_was_wrong() {
    let app = spawn_app().await;
    app.login_admin().await;
    let cases = [
        (
            json!(["admin"]),
            json!([]),
            json!([]),
            "unknown scope `admin`",
        ),
        (json!([]), json!([]), json!([]), "at least one scope"),
        (
            json!(["api"]),
            json!(["https://grafana.example.com"]),
            json!([]),
            "has a scheme",
        ),
        (
            json!(["api"]),
            json!(["bad host!"]),
            json!([]),
            "is not a host name",
        ),
        (
            json!(["api"]),
            json!([]),
            json!(["10.0.0.0/33"]),
            "is not an address or a CIDR range",
        ),
    ];
    for (scopes, services, from, expected) in cases {
        let answer = app
            .gql(
                CREATE,
                json!({ "name": "x", "scopes": scopes, "services": services, "from": from }),
            )
            .await;
        assert_eq!(error_code(&answer), "invalidInput", "{answer}");
        assert!(error_message(&answer).contains(expected), "{answer}");
    }
    assert_eq!(app.count("api_tokens"), 0, "nothing was made");
}

#[tokio::test]
async fn a_read_api_token_queries_but_changes_nothing_by_bearer_or_by_its_session() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = scoped(&app, "reader", json!(["read_api"]), json!([]), json!([])).await;
    let session = app.new_client();
    assert_eq!(
        session.login_with_token(&token).await["data"]["authLogin"]["authStatus"],
        "SUCCESS"
    );
    // Every mutation, and every query that changes something: a new one must be added here.
    let schema = app
        .gql(
            "{ __type(name: \"Mutation\") { fields { name } } }",
            json!({}),
        )
        .await;
    let mutations: Vec<&str> = schema["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        mutations,
        [
            "tokenApiCreate",
            "tokenApiRotate",
            "tokenApiDelete",
            "adminTokenDelete",
            "sessionEnd",
            "sessionEndOthers",
            "adminSessionEnd"
        ],
        "a new mutation needs its line below"
    );
    let changes = [
        "mutation { tokenApiCreate(tokenName: \"stronger\") { token } }",
        "mutation { tokenApiRotate(tokenName: \"reader\") { token } }",
        "mutation { tokenApiDelete(tokenName: \"reader\") }",
        "mutation { adminTokenDelete(userId: \"admin\", tokenName: \"reader\") }",
        "mutation { sessionEnd(id: \"1-0011223344556677\") }",
        "mutation { sessionEndOthers }",
        "mutation { adminSessionEnd(id: \"1-0011223344556677\") }",
        "{ authChangeLocalPassword(oldPassword: \"x\", newPassword: \"a new password\") }",
        "{ createUser(userId: \"mallory\", enabled: true) { userId } }",
        "{ deleteUser(userId: \"admin\") }",
        "{ setUserCredentials(userId: \"admin\", providerId: \"local\", credentials: {password: \"owned by me\"}) }",
        "{ enableUser(userId: \"admin\", enabled: false) }",
        "{ setUserAuthRole(userId: \"admin\", authRole: \"user\") }",
        "{ adminUnlockUser(userId: \"admin\") }",
    ];
    for change in changes {
        for (how, answer) in [
            ("Bearer", app.gql_bearer(&token, change, json!({})).await),
            ("session", session.gql(change, json!({})).await),
        ] {
            assert_eq!(
                error_code(&answer),
                "accessDenied",
                "{how}: {change}: {answer}"
            );
            assert!(error_message(&answer).contains("read_api"), "{answer}");
        }
    }
    assert_eq!(app.count("api_tokens"), 1, "no stronger token was minted");
    assert_eq!(app.count("users"), 1);
    // Queries work both ways, and the session may log out.
    for answer in [
        app.gql_bearer(
            &token,
            "{ activeUser { userId } tokenApiList { tokenName } }",
            json!({}),
        )
        .await,
        session
            .gql(
                "{ activeUser { userId } tokenApiList { tokenName } }",
                json!({}),
            )
            .await,
    ] {
        assert_eq!(answer["data"]["activeUser"]["userId"], "admin", "{answer}");
        assert_eq!(answer["data"]["tokenApiList"][0]["tokenName"], "reader");
    }
    assert_ok(&session.gql("{ authLogout }", json!({})).await);
    // Logging in with it may not end the owner's other sessions.
    let forced = app
        .new_client()
        .gql(
            "query($c: Object) { authLogin(provider: \"token\", credentials: $c, forceSessionsLogout: true) { authStatus } }",
            json!({ "c": { "token": token } }),
        )
        .await;
    assert_eq!(error_code(&forced), "accessDenied", "{forced}");
    assert!(
        logged_in_as_admin(&app).await,
        "the owner's own session survived"
    );
}

async fn logged_in_as_admin(app: &TestApp) -> bool {
    let me = app.gql("{ activeUser { userId } }", json!({})).await;
    me["data"]["activeUser"]["userId"] == "admin"
}

#[tokio::test]
async fn a_proxy_only_token_passes_forward_auth_and_nothing_else() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = scoped(&app, "gate", json!(["proxy"]), json!([]), json!([])).await;
    let by_bearer = app
        .gql_bearer(&token, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(error_code(&by_bearer), "accessDenied", "{by_bearer}");
    assert!(error_message(&by_bearer).contains("forward auth only"));
    let login = app.new_client().login_with_token(&token).await;
    assert_eq!(error_code(&login), "accessDenied", "{login}");
    let passed = verify(&app, &[("Authorization", &bearer(&token))]).await;
    assert_eq!(passed.status(), 200);
    assert_eq!(passed.headers()["x-user"], "admin");
    assert_eq!(
        passed.headers()["x-lodge-token"],
        "gate",
        "the token is named upstream"
    );
    let events = denied_events(&app).await;
    assert_eq!(
        events.len(),
        1,
        "the same refusal once a minute: {events:?}"
    );
    // A minute on, the next one is recorded with how many came between.
    app.advance(jiff::SignedDuration::from_secs(61));
    let again = app
        .gql_bearer(&token, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(error_code(&again), "accessDenied", "{again}");
    let events = denied_events(&app).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("(and 1 more such refusals in the minute before)"),
        "{events:?}"
    );

    // And an API-only token gets 403 from forward auth.
    let api_only = scoped(&app, "api", json!(["api"]), json!([]), json!([])).await;
    assert_eq!(
        verify(&app, &[("Authorization", &bearer(&api_only))])
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn read_proxy_passes_reading_methods_only_and_needs_the_method() {
    for (set, method_header, other_header) in [
        (
            RequestHeaders::Forwarded,
            "X-Forwarded-Method",
            "X-Original-Method",
        ),
        (
            RequestHeaders::Original,
            "X-Original-Method",
            "X-Forwarded-Method",
        ),
    ] {
        let app = spawn_app_with(|s| s.forward_auth.request_headers = set).await;
        app.login_admin().await;
        let token = scoped(
            &app,
            "dashboard",
            json!(["read_proxy"]),
            json!([]),
            json!([]),
        )
        .await;
        let auth = bearer(&token);
        let status = |headers: Vec<(&'static str, &'static str)>| {
            let app = &app;
            let auth = auth.clone();
            async move {
                let mut all = vec![("Authorization", auth.as_str())];
                all.extend(headers);
                verify(app, &all).await.status().as_u16()
            }
        };
        for (method, expected) in [("GET", 200), ("HEAD", 200), ("OPTIONS", 200)] {
            assert_eq!(
                status(vec![(method_header, method)]).await,
                expected,
                "{set:?} {method}"
            );
        }
        for method in ["POST", "DELETE"] {
            assert_eq!(
                status(vec![(method_header, method)]).await,
                403,
                "{set:?} {method}"
            );
        }
        assert_eq!(
            status(vec![]).await,
            403,
            "{set:?}: no method header: refused"
        );
        assert_eq!(
            status(vec![(other_header, "GET")]).await,
            403,
            "{set:?}: the other set's method header is not read"
        );
        assert_eq!(
            status(vec![(method_header, "POST"), (other_header, "GET")]).await,
            403,
            "{set:?}: the other set's header does not override"
        );
        let reasons: Vec<String> = denied_events(&app)
            .await
            .iter()
            .map(|e| e["detail"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            reasons.iter().any(|r| r.contains(method_header)),
            "a refusal names the header it needed: {reasons:?}"
        );
    }
}

#[tokio::test]
async fn services_pass_their_hosts_and_path_prefixes_only() {
    let forwarded: &[(&[(&str, &str)], u16)] = &[
        (
            &[
                ("X-Forwarded-Host", "grafana.example.com"),
                ("X-Forwarded-Uri", "/d/abc"),
            ],
            200,
        ),
        (&[("X-Forwarded-Host", "GRAFANA.example.com")], 200),
        (&[("X-Forwarded-Host", "grafana.example.org")], 403),
        (&[("X-Forwarded-Host", "db.internal.example.com")], 200),
        (&[("X-Forwarded-Host", "internal.example.com")], 403),
        (
            &[
                ("X-Forwarded-Host", "ci.example.com"),
                ("X-Forwarded-Uri", "/api/jobs?x=1"),
            ],
            200,
        ),
        (
            &[
                ("X-Forwarded-Host", "ci.example.com"),
                ("X-Forwarded-Uri", "/apix"),
            ],
            403,
        ),
        (
            &[("X-Original-URL", "https://ci.example.com/api/v4/jobs")],
            403,
        ),
        (
            &[
                ("X-Forwarded-Host", "ci.example.com"),
                ("X-Forwarded-Uri", "/admin"),
                ("X-Original-URL", "https://ci.example.com/api/v4/jobs"),
            ],
            403,
        ),
        (&[], 403),
    ];
    let original: &[(&[(&str, &str)], u16)] = &[
        (
            &[("X-Original-URL", "https://ci.example.com/api/v4/jobs")],
            200,
        ),
        (&[("X-Original-URL", "https://ci.example.com/admin")], 403),
        (&[("X-Original-URL", "http://grafana.example.com")], 200),
        (&[("X-Forwarded-Host", "grafana.example.com")], 403),
        (
            &[
                ("X-Original-URL", "https://service.example.com/"),
                ("X-Forwarded-Host", "grafana.example.com"),
                ("X-Forwarded-Uri", "/d/abc"),
            ],
            403,
        ),
        (&[], 403),
    ];
    let none: &[(&[(&str, &str)], u16)] = &[
        (&[("X-Forwarded-Host", "grafana.example.com")], 403),
        (&[("X-Original-URL", "http://grafana.example.com/")], 403),
    ];
    for (set, cases) in [
        (RequestHeaders::Forwarded, forwarded),
        (RequestHeaders::Original, original),
        (RequestHeaders::None, none),
    ] {
        let app = spawn_app_with(|s| s.forward_auth.request_headers = set).await;
        app.login_admin().await;
        let token = scoped(
            &app,
            "ci",
            json!(["proxy"]),
            json!([
                "grafana.example.com",
                "*.internal.example.com",
                "ci.example.com/api/"
            ]),
            json!([]),
        )
        .await;
        let auth = bearer(&token);
        for (headers, expected) in cases {
            let mut all = vec![("Authorization", auth.as_str())];
            all.extend_from_slice(headers);
            assert_eq!(
                verify(&app, &all).await.status().as_u16(),
                *expected,
                "{set:?} {headers:?}"
            );
        }
        if set == RequestHeaders::None {
            let details = denied_events(&app).await;
            assert!(
                details.iter().any(|e| e["detail"]
                    .as_str()
                    .unwrap()
                    .contains("forward_auth.request_headers is not set")),
                "the refusal says what to set: {details:?}"
            );
        }
    }
}

#[tokio::test]
async fn allow_from_holds_for_bearer_login_sessions_and_forward_auth() {
    let app = spawn_app().await;
    app.login_admin().await;
    let elsewhere = scoped(
        &app,
        "ci-net",
        json!(["api", "proxy"]),
        json!([]),
        json!(["10.0.0.0/8"]),
    )
    .await;
    let here = scoped(
        &app,
        "local",
        json!(["api", "proxy"]),
        json!([]),
        json!(["127.0.0.0/8"]),
    )
    .await;

    let refused = app
        .gql_bearer(&elsewhere, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(error_code(&refused), "accessDenied", "{refused}");
    assert!(error_message(&refused).contains("not allowed from 127.0.0.1"));
    assert_eq!(
        error_code(&app.new_client().login_with_token(&elsewhere).await),
        "accessDenied"
    );
    assert_eq!(
        verify(&app, &[("Authorization", &bearer(&elsewhere))])
            .await
            .status(),
        403
    );

    let passes = app
        .gql_bearer(&here, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(passes["data"]["activeUser"]["userId"], "admin");
    assert_ok(&app.new_client().login_with_token(&here).await);
    assert_eq!(
        verify(&app, &[("Authorization", &bearer(&here))])
            .await
            .status(),
        200
    );

    // Three refusals for the same reason within a minute: recorded once.
    let events = denied_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["address"] == "127.0.0.1" && e["tokenName"] == "ci-net")
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_checked_and_a_session_keeps_its_bounds() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![lodge::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.login_admin().await;
    let token = scoped(
        &app,
        "ci-net",
        json!(["api", "proxy"]),
        json!([]),
        json!(["10.0.0.0/8"]),
    )
    .await;
    let auth = bearer(&token);
    let from = |ip: &'static str| [("Authorization", auth.as_str()), ("X-Forwarded-For", ip)];
    assert_eq!(verify(&app, &from("10.1.2.3")).await.status(), 200);
    assert_eq!(verify(&app, &from("192.0.2.1")).await.status(), 403);

    // A session opened from inside the range is refused when used from outside it.
    let session = app.new_client();
    let login = session
        .gql_with(
            "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
            json!({ "c": { "token": token } }),
            &[("X-Forwarded-For", "10.9.9.9")],
        )
        .await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );
    let inside = session
        .gql_with(
            "{ activeUser { userId } }",
            json!({}),
            &[("X-Forwarded-For", "10.9.9.9")],
        )
        .await;
    assert_eq!(inside["data"]["activeUser"]["userId"], "admin");
    let outside = session
        .gql_with(
            "{ activeUser { userId } }",
            json!({}),
            &[("X-Forwarded-For", "192.0.2.1")],
        )
        .await;
    assert_eq!(error_code(&outside), "accessDenied", "{outside}");
    let cookie = format!("cb-session-id={}", session.cookie().unwrap());
    let through_proxy = verify(
        &app,
        &[("Cookie", &cookie), ("X-Forwarded-For", "192.0.2.1")],
    )
    .await;
    assert_eq!(through_proxy.status(), 403);
}

#[tokio::test]
async fn without_a_trusted_proxy_the_proxys_own_address_is_checked() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = scoped(
        &app,
        "ci-net",
        json!(["proxy"]),
        json!([]),
        json!(["10.0.0.0/8"]),
    )
    .await;
    let auth = bearer(&token);
    let forged = verify(
        &app,
        &[("Authorization", &auth), ("X-Forwarded-For", "10.1.2.3")],
    )
    .await;
    assert_eq!(
        forged.status(),
        403,
        "an untrusted forwarded address is not believed"
    );
}

#[tokio::test]
async fn refusals_do_not_count_as_failed_logins() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = scoped(
        &app,
        "ci-net",
        json!(["api", "proxy"]),
        json!([]),
        json!(["10.0.0.0/8"]),
    )
    .await;
    // More than limits.address_burst (30) refusals from this address.
    for _ in 0..40 {
        let answer = app
            .gql_bearer(&token, "{ activeUser { userId } }", json!({}))
            .await;
        assert_eq!(error_code(&answer), "accessDenied", "{answer}");
    }
    let good = app.new_token("good").await;
    let answer = app
        .gql_bearer(&good, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(
        answer["data"]["activeUser"]["userId"], "admin",
        "not throttled: {answer}"
    );
}
