//! The profile page and the console in headless Debian Chromium, driven through chromedriver.
//! Without `chromium` and `chromium-driver` installed it says so and skips, unless
//! `CI_REQUIRE_BROWSER` is set (as `.ci/run` does), when it fails.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

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
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
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

/// Polls a JavaScript condition until it holds.
async fn wait_for(client: &Client, condition: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
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
    let client = browser(&driver, &chromium, profile.path()).await;

    logging_in_shows_an_error_for_a_wrong_password_then_the_profile(&app, &client).await;
    let secrets = one_token_of_each_expiration_is_shown_once(&client).await;
    reloading_shows_the_list_but_never_a_secret(&client, &secrets).await;
    let api = the_secret_read_from_the_field_logs_in_through_the_api(&app, &secrets[1]).await;
    the_sixth_is_refused_with_the_quota_message(&client).await;
    delete_asks_first_naming_the_token_and_removes_the_row(&client, &api, &secrets[1]).await;
    a_name_that_looks_like_markup_is_shown_as_text(&client).await;
    the_console_runs_queries_with_the_same_session(&app, &client).await;
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
        assert_eq!(
            active_id(client).await,
            "add-token",
            "focus returns to + Add"
        );
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
        "document.querySelector('#token-rows tr:last-child td:nth-child(3)').textContent",
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

/// The sixth is refused with the quota message.
async fn the_sixth_is_refused_with_the_quota_message(client: &Client) {
    let refused = add_token(client, "t-sixth", "DAY").await.unwrap_err();
    assert!(refused.contains("at most 5"), "{refused}");
    close_dialog_with_escape(client).await;
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
        js(client, "document.querySelectorAll('img').length").await,
        0
    );
}

/// The console runs queries with the same session and lists the operations.
async fn the_console_runs_queries_with_the_same_session(app: &TestApp, client: &Client) {
    client
        .goto(&format!("{}/api/gql/console", app.url))
        .await
        .unwrap();
    wait_for(client, "[...document.querySelectorAll('#mutation-ops button')].some(b => b.textContent === 'tokenApiCreate')", "the operations").await;
    type_into(client, "query", "{ tokenApiList { tokenName } }").await;
    click(client, "#run").await;
    wait_for(
        client,
        "document.getElementById('result').textContent.includes('tokenApiList')",
        "a response",
    )
    .await;
    let result: Value = serde_json::from_str(&text(client, "result").await).unwrap();
    assert_eq!(result["data"]["tokenApiList"].as_array().unwrap().len(), 5);
    save_screenshot(&client.screenshot().await.unwrap(), "console.png");
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
    assert_eq!(
        app.count("sessions"),
        0,
        "the browser's session ended on the server"
    );
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
