use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use lodge::auth::secret::{ApiTokenSecret, TOKEN_LEN, TOKEN_PREFIX};
use serde_json::{Value, json};

use crate::helpers::*;

/// The query of CloudBeaver's "Generate API access token" page, as printed there.
const REFERENCE_QUERY: &str = "query authLogin($credentials: Object) {
authLogin(
provider: \"token\"
credentials: $credentials
) {
authId
userTokens {
userId
}
authStatus
}
}";

const LIST: &str = "{ tokenApiList { tokenName createTime expireTime lastUsedTime } }";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The token names a `tokenApiList` answer lists, in its order.
fn names(listed: &Value) -> Vec<&str> {
    listed["data"]["tokenApiList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tokenName"].as_str().unwrap())
        .collect()
}

fn time(value: &Value) -> Timestamp {
    at(value
        .as_str()
        .unwrap_or_else(|| panic!("a DateTime: {value}")))
}

#[tokio::test]
async fn the_reference_query_logs_in_with_a_new_token_and_the_cookie_then_lists_tokens() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("reference").await;

    let client = app.new_client();
    let response = client
        .gql(
            REFERENCE_QUERY,
            json!({ "credentials": { "token": token } }),
        )
        .await;
    assert_ok(&response);
    let login = &response["data"]["authLogin"];
    assert_eq!(login["authStatus"], "SUCCESS");
    assert_eq!(login["userTokens"], json!([{ "userId": "admin" }]));
    assert!(login["authId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(client.cookie().is_some());

    let listed = client.gql(LIST, json!({})).await;
    assert_eq!(listed["data"]["tokenApiList"][0]["tokenName"], "reference");
    let me = client
        .gql(
            "{ activeUser { userId authTokens { authProvider } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["data"]["activeUser"]["authTokens"][0]["authProvider"],
        "token"
    );
}

#[tokio::test]
async fn a_bearer_header_authenticates_one_request_without_a_session() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("bearer").await;
    let sessions = app.count("sessions");

    let listed = app.gql_bearer(&token, LIST, json!({})).await;
    assert_eq!(
        listed["data"]["tokenApiList"][0]["tokenName"], "bearer",
        "{listed}"
    );
    let me = app
        .gql_bearer(&token, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(me["data"]["activeUser"]["userId"], "admin");
    assert_eq!(
        app.count("sessions"),
        sessions,
        "no session row for a bearer request"
    );

    let bad = app.gql_bearer(&format!("{token}x"), LIST, json!({})).await;
    assert_eq!(error_message(&bad), "User authentication failed");
    assert_eq!(error_code(&bad), "authFailed");
}

#[tokio::test]
async fn credentials_work_as_a_variable_a_literal_with_a_variable_and_an_inline_string() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("forms").await;
    let forms = [
        (
            "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }".to_owned(),
            json!({ "c": { "token": token } }),
        ),
        (
            "query($token: String) { authLogin(provider: \"token\", credentials: { token: $token }) { authStatus } }".to_owned(),
            json!({ "token": token }),
        ),
        (
            format!("{{ authLogin(provider: \"token\", credentials: {{ token: \"{token}\" }}) {{ authStatus }} }}"),
            json!({}),
        ),
    ];
    for (query, variables) in forms {
        let response = app.new_client().gql(&query, variables).await;
        assert_eq!(
            response["data"]["authLogin"]["authStatus"], "SUCCESS",
            "{query}: {response}"
        );
    }
}

#[tokio::test]
async fn an_administrator_creates_one_token_of_each_lifetime_and_the_sixth_is_refused() {
    let start = at("2027-03-10T12:00:00Z");
    let app = spawn_app_at(start, |_| {}).await;
    app.login_admin().await;
    let cases = [
        ("DAY", Some("2027-03-11T12:00:00Z")),
        ("WEEK", Some("2027-03-17T12:00:00Z")),
        ("MONTH", Some("2027-04-10T12:00:00Z")),
        ("YEAR", Some("2028-03-10T12:00:00Z")),
        ("NEVER", None),
    ];
    for (lifetime, expires) in cases {
        let created = app.create_token(&format!("t-{lifetime}"), lifetime).await;
        assert_ok(&created);
        let token = &created["data"]["tokenApiCreate"];
        assert!(token["token"].as_str().unwrap().starts_with("lodge_"));
        assert_eq!(time(&token["createTime"]), start);
        match expires {
            Some(expires) => assert_eq!(time(&token["expireTime"]), at(expires), "{lifetime}"),
            None => assert!(token["expireTime"].is_null(), "{lifetime}"),
        }
    }
    let sixth = app.create_token("sixth", "DAY").await;
    assert_eq!(error_code(&sixth), "quotaExceeded");
    assert_eq!(names(&app.gql(LIST, json!({})).await).len(), 5);
}

