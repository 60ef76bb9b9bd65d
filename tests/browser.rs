//! The profile page and the console in headless Debian Chromium, driven through chromedriver.
//! Without `chromium` and `chromium-driver` installed it says so and skips, unless
//! `CI_REQUIRE_BROWSER` is set (as `.ci/run` does), when it fails.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

#[allow(dead_code)]
#[path = "api/postgres.rs"]
mod postgres;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use helpers::*;
use serde_json::{Value, json};

const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,760",
];

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(chromedriver: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url }
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    browser_with(driver, chromium, profile, &[]).await
}

/// A Chromium session with flags of its own beside [`CHROMIUM_FLAGS`].
async fn browser_with(driver: &Driver, chromium: &Path, profile: &Path, extra: &[&str]) -> Client {
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
    args.extend(extra.iter().map(|f| f.to_string()));
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Polls a JavaScript condition until it holds, for 30 s: a first Chromium start on a loaded CI
/// machine once took more than 15 s to show the first tab.
async fn wait_for(client: &Client, condition: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = client
            .execute(&format!("return Boolean({condition});"), vec![])
            .await
            .unwrap();
        if value == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn js(client: &Client, expression: &str) -> Value {
    client
        .execute(&format!("return {expression};"), vec![])
        .await
        .unwrap()
}

async fn text(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn type_into(client: &Client, id: &str, value: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks the element, found again when the page redrew it between the find and the click (the
/// token list is redrawn whenever it is fetched, as after a dialog closes).
async fn click(client: &Client, css: &str) {
    for _ in 0..50 {
        match client.find(Locator::Css(css)).await.unwrap().click().await {
            Err(e) if e.is_stale_element_reference() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            clicked => return clicked.unwrap(),
        }
    }
    panic!("{css} was redrawn before every click");
}

async fn active_id(client: &Client) -> String {
    js(client, "document.activeElement.id")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Logs out with the page's button and waits until the page shows the login form again, that
/// is until the server has answered the logout: navigating away before then can cancel it.
async fn log_out(client: &Client) {
    click(client, "#logout").await;
    wait_for(
        client,
        "!document.getElementById('login-view').hidden",
        "the login form",
    )
    .await;
}

async fn log_in(client: &Client, user: &str, password: &str) {
    wait_for(
        client,
        "!document.getElementById('login-view').hidden",
        "the login form",
    )
    .await;
    type_into(client, "login-user", user).await;
    type_into(client, "login-password", password).await;
    client
        .find(Locator::Id("login-password"))
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
}

/// Adds a token through the dialog with the keyboard; returns the secret shown once, or the
/// error shown in the dialog.
async fn add_token(client: &Client, name: &str, lifetime: &str) -> Result<String, String> {
    click(client, "#add-token").await;
    wait_for(
        client,
        "document.getElementById('add-dialog').open",
        "the add dialog",
    )
    .await;
    assert_eq!(
        active_id(client).await,
        "token-name",
        "the name field has focus"
    );
    type_into(client, "token-name", name).await;
    click(client, &format!("input[name=lifetime][value={lifetime}]")).await;
    client
        .find(Locator::Id("token-name"))
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    wait_for(
        client,
        "!document.getElementById('add-result').hidden || document.getElementById('add-error').textContent",
        "the token or an error",
    )
    .await;
    let error = text(client, "add-error").await;
    if !error.is_empty() {
        return Err(error);
    }
    let field = client.find(Locator::Id("new-token")).await.unwrap();
    Ok(field.prop("value").await.unwrap().unwrap_or_default())
}

async fn close_dialog_with_escape(client: &Client) {
    client
        .active_element()
        .await
        .unwrap()
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    wait_for(
        client,
        "!document.getElementById('add-dialog').open",
        "the dialog to close",
    )
    .await;
}

async fn row_names(client: &Client) -> Vec<String> {
    let names = js(
        client,
        "[...document.querySelectorAll('#token-rows tr td:first-child')].map(td => td.textContent)",
    )
    .await;
    serde_json::from_value(names).unwrap()
}

fn save_screenshot(png: &[u8], name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test]
async fn a_person_manages_api_tokens_on_the_profile_page() {
    let (Some(chromium), Some(chromedriver)) = (
        find(&["chromium", "chromium-browser"]),
        find(&["chromedriver"]),
    ) else {
        let why = "browser test skipped: `chromium` and `chromedriver` are not on PATH \
                   (Debian: apt-get install chromium chromium-driver)";
        if std::env::var_os("CI_REQUIRE_BROWSER").is_some() {
            panic!("{why}, and CI_REQUIRE_BROWSER is set");
        }
        eprintln!("{why}");
        return;
    };
    let app = spawn_app().await;
    let driver = start_driver(&chromedriver);
    let profile = tempfile::tempdir().unwrap();
    let uma_profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, &chromium, profile.path()).await;

    logging_in_shows_an_error_for_a_wrong_password_then_the_profile(&app, &client).await;
    let secrets = one_token_of_each_expiration_is_shown_once(&client).await;
    reloading_shows_the_list_but_never_a_secret(&client, &secrets).await;
    let api = the_secret_read_from_the_field_logs_in_through_the_api(&app, &secrets[1]).await;
    at_the_limit_add_is_disabled_and_says_why(&client).await;
    delete_asks_first_naming_the_token_and_removes_the_row(&client, &api, &secrets[1]).await;
    a_name_that_looks_like_markup_is_shown_as_text(&client).await;
    a_token_limited_in_the_access_section_lists_its_limits(&app, &client).await;
    rotating_shows_the_new_secret_once_and_the_old_ones_grace(&app, &client).await;
    the_console_is_graphiql_on_the_page_session(&app, &client).await;
    let (password, leaked) =
        an_administrator_adds_a_user_with_a_generated_password(&app, &client).await;
    // uma's browser prefers a dark theme.
    let dark = ["--blink-settings=preferredColorScheme=0"];
    let uma = browser_with(&driver, &chromium, uma_profile.path(), &dark).await;
    the_new_user_logs_in_and_sees_no_users_or_audit_tab(&app, &uma, &password).await;
    the_administrator_revokes_a_token_and_ends_a_session_and_the_users_page_follows(&client, &uma)
        .await;
    an_administrator_finds_and_revokes_a_pasted_token(&app, &client, &leaked).await;
    the_sessions_tab_ends_another_session(&app, &client).await;
    the_audit_tab_filters_the_log(&client).await;
    at_390_pixels_nothing_is_wider_than_the_screen(&client).await;
    uma.close().await.unwrap();
    logging_out_ends_the_session_on_the_server(&app, &client).await;
    a_user_who_may_not_create_tokens_is_told_why(&app, &client).await;
    return_to_is_followed_to_lodges_own_pages_only(&app, &client).await;

    client.close().await.unwrap();
}

/// Logged out: the login form, and an error beside it for a wrong password.
async fn logging_in_shows_an_error_for_a_wrong_password_then_the_profile(
    app: &TestApp,
    client: &Client,
) {
    client.goto(&app.url).await.unwrap();
    log_in(client, ADMIN, "wrong password").await;
    wait_for(
        client,
        "document.getElementById('login-error').textContent",
        "a login error",
    )
    .await;
    assert_eq!(text(client, "login-error").await, "Wrong user or password.");
    log_in(client, ADMIN, ADMIN_PASSWORD).await;
    wait_for(
        client,
        "!document.getElementById('profile-view').hidden",
        "the profile",
    )
    .await;
    assert_eq!(text(client, "who-name").await, "admin");
    assert_eq!(text(client, "who-role").await, "administrator");
}

/// One token of each expiration, each shown once.
async fn one_token_of_each_expiration_is_shown_once(client: &Client) -> Vec<String> {
    let lifetimes = [
        ("DAY", "t-day"),
        ("WEEK", "t-week"),
        ("MONTH", "t-month"),
        ("YEAR", "t-year"),
        ("NEVER", "t-never"),
    ];
    let mut secrets = Vec::new();
    for (i, (lifetime, name)) in lifetimes.iter().enumerate() {
        let secret = add_token(client, name, lifetime).await.expect("created");
        assert!(
            secret.starts_with("lodge_") && secret.len() == 55,
            "{secret}"
        );
        let warning = text(client, "once-warning").await;
        assert!(warning.contains("will not be shown again"), "{warning}");
        if i == 0 {
            click(client, "#copy-token").await;
            wait_for(
                client,
                "document.getElementById('copy-status').textContent",
                "copy status",
            )
            .await;
            save_screenshot(&client.screenshot().await.unwrap(), "token-once.png");
            close_dialog_with_escape(client).await;
        } else {
            click(client, "#add-done").await;
            wait_for(
                client,
                "!document.getElementById('add-dialog').open",
                "Done to close",
            )
            .await;
        }
        // Back to + Add; after the fifth, which disables it, to the tab.
        let back = if i < 4 { "add-token" } else { "tab-tokens" };
        wait_for(
            client,
            &format!("document.activeElement.id === '{back}'"),
            "focus to return",
        )
        .await;
        let source = client.source().await.unwrap();
        assert!(
            !source.contains(&secret),
            "the secret left the page when the dialog closed"
        );
        secrets.push(secret);
    }
    wait_for(
        client,
        "document.querySelectorAll('#token-rows tr').length === 5",
        "five rows",
    )
    .await;
    let expires = js(
        client,
        "document.querySelector('#token-rows tr:last-child td[data-label=Expires]').textContent",
    )
    .await;
    assert_eq!(expires, "never");
    secrets
}

/// Reloading shows the list but never a secret.
async fn reloading_shows_the_list_but_never_a_secret(client: &Client, secrets: &[String]) {
    client.refresh().await.unwrap();
    wait_for(
        client,
        "document.querySelectorAll('#token-rows tr').length === 5",
        "the list after reload",
    )
    .await;
    let source = client.source().await.unwrap();
    for secret in secrets {
        assert!(!source.contains(secret.as_str()));
    }
    // The day's and the week's tokens expire within tokens.warn_before (7 days).
    let banner = text(client, "expiry-banner").await;
    assert!(
        banner.starts_with("2 of your tokens expire soon") && banner.contains("“t-week” in 6 days"),
        "{banner}"
    );
    assert_eq!(
        js(
            client,
            "document.querySelectorAll('#token-rows .soon').length"
        )
        .await,
        2
    );
    save_screenshot(&client.screenshot().await.unwrap(), "token-tab.png");
}

/// The secret read from the field logs in through the API.
async fn the_secret_read_from_the_field_logs_in_through_the_api(
    app: &TestApp,
    secret: &str,
) -> TestApp {
    let api = app.new_client();
    let login = api.login_with_token(secret).await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );
    api
}

/// With five live tokens, + Add is disabled and the rule above it says why.
async fn at_the_limit_add_is_disabled_and_says_why(client: &Client) {
    assert_eq!(
        js(client, "document.getElementById('add-token').disabled").await,
        true
    );
    let policy = text(client, "token-policy").await;
    assert!(policy.contains("5 of 5"), "{policy}");
    assert!(policy.contains("delete one to add another"), "{policy}");
}

/// Delete asks first, naming the token; Cancel keeps it, Delete removes the row.
async fn delete_asks_first_naming_the_token_and_removes_the_row(
    client: &Client,
    api: &TestApp,
    secret: &str,
) {
    click(client, "button[aria-label='Delete token t-week']").await;
    wait_for(
        client,
        "document.getElementById('delete-dialog').open",
        "the delete dialog",
    )
    .await;
    assert_eq!(text(client, "delete-name").await, "t-week");
    click(client, "#delete-cancel").await;
    wait_for(
        client,
        "!document.getElementById('delete-dialog').open",
        "cancel",
    )
    .await;
    assert!(row_names(client).await.contains(&"t-week".to_owned()));
    click(client, "button[aria-label='Delete token t-week']").await;
    wait_for(
        client,
        "document.getElementById('delete-dialog').open",
        "the delete dialog",
    )
    .await;
    click(client, "#delete-confirm").await;
    wait_for(
        client,
        "document.querySelectorAll('#token-rows tr').length === 4",
        "the row to go",
    )
    .await;
    assert!(!row_names(client).await.contains(&"t-week".to_owned()));
    let gone = api.new_client().login_with_token(secret).await;
    assert_eq!(gone["errors"][0]["message"], "User authentication failed");
}

/// A name that looks like markup is shown as text.
async fn a_name_that_looks_like_markup_is_shown_as_text(client: &Client) {
    let markup = "<img src=x onerror=alert(1)>";
    add_token(client, markup, "DAY").await.expect("created");
    click(client, "#add-done").await;
    wait_for(
        client,
        "document.querySelectorAll('#token-rows tr').length === 5",
        "the new row",
    )
    .await;
    assert!(row_names(client).await.contains(&markup.to_owned()));
    assert_eq!(
        js(
            client,
            "document.querySelectorAll('#token-rows img').length"
        )
        .await,
        0
    );
}

/// The Add dialog's Access section: a bad address is flagged as typed, and the token made
/// read-only from one network shows its limits as badges.
async fn a_token_limited_in_the_access_section_lists_its_limits(app: &TestApp, client: &Client) {
    // Room for one more (the list holds five), made through the API in a session that ends.
    let api = app.new_client();
    api.login_admin().await;
    assert_ok(
        &api.gql(
            "mutation { tokenApiDelete(tokenName: \"t-day\") }",
            json!({}),
        )
        .await,
    );
    js(client, "window.dispatchEvent(new Event('focus'))").await;
    wait_for(
        client,
        "!document.getElementById('add-token').disabled",
        "room for a token",
    )
    .await;
    click(client, "#add-token").await;
    wait_for(
        client,
        "document.getElementById('add-dialog').open",
        "the add dialog",
    )
    .await;
    type_into(client, "token-name", "reporting").await;
    click(client, "#access summary").await;
    click(client, "input[name=api-access][value=read_api]").await;
    click(client, "input[name=proxy-access][value='']").await;
    type_into(client, "token-allow-from", "10.0.0.0/33").await;
    wait_for(
        client,
        "document.getElementById('allow-from-error').textContent.includes('not an address')",
        "the address flagged as typed",
    )
    .await;
    type_into(client, "token-allow-from", "10.0.0.0/8").await;
    wait_for(
        client,
        "document.getElementById('allow-from-error').textContent === ''",
        "the flag gone",
    )
    .await;
    assert_eq!(
        text(client, "access-summary").await,
        "(read_api, from 10.0.0.0/8)"
    );
    save_screenshot(&client.screenshot().await.unwrap(), "token-access.png");
    click(client, "#add-submit").await;
    wait_for(
        client,
        "!document.getElementById('add-result').hidden",
        "the new token",
    )
    .await;
    click(client, "#add-done").await;
    wait_for(
        client,
        "[...document.querySelectorAll('#token-rows tr')].some(r => r.textContent.includes('reporting'))",
        "the new row",
    )
    .await;
    let badges = js(
        client,
        "[...document.querySelectorAll('#token-rows tr')].find(r => r.textContent.includes('reporting')).querySelector('td[data-label=Access]').textContent",
    )
    .await;
    assert_eq!(badges, "API read-only from 10.0.0.0/8");
    let listed = api
        .gql("{ tokenApiList { tokenName scopes allowFrom } }", json!({}))
        .await;
    assert_ok(&api.gql("{ authLogout }", json!({})).await);
    let made = listed["data"]["tokenApiList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tokenName"] == "reporting")
        .cloned()
        .unwrap();
    assert_eq!(made["scopes"], json!(["read_api"]));
    assert_eq!(made["allowFrom"], json!(["10.0.0.0/8"]));
}

/// Rotate asks for the old secret's grace, shows the new secret once, and the row says until
/// when the old one works.
async fn rotating_shows_the_new_secret_once_and_the_old_ones_grace(app: &TestApp, client: &Client) {
    click(client, "button[aria-label='Rotate token t-year']").await;
    wait_for(
        client,
        "document.getElementById('rotate-dialog').open",
        "the rotate dialog",
    )
    .await;
    assert_eq!(text(client, "rotate-name").await, "“t-year”");
    click(client, "input[name=grace][value='3600']").await;
    click(client, "#rotate-submit").await;
    wait_for(
        client,
        "!document.getElementById('rotate-result').hidden",
        "the new secret",
    )
    .await;
    let secret = client
        .find(Locator::Id("rotated-token"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(secret.starts_with("lodge_"), "{secret}");
    assert_eq!(
        text(client, "rotated-grace").await,
        "The old secret keeps working for 1 hour."
    );
    // The page sends no lifetime: the year-long token gets a year from now, not the default.
    assert!(
        text(client, "rotated-expiry")
            .await
            .starts_with("The new secret expires on "),
        "{}",
        text(client, "rotated-expiry").await
    );
    let shown = client
        .execute(
            "return document.querySelector('#rotated-expiry time').dateTime",
            vec![],
        )
        .await
        .unwrap();
    let shown: jiff::Timestamp = shown.as_str().unwrap().parse().unwrap();
    let year = app
        .clock
        .now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().years(1))
        .unwrap()
        .timestamp();
    assert!(
        shown.duration_since(year).abs() < jiff::SignedDuration::from_secs(5),
        "a year from the rotation: {shown}, {year}"
    );
    click(client, "#rotate-result .close").await;
    wait_for(
        client,
        "[...document.querySelectorAll('#token-rows tr')].some(r => r.textContent.includes('t-year') && r.textContent.includes('previous secret valid until'))",
        "the grace in the row",
    )
    .await;
    assert!(
        !client.source().await.unwrap().contains(&secret),
        "the secret left the page"
    );
    // Checked with Bearer: a session would change the counts the Users tab shows later.
    let me = app
        .gql_bearer(&secret, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(me["data"]["activeUser"]["userId"], "admin", "{me}");
}

/// The CodeMirror editor inside the GraphiQL element `css`, as a JavaScript expression.
fn editor(css: &str) -> String {
    format!("document.querySelector('{css} .CodeMirror').CodeMirror")
}

/// Runs the console's current operation and waits for an answer holding `expected`; gives it.
async fn run_in_console(client: &Client, expected: &str) -> Value {
    js(
        client,
        &format!("{}.setValue('')", editor(".graphiql-response")),
    )
    .await;
    click(client, ".graphiql-execute-button").await;
    let response = editor(".graphiql-response");
    wait_for(
        client,
        &format!("{response}.getValue().includes({expected:?})"),
        &format!("an answer with {expected}"),
    )
    .await;
    serde_json::from_str(
        js(client, &format!("{response}.getValue()"))
            .await
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

/// The console is GraphiQL, loaded from Lodge alone with no CSP violation: autocompletion, the
/// documentation explorer, a Bearer token in the headers editor, the default login query with
/// a real token, and the history kept across a reload. The browser ends logged in as the
/// administrator again.
async fn the_console_is_graphiql_on_the_page_session(app: &TestApp, client: &Client) {
    // cora and her token are made (and removed at the end) by the command line's way, so that
    // no session of theirs changes what the Users tab's steps count.
    use lodge::auth::{Actor, Expiry, Role, TokenName, UserId};
    let operator = Actor::command_line();
    let cora = app
        .auth
        .users()
        .create_user(
            &operator,
            &UserId::parse("cora").unwrap(),
            Role::Admin,
            true,
            None,
        )
        .await
        .unwrap();
    let cora_token = app
        .auth
        .tokens()
        .create_token(
            &operator,
            &cora,
            &TokenName::parse("cora-console").unwrap(),
            Expiry::Default,
            None,
        )
        .await
        .unwrap()
        .secret
        .expose()
        .to_owned();

    client
        .goto(&format!("{}/api/gql/console", app.url))
        .await
        .unwrap();
    let query = editor(".graphiql-query-editor");
    wait_for(client, &format!("document.querySelector('.graphiql-query-editor .CodeMirror') && {query}.getValue().includes('authLogin')"), "GraphiQL with the default query").await;
    wait_for(
        client,
        "document.getElementById('console-who').textContent.includes('admin')",
        "the session's user",
    )
    .await;

    // Autocompletion from the schema, in a new tab.
    click(client, ".graphiql-tab-add").await;
    wait_for(
        client,
        &format!("{query}.getValue().startsWith('# A new tab')"),
        "a new tab",
    )
    .await;
    // Typed, not set: completion follows what the keyboard enters.
    js(client, &format!("{query}.setValue('{{ to')")).await;
    click(client, ".graphiql-query-editor .CodeMirror-lines").await;
    js(client, &format!("{query}.setCursor(0, 4)")).await;
    wait_for(
        client,
        &format!("{query}.getValue() === '{{ to' && {query}.hasFocus()"),
        "the editor focused",
    )
    .await;
    client
        .active_element()
        .await
        .unwrap()
        .send_keys("k")
        .await
        .unwrap();
    wait_for(
        client,
        "[...document.querySelectorAll('.CodeMirror-hint')].some(h => h.textContent.includes('tokenApiList'))",
        "tokenApiList among the completions",
    )
    .await;

    // A Bearer token in the headers editor: the answer is cora's, not the session's admin's.
    js(
        client,
        &format!("{query}.setValue('{{ tokenApiList {{ tokenName }} }}')"),
    )
    .await;
    click(client, ".graphiql-editor-tools button[data-name='headers']").await;
    let headers = format!("{{\"Authorization\": \"Bearer {cora_token}\"}}");
    js(
        client,
        &format!(
            "{}.setValue({headers:?})",
            editor(".graphiql-editor-tool .graphiql-editor:not(.hidden)")
        ),
    )
    .await;
    let listed = run_in_console(client, "tokenApiList").await;
    assert_eq!(
        listed["data"]["tokenApiList"],
        json!([{ "tokenName": "cora-console" }]),
        "{listed}"
    );

    // A secret typed in Variables (a password, a token): run, and not kept either.
    js(
        client,
        &format!("{query}.setValue('query($secret: String) {{ activeUser {{ userId }} }}')"),
    )
    .await;
    click(
        client,
        ".graphiql-editor-tools button[data-name='variables']",
    )
    .await;
    js(
        client,
        &format!(
            "{}.setValue({:?})",
            editor(".graphiql-editor-tool .graphiql-editor:not(.hidden)"),
            "{\"secret\": \"typed-variable-secret-5d2e\"}"
        ),
    )
    .await;
    run_in_console(client, "secret").await;

    let stored = js(client, "JSON.stringify(localStorage)").await;
    let stored = stored.as_str().unwrap();
    assert!(
        !stored.contains(&cora_token[10..]),
        "the Bearer token is not kept in the browser's storage"
    );
    assert!(
        !stored.contains("typed-variable-secret-5d2e"),
        "nothing typed in Variables is kept in the browser's storage: {stored}"
    );
    assert!(stored.contains("activeUser"), "the queries are: {stored}");

    // The Explorer plugin lists the schema's fields to build a query by clicking.
    click(client, "[aria-label='Show GraphiQL Explorer']").await;
    wait_for(
        client,
        "document.querySelector('.graphiql-explorer-root')?.textContent.includes('tokenApiList')",
        "the Explorer's fields",
    )
    .await;

    // The documentation explorer: tokenApiCreate and its arguments.
    click(client, "[aria-label='Show Documentation Explorer']").await;
    wait_for(client, "[...document.querySelectorAll('.graphiql-doc-explorer a')].some(a => a.textContent === 'Mutation')", "the docs").await;
    js(client, "[...document.querySelectorAll('.graphiql-doc-explorer a')].find(a => a.textContent === 'Mutation').click()").await;
    wait_for(client, "[...document.querySelectorAll('.graphiql-doc-explorer a')].some(a => a.textContent === 'tokenApiCreate')", "Mutation's fields").await;
    js(client, "[...document.querySelectorAll('.graphiql-doc-explorer a')].find(a => a.textContent === 'tokenApiCreate').click()").await;
    wait_for(
        client,
        "document.querySelector('.graphiql-doc-explorer').textContent.includes('tokenName') && document.querySelector('.graphiql-doc-explorer').textContent.includes('lifetime')",
        "tokenApiCreate's arguments",
    )
    .await;
    save_screenshot(&client.screenshot().await.unwrap(), "console.png");

    // The default tab's login, with a real token: the browser's session becomes cora's.
    click(client, ".graphiql-tab:first-child .graphiql-tab-button").await;
    wait_for(
        client,
        &format!("{query}.getValue().includes('authLogin')"),
        "the first tab",
    )
    .await;
    click(
        client,
        ".graphiql-editor-tools button[data-name='variables']",
    )
    .await;
    let variables = format!("{{\"credentials\": {{\"token\": \"{cora_token}\"}}}}");
    js(
        client,
        &format!(
            "{}.setValue({variables:?})",
            editor(".graphiql-editor-tool .graphiql-editor:not(.hidden)")
        ),
    )
    .await;
    let logged_in = run_in_console(client, "authStatus").await;
    assert_eq!(
        logged_in["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{logged_in}"
    );

    // Nothing left 127.0.0.1, and the page's policy was never broken.
    let resources = js(
        client,
        "performance.getEntriesByType('resource').map(e => e.name)",
    )
    .await;
    for url in resources.as_array().unwrap() {
        assert!(
            url.as_str().unwrap().starts_with(&app.url),
            "{url} is not Lodge's"
        );
    }
    assert_eq!(js(client, "window.lodgeCspViolations").await, json!([]));

    // A reload keeps the history.
    client.refresh().await.unwrap();
    wait_for(
        client,
        "document.querySelector('.graphiql-query-editor .CodeMirror')",
        "GraphiQL again",
    )
    .await;
    click(client, "[aria-label='Show History']").await;
    wait_for(
        client,
        "document.querySelectorAll('.graphiql-history-item').length >= 2",
        "the history of the runs",
    )
    .await;
    assert_eq!(js(client, "window.lodgeCspViolations").await, json!([]));

    // cora goes, so that the Users tab's steps find the users they expect.
    app.auth
        .users()
        .delete_user(&operator, "cora")
        .await
        .unwrap();
    client.goto(&app.url).await.unwrap();
    log_in(client, ADMIN, ADMIN_PASSWORD).await;
    wait_for(
        client,
        "!document.getElementById('tab-users').hidden",
        "the administrator's page again",
    )
    .await;
}

/// Opens a tab by its button and waits until `ready` holds.
async fn open_tab(client: &Client, tab: &str, ready: &str) {
    click(client, &format!("#tab-{tab}")).await;
    wait_for(client, ready, &format!("the {tab} tab")).await;
}

/// Clicks a button that asks for a second press (Revoke, End) twice.
async fn confirm_click(client: &Client, css: &str) {
    click(client, css).await;
    wait_for(
        client,
        &format!("document.querySelector(\"{css}\").textContent.startsWith('Confirm')"),
        "the button to ask for confirmation",
    )
    .await;
    click(client, css).await;
}

/// The administrator adds uma on the Users tab with a generated password, shown once.
/// Gives uma's password and the secret of her token `uma-laptop`.
async fn an_administrator_adds_a_user_with_a_generated_password(
    app: &TestApp,
    client: &Client,
) -> (String, String) {
    client.goto(&app.url).await.unwrap();
    wait_for(
        client,
        "!document.getElementById('tab-users').hidden",
        "the Users tab for an administrator",
    )
    .await;
    open_tab(
        client,
        "users",
        "document.querySelectorAll('#user-rows tr').length === 1",
    )
    .await;
    click(client, "#add-user").await;
    wait_for(
        client,
        "document.getElementById('user-add-dialog').open",
        "the add user dialog",
    )
    .await;
    assert_eq!(active_id(client).await, "new-user-id");
    type_into(client, "new-user-id", "uma").await;
    click(client, "#user-add-submit").await;
    wait_for(
        client,
        "document.getElementById('password-shown-dialog').open",
        "the generated password",
    )
    .await;
    let password = client
        .find(Locator::Id("password-shown"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(password.len(), 20, "{password}");
    assert_eq!(text(client, "password-shown-user").await, "uma");
    click(client, "#password-shown-dialog .close").await;
    wait_for(
        client,
        "document.querySelectorAll('#user-rows tr').length === 2",
        "uma in the list",
    )
    .await;
    assert!(
        !client.source().await.unwrap().contains(&password),
        "the password left the page"
    );
    // Two tokens for uma from the command line's grant (tokens.admins_only keeps her from
    // making her own).
    let uma = app.auth.users().user("uma").await.unwrap();
    let mut secret = String::new();
    for name in ["uma-ci", "uma-laptop"] {
        let created = app
            .auth
            .tokens()
            .create_token(
                &lodge::auth::Actor::command_line(),
                &uma,
                &lodge::auth::TokenName::parse(name).unwrap(),
                lodge::auth::Expiry::Default,
                None,
            )
            .await
            .unwrap();
        secret = created.secret.expose().to_owned();
    }
    // And a session of hers from a script, beside the browser's.
    app.new_client().login("uma", &password).await;
    (password, secret)
}

/// "Find a token" names the owner and the token of a pasted secret, and revokes it.
async fn an_administrator_finds_and_revokes_a_pasted_token(
    app: &TestApp,
    client: &Client,
    secret: &str,
) {
    click(client, "#find-token").await;
    wait_for(
        client,
        "document.getElementById('find-dialog').open",
        "the find dialog",
    )
    .await;
    type_into(client, "find-secret", secret).await;
    click(client, "#find-form button[type=submit]").await;
    wait_for(
        client,
        "!document.getElementById('find-result').hidden",
        "the token found",
    )
    .await;
    let answer = text(client, "find-answer").await;
    assert!(answer.contains("“uma-laptop” of uma"), "{answer}");
    click(client, "#find-revoke").await;
    wait_for(
        client,
        "document.getElementById('find-answer').textContent.startsWith('Revoked')",
        "the revocation",
    )
    .await;
    click(client, "#find-dialog .close").await;
    let gone = app.new_client().login_with_token(secret).await;
    assert_eq!(gone["errors"][0]["message"], "User authentication failed");
}

/// uma logs in in a second browser: her tokens, and no Users or Audit tab.
async fn the_new_user_logs_in_and_sees_no_users_or_audit_tab(
    app: &TestApp,
    uma: &Client,
    password: &str,
) {
    uma.goto(&app.url).await.unwrap();
    log_in(uma, "uma", password).await;
    wait_for(
        uma,
        "document.querySelectorAll('#token-rows tr').length === 2",
        "uma's tokens",
    )
    .await;
    assert_eq!(text(uma, "who-name").await, "uma");
    assert_eq!(
        js(
            uma,
            "getComputedStyle(document.documentElement).backgroundColor"
        )
        .await,
        "rgb(18, 23, 34)",
        "the dark theme for a browser that prefers it"
    );
    for tab in ["tab-users", "tab-audit"] {
        assert_eq!(
            js(uma, &format!("document.getElementById('{tab}').hidden")).await,
            true,
            "{tab}"
        );
    }
}

/// The administrator revokes uma-ci and ends uma's browser session from her Manage dialog; her
/// page drops the token when she comes back to it, then closes the dialog she had open and
/// asks her to log in again.
async fn the_administrator_revokes_a_token_and_ends_a_session_and_the_users_page_follows(
    client: &Client,
    uma: &Client,
) {
    client.refresh().await.unwrap();
    wait_for(
        client,
        "!document.getElementById('profile-view').hidden",
        "the profile",
    )
    .await;
    open_tab(
        client,
        "users",
        "[...document.querySelectorAll('#user-rows tr td:nth-child(6)')].map(td => td.textContent).join() === '1,2'",
    )
    .await;
    save_screenshot(&client.screenshot().await.unwrap(), "users.png");
    click(client, "button[aria-label='Manage uma']").await;
    wait_for(
        client,
        "document.getElementById('user-dialog').open && document.querySelectorAll('#user-session-rows tr').length === 2",
        "uma's tokens and sessions",
    )
    .await;
    save_screenshot(&client.screenshot().await.unwrap(), "user-dialog.png");
    confirm_click(client, "button[aria-label='Revoke token uma-ci']").await;
    wait_for(
        client,
        "document.querySelectorAll('#user-token-rows tr').length === 1",
        "the revoked token to go",
    )
    .await;
    assert_eq!(text(client, "user-status").await, "Token “uma-ci” revoked.");

    js(uma, "window.dispatchEvent(new Event('focus'))").await;
    wait_for(
        uma,
        "document.querySelectorAll('#token-rows tr').length === 1",
        "uma's page to drop the revoked token",
    )
    .await;
    click(uma, "button[aria-label='Delete token uma-laptop']").await;
    wait_for(
        uma,
        "document.getElementById('delete-dialog').open",
        "uma's delete dialog",
    )
    .await;

    // uma's browser session is the one with Chromium's User-Agent.
    js(
        client,
        "[...document.querySelectorAll('#user-session-rows tr')].find(r => r.textContent.includes('Chrome')).querySelector('button').id = 'end-umas-browser'",
    )
    .await;
    confirm_click(client, "#end-umas-browser").await;
    wait_for(
        client,
        "document.querySelectorAll('#user-session-rows tr').length === 1",
        "the ended session to go",
    )
    .await;
    click(client, "#user-dialog .actions .close").await;

    js(uma, "window.dispatchEvent(new Event('focus'))").await;
    wait_for(
        uma,
        "!document.getElementById('login-view').hidden",
        "uma's page to ask for a login",
    )
    .await;
    assert_eq!(
        js(uma, "document.getElementById('delete-dialog').open").await,
        false,
        "the open dialog closed with the session"
    );
    assert_eq!(
        text(uma, "login-error").await,
        "Your session has ended. Log in again."
    );
}

/// The Sessions tab marks this browser and ends another of the administrator's sessions.
async fn the_sessions_tab_ends_another_session(app: &TestApp, client: &Client) {
    let other = app.new_client();
    other.login_admin().await;
    open_tab(
        client,
        "sessions",
        "document.querySelectorAll('#session-rows tr').length === 2",
    )
    .await;
    assert_eq!(
        js(
            client,
            "document.querySelectorAll('#session-rows .current').length"
        )
        .await,
        1,
        "this browser is marked"
    );
    save_screenshot(&client.screenshot().await.unwrap(), "sessions.png");
    js(
        client,
        "[...document.querySelectorAll('#session-rows tr')].find(r => !r.querySelector('.current')).querySelector('button').id = 'end-other'",
    )
    .await;
    click(client, "#end-other").await;
    wait_for(
        client,
        "document.querySelectorAll('#session-rows tr').length === 1",
        "the other session to go",
    )
    .await;
    assert_eq!(text(client, "sessions-status").await, "Session ended.");
    let after = other.gql("{ activeUser { userId } }", json!({})).await;
    assert!(after["data"]["activeUser"].is_null(), "{after}");
}

/// The Audit tab shows the log newest first and filters it by kind.
async fn the_audit_tab_filters_the_log(client: &Client) {
    open_tab(
        client,
        "audit",
        "document.querySelectorAll('#audit-rows tr').length > 5",
    )
    .await;
    client
        .find(Locator::Id("audit-kind"))
        .await
        .unwrap()
        .select_by_value("session.end")
        .await
        .unwrap();
    click(client, "#audit-filter button[type=submit]").await;
    wait_for(
        client,
        "[...document.querySelectorAll('#audit-rows tr td:nth-child(2)')].every(td => td.textContent === 'session.end') && document.querySelectorAll('#audit-rows tr').length >= 2",
        "only ended sessions",
    )
    .await;
    save_screenshot(&client.screenshot().await.unwrap(), "audit.png");
}

/// Elements that reach beyond the right edge of the viewport.
async fn wider_than_the_screen(client: &Client) -> Value {
    js(
        client,
        "[...document.querySelectorAll('body *')].filter(e => e.getClientRects().length && e.getBoundingClientRect().right > innerWidth + 0.5).map(e => `${e.tagName}#${e.id}.${e.className}`).concat(document.documentElement.scrollWidth > innerWidth ? ['the page scrolls sideways'] : [])",
    )
    .await
}

/// A phone 390 pixels wide: tokens, sessions, users and a dialog all fit.
async fn at_390_pixels_nothing_is_wider_than_the_screen(client: &Client) {
    client.set_window_size(390, 844).await.unwrap();
    wait_for(client, "innerWidth <= 390", "the narrow window").await;
    for (tab, ready) in [
        (
            "tokens",
            "document.querySelectorAll('#token-rows tr').length > 0",
        ),
        (
            "sessions",
            "document.querySelectorAll('#session-rows tr').length > 0",
        ),
        (
            "users",
            "document.querySelectorAll('#user-rows tr').length > 0",
        ),
    ] {
        open_tab(client, tab, ready).await;
        assert_eq!(wider_than_the_screen(client).await, json!([]), "{tab}");
        if tab == "tokens" {
            save_screenshot(&client.screenshot().await.unwrap(), "phone.png");
        }
    }
    click(client, "button[aria-label='Manage uma']").await;
    wait_for(
        client,
        "document.getElementById('user-dialog').open",
        "the user dialog",
    )
    .await;
    assert_eq!(wider_than_the_screen(client).await, json!([]), "the dialog");
    click(client, "#user-dialog .actions .close").await;
    client.set_window_size(1100, 760).await.unwrap();
}

/// Logging out returns to the login form, and the session is gone on the server.
async fn logging_out_ends_the_session_on_the_server(app: &TestApp, client: &Client) {
    client.goto(&app.url).await.unwrap();
    wait_for(
        client,
        "!document.getElementById('profile-view').hidden",
        "the profile",
    )
    .await;
    log_out(client).await;
    let admins: i64 = app
        .db()
        .query_row(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE u.user_id = 'admin'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(admins, 0, "the browser's session ended on the server");
}

/// A user who may not create tokens is told why.
async fn a_user_who_may_not_create_tokens_is_told_why(app: &TestApp, client: &Client) {
    app.add_user("rosa", "rosa's password", "user").await;
    log_in(client, "rosa", "rosa's password").await;
    wait_for(
        client,
        "!document.getElementById('profile-view').hidden",
        "rosa's profile",
    )
    .await;
    wait_for(
        client,
        "document.getElementById('token-policy').textContent",
        "the policy",
    )
    .await;
    assert!(
        text(client, "token-policy")
            .await
            .contains("Only administrators")
    );
    assert_eq!(
        js(client, "document.getElementById('add-token').disabled").await,
        true
    );
}

/// After login, `return_to` is followed to Lodge's own pages and ignored for a foreign origin.
async fn return_to_is_followed_to_lodges_own_pages_only(app: &TestApp, client: &Client) {
    log_out(client).await;
    client
        .goto(&format!("{}/?return_to=https://evil.example/", app.url))
        .await
        .unwrap();
    log_in(client, "rosa", "rosa's password").await;
    wait_for(
        client,
        "!document.getElementById('profile-view').hidden",
        "the profile",
    )
    .await;
    let here = client.current_url().await.unwrap();
    assert_eq!(
        here.host_str(),
        Some("127.0.0.1"),
        "stayed on Lodge: {here}"
    );
    log_out(client).await;
    client
        .goto(&format!("{}/?return_to=/api/gql/console", app.url))
        .await
        .unwrap();
    log_in(client, "rosa", "rosa's password").await;
    wait_for(
        client,
        "location.pathname === '/api/gql/console'",
        "the console",
    )
    .await;
}
