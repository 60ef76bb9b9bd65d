use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn get_never_runs_an_operation() {
    let app = spawn_app().await;
    app.login_admin().await;
    let query = "mutation { tokenApiCreate(tokenName: \"via-get\") { token } }";
    let url = reqwest::Url::parse_with_params(&app.gql_url(), &[("query", query)]).unwrap();
    let response = app.get(&url.as_str()[app.url.len()..]).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert!(refusal_message(response).await.contains("POST"));
    assert_eq!(app.count("api_tokens"), 0, "nothing changed");

    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = app.request(method.clone(), "/api/gql").await;
        assert_eq!(response.status(), 405, "{method}");
    }
}

#[tokio::test]
async fn only_json_bodies_are_accepted() {
    let app = spawn_app().await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/graphql",
    ] {
        let response = app
            .post_raw(content_type, r#"{"query": "{ activeUser { userId } }"}"#)
            .await;
        assert_eq!(response.status(), 415, "{content_type}");
        assert!(refusal_message(response).await.contains("application/json"));
    }
    let with_charset = app
        .post_raw(
            "application/json; charset=utf-8",
            r#"{"query": "{ __typename }"}"#,
        )
        .await;
    assert_eq!(with_charset.status(), 200);
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_and_the_server_keeps_answering() {
    let app = spawn_app().await;
    let padding = " ".repeat(65 * 1024);
    let body = format!(r#"{{"query": "{{ __typename }}{padding}"}}"#);
    let response = app.post_raw("application/json", body).await;
    assert_eq!(response.status(), 413);
    assert!(refusal_message(response).await.contains("64 KiB"));
    app.assert_still_answers().await;
}

#[tokio::test]
async fn broken_requests_get_a_clear_error_and_the_server_keeps_answering() {
    let app = spawn_app().await;
    let cases: [(&str, &str, &str); 6] = [
        (
            "malformed JSON",
            r#"{"query": "{ __typename }""#,
            "not a GraphQL request",
        ),
        ("no query", r#"{"variables": {}}"#, "query"),
        (
            "a query that is not a string",
            r#"{"query": 5}"#,
            "not a GraphQL request",
        ),
        (
            "variables that are not an object",
            r#"{"query": "{ __typename }", "variables": [1]}"#,
            "variables",
        ),
        ("a batch", r#"[{"query": "{ __typename }"}]"#, "batched"),
        ("an empty body", "", "not a GraphQL request"),
    ];
    for (case, body, needle) in cases {
        let response = app.post_raw("application/json", body).await;
        assert_eq!(response.status(), 400, "{case}");
        let message = refusal_message(response).await;
        assert!(message.contains(needle), "{case}: {message}");
    }
    app.assert_still_answers().await;
}

#[tokio::test]
async fn invalid_operations_get_graphql_errors() {
    let app = spawn_app().await;
    let cases = [
        (
            "a syntax error",
            "{ activeUser { userId ",
            json!({}),
            "Unexpected",
        ),
        (
            "an unknown field",
            "{ activeUser { password } }",
            json!({}),
            "password",
        ),
        (
            "a wrong variable type",
            "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
            json!({ "c": 42 }),
            "$c",
        ),
        (
            "a missing variable",
            "query($name: ID!) { createUser(userId: $name, enabled: true) { userId } }",
            json!({}),
            "$name",
        ),
        (
            "a bad date",
            "mutation { tokenApiCreate(tokenName: \"x\", expiresAt: \"tomorrow\") { token } }",
            json!({}),
            "DateTime",
        ),
    ];
    for (case, query, variables, needle) in cases {
        let response = app.gql(query, variables).await;
        let message = error_message(&response);
        assert!(message.contains(needle), "{case}: {message}");
        assert!(response["data"].is_null(), "{case}: nothing ran");
    }
    app.assert_still_answers().await;
}

#[tokio::test]
async fn api_responses_are_not_cached() {
    let app = spawn_app().await;
    let response = app.post(&json!({ "query": "{ __typename }" }), &[]).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn introspection_is_on_by_default_and_a_setting_turns_it_off() {
    let on = spawn_app().await;
    let schema = on
        .gql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(schema["data"]["__schema"]["queryType"]["name"], "Query");

    let off = spawn_app_with(|s| s.graphql.introspection = false).await;
    let refused = off
        .gql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(
        error_message(&refused)
            .to_lowercase()
            .contains("introspection"),
        "{refused}"
    );
}

#[tokio::test]
async fn healthz_answers_without_a_login() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn pages_send_a_strict_content_security_policy_and_no_sniffing() {
    let app = spawn_app().await;
    for path in ["/", "/api/gql/console"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let html = response.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "{path}: nothing inline"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{path}: nothing from elsewhere"
        );
    }
    // Every file a page or a script names (its imports too) is served.
    let mut named: Vec<String> = Vec::new();
    let mut read: Vec<String> = vec!["/".into(), "/api/gql/console".into()];
    while let Some(path) = read.pop() {
        let text = app.get(&path).await.text().await.unwrap();
        for part in text.split("/static/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            if !named.contains(&name) {
                named.push(name.clone());
                read.push(format!("/static/{name}"));
            }
        }
    }
    for asset in ["app.js", "users.js", "favicon.svg", "lodge.css"] {
        assert!(named.iter().any(|n| n == asset), "{asset} in {named:?}");
    }
    for asset in &named {
        let response = app.get(&format!("/static/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{asset}"
        );
    }
    assert_eq!(app.get("/static/secret.txt").await.status(), 404);
}

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let app = spawn_app_with(|s| s.graphql.console = false).await;
    let response = app.get("/api/gql/console").await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("graphql.console"));
}

#[tokio::test]
async fn the_token_policy_tells_the_page_who_may_create_tokens() {
    let app = spawn_app().await;
    app.add_user("sam", "sam's password", "user").await;
    app.login_admin().await;
    let query = "{ tokenApiPolicy { adminsOnly canCreate maxPerUser allowNever defaultLifetime } }";
    assert_eq!(
        app.gql(query, json!({})).await["data"]["tokenApiPolicy"],
        json!({ "adminsOnly": true, "canCreate": true, "maxPerUser": 5, "allowNever": true, "defaultLifetime": "MONTH" })
    );
    let sam = app.new_client();
    sam.login("sam", "sam's password").await;
    assert_eq!(
        sam.gql(query, json!({})).await["data"]["tokenApiPolicy"]["canCreate"],
        false
    );
    assert_eq!(
        error_code(&app.new_client().gql(query, json!({})).await),
        "authRequired"
    );
}

#[tokio::test]
async fn readyz_answers_503_while_the_database_cannot_take_writes_and_200_after() {
    let app = spawn_app().await;
    let ready = || app.get("/readyz");
    assert_eq!(ready().await.status(), 200);

    let blocker = app.block_writes();
    let blocked = ready().await;
    assert_eq!(blocked.status(), 503);
    assert!(blocked.text().await.unwrap().contains("not writable"));
    // Liveness does no database work and still answers.
    assert_eq!(app.get("/healthz").await.status(), 200);

    blocker.release();
    assert_eq!(ready().await.status(), 200);
}

#[tokio::test]
async fn a_document_that_panics_juniper_gets_a_clear_error_and_the_server_keeps_answering() {
    // Found by the request_body fuzz target: an unknown variable type with a default value.
    let app = spawn_app().await;
    for query in [
        "query($c: Nope = 1) { __typename }",
        "query($c: [Missing!] = []) { __typename }",
    ] {
        let response = app.post(&json!({ "query": query }), &[]).await;
        assert_eq!(response.status(), 400, "{query}");
        let message = refusal_message(response).await;
        assert!(message.contains("variables"), "{message}");
    }
    app.assert_still_answers().await;
}

/// The console's vendored files (GraphiQL, React): named by their content, cached for a year,
/// gzipped for a client that asks and plain for one that does not, all from Lodge itself.
#[tokio::test]
async fn the_consoles_files_are_local_compressed_when_asked_and_named_by_content() {
    use std::io::Read as _;
    let app = spawn_app().await;
    let html = app.get("/api/gql/console").await.text().await.unwrap();
    for attribute in ["src=\"", "href=\""] {
        for part in html.split(attribute).skip(1) {
            let url = part.split('"').next().unwrap();
            assert!(
                url.starts_with('/') && !url.starts_with("//"),
                "{url}: only Lodge's own files"
            );
        }
    }
    let assets: Vec<String> = html
        .split("/api/gql/console/assets/")
        .skip(1)
        .map(|part| part.split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(assets.len(), 6, "{assets:?}");
    for asset in &assets {
        let url = format!("{}/api/gql/console/assets/{asset}", app.url);
        let packed = app
            .client
            .get(&url)
            .header("Accept-Encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        assert_eq!(packed.status(), 200, "{asset}");
        let headers = packed.headers().clone();
        let expected_type = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(expected_type),
            "{asset}: {:?}",
            headers["content-type"]
        );
        assert_eq!(headers["content-encoding"], "gzip", "{asset}");
        assert_eq!(headers["vary"], "Accept-Encoding", "{asset}");
        assert!(
            headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable"),
            "{asset}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{asset}");
        let packed = packed.bytes().await.unwrap();
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();

        let plain = app.client.get(&url).send().await.unwrap();
        assert_eq!(plain.status(), 200);
        assert!(plain.headers().get("content-encoding").is_none(), "{asset}");
        assert_eq!(plain.bytes().await.unwrap(), unpacked, "{asset}");
        assert!(unpacked.len() > packed.len(), "{asset}");

        // Another content under the same name does not exist.
        let stale = format!(
            "{}/api/gql/console/assets/{}",
            app.url,
            asset.replacen('.', ".0", 1)
        );
        assert_eq!(app.client.get(&stale).send().await.unwrap().status(), 404);
    }
    assert!(html.contains("content=\"on\""), "the schema may be read");
    let hidden = spawn_app_with(|s| s.graphql.introspection = false).await;
    let html = hidden.get("/api/gql/console").await.text().await.unwrap();
    assert!(
        html.contains("name=\"lodge-introspection\" content=\"off\""),
        "{html}"
    );
    let script = hidden.get("/static/console.js").await.text().await.unwrap();
    assert!(script.contains("hides its schema (graphql.introspection = false)"));
}