#[tokio::test]
async fn twenty_parallel_creates_from_a_fresh_user_give_exactly_five_tokens() {
    let app = spawn_app().await;
    app.add_user("nina", "nina's password", "admin").await;
    app.login("nina", "nina's password").await;
    let creates = (0..20).map(|i| {
        let client = app.new_client();
        client.set_cookie(app.cookie().as_deref());
        async move { client.create_token(&format!("parallel-{i}"), "DAY").await }
    });
    let results = futures_util::future::join_all(creates).await;
    let mut ok = 0;
    let mut quota = 0;
    for result in &results {
        if result.get("errors").is_none() {
            ok += 1;
        } else {
            assert_eq!(error_code(result), "quotaExceeded", "{result}");
            quota += 1;
        }
    }
    assert_eq!((ok, quota), (5, 15));
    let stored = app.query_i64(
        "SELECT count(*) FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.user_id = 'nina'",
    );
    assert_eq!(stored, 5);
}

#[tokio::test]
async fn the_quota_follows_the_configuration() {
    let app = spawn_app_with(|s| s.tokens.max_per_user = 2).await;
    app.login_admin().await;
    app.new_token("one").await;
    app.new_token("two").await;
    let third = app.create_token("three", "DAY").await;
    assert_eq!(error_code(&third), "quotaExceeded");
    assert!(error_message(&third).contains('2'));
}

#[tokio::test]
async fn only_administrators_create_tokens_unless_the_setting_allows_everyone() {
    let app = spawn_app().await;
    app.add_user("omar", "omar's password", "user").await;
    let omar = app.new_client();
    assert_ok(&omar.login("omar", "omar's password").await);
    let refused = omar.create_token("mine", "DAY").await;
    assert_eq!(error_code(&refused), "accessDenied");
    assert_eq!(
        error_code(&app.new_client().create_token("anon", "DAY").await),
        "authRequired"
    );

    let open = spawn_app_with(|s| s.tokens.admins_only = false).await;
    open.add_user("omar", "omar's password", "user").await;
    let omar = open.new_client();
    assert_ok(&omar.login("omar", "omar's password").await);
    assert_ok(&omar.create_token("mine", "DAY").await);
}

#[tokio::test]
async fn nobody_lists_or_deletes_another_users_tokens() {
    let app = spawn_app().await;
    app.add_user("pat", "pat's password", "admin").await;
    app.login_admin().await;
    let admins = app.new_token("shared-name").await;
    let pat = app.new_client();
    assert_ok(&pat.login("pat", "pat's password").await);

    let listed = pat.gql(LIST, json!({})).await;
    assert_eq!(listed["data"]["tokenApiList"], json!([]));
    let deleted = pat
        .gql(
            "mutation { tokenApiDelete(tokenName: \"shared-name\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&deleted), "notFound");
    assert_eq!(
        app.new_client().login_with_token(&admins).await["data"]["authLogin"]["authStatus"],
        "SUCCESS"
    );
    // The same name is free for another user.
    pat.new_token("shared-name").await;
}

#[tokio::test]
async fn every_bad_token_gets_the_same_failure() {
    let app = spawn_app().await;
    app.login_admin().await;
    let good = app.new_token("good").await;
    let deleted = app.new_token("deleted").await;
    assert_ok(
        &app.gql(
            "mutation { tokenApiDelete(tokenName: \"deleted\") }",
            json!({}),
        )
        .await,
    );
    let expiring = app
        .gql(
            "mutation { tokenApiCreate(tokenName: \"expiring\", lifetime: DAY) { token } }",
            json!({}),
        )
        .await["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.advance(SignedDuration::from_hours(24));

    let mut changed = good.clone().into_bytes();
    let last = changed.len() - 10;
    changed[last] = if changed[last] == b'a' { b'b' } else { b'a' };
    let cases = [
        ("one changed character", String::from_utf8(changed).unwrap()),
        ("a wrong prefix", good.replacen("lodge_", "ghp_xx", 1)),
        ("an empty string", String::new()),
        ("10 KB of text", "x".repeat(10 * 1024)),
        ("a deleted token", deleted),
        ("an expired token", expiring),
        (
            "a well-formed token never issued",
            ApiTokenSecret::generate().expose().to_owned(),
        ),
    ];
    for (case, token) in cases {
        let client = app.new_client();
        let response = client.login_with_token(&token).await;
        assert_eq!(
            error_message(&response),
            "User authentication failed",
            "{case}"
        );
        assert_eq!(error_code(&response), "authFailed", "{case}");
        assert!(client.cookie().is_none(), "{case}");
        let bearer = app.gql_bearer(&token, LIST, json!({})).await;
        assert_eq!(
            error_code(&bearer),
            "authFailed",
            "{case} as a bearer token"
        );
    }
    assert_eq!(
        app.new_client().login_with_token(&good).await["data"]["authLogin"]["authStatus"],
        "SUCCESS"
    );
}

#[tokio::test]
async fn a_malformed_token_is_refused_before_the_database_is_asked() {
    let app = spawn_app().await;
    app.login_admin().await;
    let good = app.new_token("good").await;
    // Take the token table away: any lookup now fails as an internal error.
    app.execute("ALTER TABLE api_tokens RENAME TO hidden_tokens");

    let mut flipped = good.clone().into_bytes();
    flipped[20] = if flipped[20] == b'Q' { b'R' } else { b'Q' };
    let response = app
        .new_client()
        .login_with_token(&String::from_utf8(flipped).unwrap())
        .await;
    assert_eq!(error_message(&response), "User authentication failed");

    let looked_up = app.new_client().login_with_token(&good).await;
    assert_eq!(error_message(&looked_up), "internal error", "{looked_up}");
    let text = looked_up.to_string().to_lowercase();
    for leak in ["sqlite", "api_tokens", "no such table", ".db"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

#[test]
fn a_thousand_generated_tokens_are_well_formed_and_distinct() {
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let token = ApiTokenSecret::generate();
        let text = token.expose();
        assert_eq!(text.len(), TOKEN_LEN);
        assert_eq!(TOKEN_LEN, "lodge_".len() + 43 + 6);
        assert!(text.starts_with(TOKEN_PREFIX));
        assert!(
            text[TOKEN_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        );
        assert!(ApiTokenSecret::parse(text).is_ok());
        assert!(seen.insert(text.to_owned()), "repeated token");
    }
}

#[tokio::test]
async fn the_database_never_holds_a_secret_and_the_list_never_shows_one() {
    let app = spawn_app().await;
    app.login_admin().await;
    let mut secrets = Vec::new();
    for name in ["a", "b", "c"] {
        secrets.push(app.new_token(name).await);
    }
    let listed = app.gql(LIST, json!({})).await.to_string();
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", app.db_path.display());
        files.push(std::fs::read(&path).unwrap_or_default());
    }
    for secret in &secrets {
        assert!(!listed.contains(secret.as_str()));
        let body = &secret[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + 43];
        for file in &files {
            assert!(
                !file.windows(body.len()).any(|w| w == body.as_bytes()),
                "a secret is in the database file"
            );
        }
    }
}

#[tokio::test]
async fn names_are_trimmed_bounded_and_unique_per_user() {
    let app = spawn_app().await;
    app.login_admin().await;
    let created = app.create_token("  padded  ", "DAY").await;
    assert_eq!(created["data"]["tokenApiCreate"]["tokenName"], "padded");
    assert_eq!(
        error_code(&app.create_token("padded", "DAY").await),
        "alreadyExists"
    );

    let longest = "n".repeat(64);
    assert_ok(&app.create_token(&longest, "DAY").await);
    let cases = [
        ("empty", String::new()),
        ("only spaces", "   ".to_owned()),
        ("65 characters", "n".repeat(65)),
        ("a control character", "bad\u{7}name".to_owned()),
        ("a newline", "two\nlines".to_owned()),
    ];
    for (case, name) in cases {
        assert_eq!(
            error_code(&app.create_token(&name, "DAY").await),
            "invalidInput",
            "{case}"
        );
    }
    let listed = app.gql(LIST, json!({})).await;
    assert_eq!(names(&listed).len(), 2);
}

#[tokio::test]
async fn expiry_is_a_lifetime_or_a_future_date_never_both() {
    let start = at("2027-06-01T00:00:00Z");
    let app = spawn_app_at(start, |_| {}).await;
    app.login_admin().await;
    // (token name, tokenApiCreate's expiry arguments, the expiry given or the error code)
    let cases = [
        (
            "dated",
            "expiresAt: \"2027-06-15T08:30:00Z\"",
            Ok("2027-06-15T08:30:00Z"),
        ),
        (
            "past",
            "expiresAt: \"2027-05-31T23:59:59Z\"",
            Err("invalidInput"),
        ),
        (
            "both",
            "lifetime: DAY, expiresAt: \"2027-07-01T00:00:00Z\"",
            Err("invalidInput"),
        ),
        // A month by default.
        ("default", "", Ok("2027-07-01T00:00:00Z")),
    ];
    for (name, expiry, expected) in cases {
        let arguments = [format!("tokenName: \"{name}\""), expiry.to_owned()]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        let query = format!("mutation {{ tokenApiCreate({arguments}) {{ expireTime }} }}");
        let created = app.gql(&query, json!({})).await;
        match expected {
            Ok(expires) => assert_eq!(
                time(&created["data"]["tokenApiCreate"]["expireTime"]),
                at(expires),
                "{name}"
            ),
            Err(code) => assert_eq!(error_code(&created), code, "{name}"),
        }
    }
}

#[tokio::test]
async fn never_expiring_tokens_and_the_default_lifetime_follow_the_configuration() {
    let app = spawn_app_at(at("2027-06-01T00:00:00Z"), |s| {
        s.tokens.allow_never = false;
        s.tokens.default_lifetime = lodge::config::Lifetime::Week;
    })
    .await;
    app.login_admin().await;
    assert_eq!(
        error_code(&app.create_token("forever", "NEVER").await),
        "invalidInput"
    );
    let default = app
        .gql(
            "mutation { tokenApiCreate(tokenName: \"default\") { expireTime } }",
            json!({}),
        )
        .await;
    assert_eq!(
        time(&default["data"]["tokenApiCreate"]["expireTime"]),
        at("2027-06-08T00:00:00Z")
    );
}

#[tokio::test]
async fn month_and_year_lifetimes_follow_the_calendar_at_month_ends_and_leap_days() {
    let cases = [
        ("2027-01-31T09:00:00Z", "MONTH", "2027-02-28T09:00:00Z"),
        ("2028-01-31T09:00:00Z", "MONTH", "2028-02-29T09:00:00Z"),
        ("2027-03-31T09:00:00Z", "MONTH", "2027-04-30T09:00:00Z"),
        ("2028-02-29T09:00:00Z", "YEAR", "2029-02-28T09:00:00Z"),
        ("2027-12-31T23:00:00Z", "DAY", "2028-01-01T23:00:00Z"),
    ];
    for (start, lifetime, expires) in cases {
        let app = spawn_app_at(at(start), |_| {}).await;
        app.login_admin().await;
        let created = app.create_token("calendar", lifetime).await;
        assert_eq!(
            time(&created["data"]["tokenApiCreate"]["expireTime"]),
            at(expires),
            "{lifetime} from {start}"
        );
    }
}

#[tokio::test]
async fn expired_tokens_stay_listed_free_the_quota_and_are_removed_later() {
    let app = spawn_app().await;
    app.login_admin().await;
    for i in 0..5 {
        assert_ok(&app.create_token(&format!("short-{i}"), "DAY").await);
    }
    assert_eq!(
        error_code(&app.create_token("blocked", "DAY").await),
        "quotaExceeded"
    );
    app.advance(SignedDuration::from_hours(25));
    app.login_admin().await;
    assert_ok(&app.create_token("after-expiry", "WEEK").await);
    // An expired token's name can be taken again.
    assert_ok(&app.create_token("short-0", "WEEK").await);

    let listed = app.gql(LIST, json!({})).await;
    assert_eq!(
        names(&listed),
        [
            "short-1",
            "short-2",
            "short-3",
            "short-4",
            "after-expiry",
            "short-0"
        ]
    );
    let now = app.clock.now();
    assert!(
        time(&listed["data"]["tokenApiList"][0]["expireTime"]) < now,
        "shown as expired"
    );

    // 30 days after expiry they are no longer listed.
    app.advance(SignedDuration::from_hours(24 * 30));
    app.login_admin().await;
    let listed = app.gql(LIST, json!({})).await;
    assert_eq!(names(&listed), ["after-expiry", "short-0"]);
}

#[tokio::test]
async fn a_session_opened_with_a_token_ends_when_the_token_is_deleted() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("session-maker").await;
    let scripted = app.new_client();
    assert_ok(&scripted.login_with_token(&token).await);
    assert_ok(&scripted.gql(LIST, json!({})).await);

    assert_ok(
        &app.gql(
            "mutation { tokenApiDelete(tokenName: \"session-maker\") }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        error_code(&scripted.gql(LIST, json!({})).await),
        "sessionExpired"
    );
    assert_eq!(
        error_code(&app.gql_bearer(&token, LIST, json!({})).await),
        "authFailed"
    );
    assert_ok(&app.gql(LIST, json!({})).await);
}

#[tokio::test]
async fn with_the_setting_off_a_deleted_tokens_session_lives_on_as_cloudbeaver_documents() {
    let app = spawn_app_with(|s| s.tokens.end_sessions_on_delete = false).await;
    app.login_admin().await;
    let token = app.new_token("session-maker").await;
    let scripted = app.new_client();
    assert_ok(&scripted.login_with_token(&token).await);
    assert_ok(
        &app.gql(
            "mutation { tokenApiDelete(tokenName: \"session-maker\") }",
            json!({}),
        )
        .await,
    );
    assert_ok(&scripted.gql(LIST, json!({})).await);
    assert_eq!(
        error_code(&app.new_client().login_with_token(&token).await),
        "authFailed"
    );
}

#[tokio::test]
async fn a_session_opened_with_a_token_ends_when_the_token_expires() {
    let app = spawn_app_with(|s| {
        s.session.idle_timeout = lodge::config::Duration::parse("2d").unwrap();
        s.session.max_lifetime = lodge::config::Duration::parse("3d").unwrap();
    })
    .await;
    app.login_admin().await;
    let created = app.create_token("daily", "DAY").await;
    let token = created["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let scripted = app.new_client();
    assert_ok(&scripted.login_with_token(&token).await);
    app.advance(SignedDuration::from_hours(23));
    assert_ok(&scripted.gql(LIST, json!({})).await);
    app.advance(SignedDuration::from_hours(2));
    assert_eq!(
        error_code(&scripted.gql(LIST, json!({})).await),
        "sessionExpired"
    );
    assert_ok(&app.gql(LIST, json!({})).await);
}

#[tokio::test]
async fn deleting_a_user_deletes_their_tokens() {
    let app = spawn_app().await;
    app.add_user("quinn", "quinn's password", "admin").await;
    let quinn = app.new_client();
    assert_ok(&quinn.login("quinn", "quinn's password").await);
    let token = quinn.new_token("quinn's").await;
    app.login_admin().await;
    assert_ok(
        &app.gql("{ deleteUser(userId: \"quinn\") }", json!({}))
            .await,
    );
    assert_eq!(app.count("api_tokens"), 0);
    assert_eq!(
        error_code(&app.new_client().login_with_token(&token).await),
        "authFailed"
    );
}

#[tokio::test]
async fn last_use_is_recorded_at_most_once_a_minute() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("used").await;
    let last_used = || async {
        let listed = app.gql(LIST, json!({})).await;
        listed["data"]["tokenApiList"][0]["lastUsedTime"].clone()
    };
    assert!(last_used().await.is_null());

    app.gql_bearer(&token, "{ activeUser { userId } }", json!({}))
        .await;
    let first = time(&last_used().await);
    assert_eq!(first, app.clock.now());
    app.advance(SignedDuration::from_secs(30));
    app.gql_bearer(&token, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(
        time(&last_used().await),
        first,
        "not written again within a minute"
    );
    app.advance(SignedDuration::from_secs(31));
    app.new_client().login_with_token(&token).await;
    assert_eq!(time(&last_used().await), app.clock.now());

    // Held in memory until the next flush (every minute and at shutdown), then in the file.
    let stored = || app.query_opt_i64("SELECT last_used_at FROM api_tokens");
    assert_eq!(stored(), None);
    // The token's last use and its owner's last login.
    assert_eq!(app.auth.flush_last_used().await.unwrap(), 2);
    assert_eq!(stored(), Some(app.clock.now().as_microsecond()));
    assert_eq!(app.auth.flush_last_used().await.unwrap(), 0);
    assert_eq!(time(&last_used().await), app.clock.now());
}

#[tokio::test]
async fn the_last_use_records_the_client_address_for_the_owner_and_administrators() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![lodge::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.login_admin().await;
    let token = app.new_token("from-ci").await;
    let list = "{ tokenApiList { lastUsedAddress } }";
    let admin_list = "{ adminTokenList { lastUsedAddress } }";
    let address = |answer: Value, field: &str| answer["data"][field][0]["lastUsedAddress"].clone();
    assert!(address(app.gql(list, json!({})).await, "tokenApiList").is_null());

    let from = [("X-Forwarded-For", "198.51.100.23")];
    let bearer = format!("Bearer {token}");
    app.new_client()
        .gql_with(
            "{ activeUser { userId } }",
            json!({}),
            &[from[0], ("Authorization", bearer.as_str())],
        )
        .await;
    // Held in memory, and shown, before it is written.
    assert_eq!(
        address(app.gql(list, json!({})).await, "tokenApiList"),
        "198.51.100.23"
    );
    app.auth.flush_last_used().await.unwrap();
    let stored = app.query_texts("SELECT last_used_address FROM api_tokens");
    assert_eq!(stored, ["198.51.100.23"]);
    assert_eq!(
        address(app.gql(admin_list, json!({})).await, "adminTokenList"),
        "198.51.100.23"
    );

    // A minute later a login from elsewhere is the last use.
    app.advance(SignedDuration::from_secs(61));
    app.new_client()
        .gql_with(
            "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
            json!({ "c": { "token": token } }),
            &[("X-Forwarded-For", "203.0.113.5")],
        )
        .await;
    assert_eq!(
        address(app.gql(list, json!({})).await, "tokenApiList"),
        "203.0.113.5"
    );
}

#[tokio::test]
async fn deleting_an_unknown_token_says_so() {
    let app = spawn_app().await;
    app.login_admin().await;
    let response = app
        .gql(
            "mutation { tokenApiDelete(tokenName: \"ghost\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&response), "notFound");
    assert!(error_message(&response).contains("ghost"));
}

/// A token deleted by another process after the login looked it up, while the login's write
/// waited for the database, fails the login as any unknown token does: no session, no internal
/// error. (The other process here holds the write lock while the login is looked up, then
/// deletes the token and lets the login's write go.)
#[tokio::test]
async fn a_token_deleted_by_another_process_during_its_login_fails_it_as_unknown() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("deleted-meanwhile").await;
    let sessions_before = app.count("sessions");

    let client = app.new_client();
    let login = delete_token_while_logins_wait(&app, "deleted-meanwhile", || {
        tokio::spawn(async move { client.login_with_token(&token).await })
    })
    .await;

    let response = login.await.unwrap();
    assert_eq!(error_code(&response), "authFailed", "{response}");
    assert!(
        error_message(&response).starts_with("User authentication failed"),
        "{response}"
    );
    assert_eq!(app.count("sessions"), sessions_before);
}

/// Logins that wait for the writer together are committed together: one of them whose token
/// goes meanwhile fails alone, and the others open their sessions.
#[tokio::test]
async fn logins_written_together_fail_alone_when_their_token_goes_meanwhile() {
    let app = spawn_app().await;
    app.login_admin().await;
    let names = ["first", "deleted-meanwhile", "last"];
    let mut tokens = Vec::new();
    for name in names {
        tokens.push(app.new_token(name).await);
    }
    let sessions_before = app.count("sessions");

    // The three are looked up, then wait for the writer, which waits for the lock.
    let logins: Vec<_> = delete_token_while_logins_wait(&app, "deleted-meanwhile", || {
        tokens
            .into_iter()
            .map(|token| {
                let client = app.new_client();
                tokio::spawn(async move { client.login_with_token(&token).await })
            })
            .collect()
    })
    .await;

    let mut answers = Vec::new();
    for login in logins {
        answers.push(login.await.unwrap());
    }
    for (name, response) in names.iter().zip(&answers) {
        if *name == "deleted-meanwhile" {
            assert_eq!(error_code(response), "authFailed", "{response}");
        } else {
            assert_eq!(
                response["data"]["authLogin"]["authStatus"], "SUCCESS",
                "{name}: {response}"
            );
        }
    }
    assert_eq!(app.count("sessions"), sessions_before + 2);
}

/// Holds the database's write lock from another connection while `start` sends logins, waits
/// for them to be looked up (that needs no lock; their writes wait for it), then deletes the
/// token named `name` and lets the writes go.
async fn delete_token_while_logins_wait<T>(
    app: &TestApp,
    name: &str,
    start: impl FnOnce() -> T,
) -> T {
    if let Some(url) = &app.db_url {
        // Another node: it holds the write lock every node's writer takes while the logins
        // queue, then deletes the token.
        let (locked, holds) = std::sync::mpsc::channel();
        let (url, name) = (url.clone(), name.to_owned());
        let other = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut tx = client.transaction().unwrap();
            tx.batch_execute(crate::postgres::WRITE_LOCK).unwrap();
            locked.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            tx.execute("DELETE FROM api_tokens WHERE name = $1", &[&name])
                .unwrap();
            tx.commit().unwrap();
        });
        holds.recv().unwrap();
        let started = start();
        tokio::task::spawn_blocking(move || other.join().unwrap())
            .await
            .unwrap();
        return started;
    }
    let other = app.db();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = start();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    other
        .execute("DELETE FROM api_tokens WHERE name = ?1", [name])
        .unwrap();
    other.execute_batch("COMMIT").unwrap();
    started
}

#[tokio::test]
async fn token_names_refuse_bidi_overrides_zero_width_characters_and_byte_order_marks() {
    let app = spawn_app().await;
    app.login_admin().await;
    let cases = [
        ("a right-to-left override", "deploy\u{202e}txt.exe"),
        ("a left-to-right isolate", "a\u{2066}b"),
        ("a zero-width space", "ci\u{200b}"),
        ("a zero-width joiner", "c\u{200d}i"),
        ("a byte order mark", "\u{feff}ci"),
    ];
    for (case, name) in cases {
        let response = app.create_token(name, "DAY").await;
        assert_eq!(error_code(&response), "invalidInput", "{case}");
        assert!(
            error_message(&response).contains("U+"),
            "{case}: {response}"
        );
    }
    assert_ok(&app.create_token("Überwachung ✓", "DAY").await);
}

#[tokio::test]
async fn a_token_expiring_within_warn_before_is_marked_up_to_its_expiry() {
    let app = spawn_app().await;
    app.login_admin().await;
    app.create_token("week", "WEEK").await;
    app.create_token("month", "MONTH").await;
    app.create_token("never", "NEVER").await;
    let soon = || async {
        // Days pass between the calls: a fresh session each time.
        app.login_admin().await;
        let listed = app
            .gql("{ tokenApiList { tokenName expiresSoon } }", json!({}))
            .await;
        listed["data"]["tokenApiList"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["expiresSoon"] == true)
            .map(|t| t["tokenName"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        soon().await,
        ["week"],
        "exactly tokens.warn_before (7d) away counts"
    );
    // The month's token enters the window when 7 days are left, not a microsecond earlier.
    let listed = app
        .gql("{ tokenApiList { tokenName expireTime } }", json!({}))
        .await;
    let month_at: jiff::Timestamp = listed["data"]["tokenApiList"][1]["expireTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let to_window = month_at.duration_since(app.clock.now()) - SignedDuration::from_hours(7 * 24);
    app.advance(to_window - SignedDuration::from_micros(1));
    assert_eq!(
        soon().await,
        Vec::<String>::new(),
        "the week's has expired meanwhile"
    );
    app.advance(SignedDuration::from_micros(1));
    assert_eq!(soon().await, ["month"]);
    // Marked up to its expiry, and no longer once expired.
    app.advance(SignedDuration::from_hours(7 * 24) - SignedDuration::from_micros(1));
    assert_eq!(soon().await, ["month"]);
    app.advance(SignedDuration::from_micros(1));
    assert_eq!(soon().await, Vec::<String>::new());
}
