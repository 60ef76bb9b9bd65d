//! `spawn_app()`: the real server on port 0 with its own database file and a manual clock.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use jiff::{SignedDuration, Timestamp};
use lodge::{App, Clock, Settings};
use reqwest::{Response, header};
use serde_json::{Value, json};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "first admin password";

pub struct TestApp {
    pub url: String,
    pub auth: lodge::auth::Auth,
    /// The server's database, for what only the store does (a backup).
    pub store: lodge::store::Store,
    pub clock: Clock,
    pub db_path: PathBuf,
    /// The PostgreSQL database (a schema of the test run's cluster), when the tests run on it.
    pub db_url: Option<String>,
    pub client: reqwest::Client,
    /// The `cb-session-id` this client holds, as a browser's cookie jar would.
    cookie: Arc<Mutex<Option<String>>>,
    _dir: tempfile::TempDir,
}

/// The PostgreSQL database of the test server whose folder is `dir`, if any.
pub fn database_url_of(dir: &std::path::Path) -> Option<String> {
    databases().lock().unwrap().get(dir).cloned()
}

fn databases() -> &'static Mutex<std::collections::HashMap<PathBuf, String>> {
    static DATABASES: std::sync::OnceLock<Mutex<std::collections::HashMap<PathBuf, String>>> =
        std::sync::OnceLock::new();
    DATABASES.get_or_init(Default::default)
}

/// Whether this run of the suite is on PostgreSQL (the `api_postgres` test binary) instead of
/// SQLite.
/// Without PostgreSQL installed the `api_postgres` run says so and runs on SQLite (a failure
/// instead under `CI_REQUIRE_POSTGRES=1`).
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "api_postgres" && crate::postgres::cluster().is_some()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_at(Timestamp::now(), configure).await
}

/// A server whose clock starts at `start` and moves only when the test says.
pub async fn spawn_app_at(start: Timestamp, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.database.path = dir.path().join("lodge.db");
    if on_postgres() {
        let cluster = crate::postgres::cluster().expect("checked by on_postgres");
        settings.database.url = lodge::config::DatabaseUrl(Some(cluster.fresh_url()));
    }
    settings.admin.password = ADMIN_PASSWORD.into();
    configure(&mut settings);
    let db_path = settings.database.path.clone();
    let db_url = settings.database.url.0.clone();
    if let (Some(url), Some(dir)) = (&db_url, db_path.parent()) {
        databases()
            .lock()
            .unwrap()
            .insert(dir.to_owned(), url.clone());
    }
    let clock = Clock::manual(start);
    let (url, auth, store) = serve(settings, &clock).await;
    TestApp {
        url,
        auth,
        store,
        clock,
        db_path,
        db_url,
        client: reqwest::Client::new(),
        cookie: Arc::new(Mutex::new(None)),
        _dir: dir,
    }
}

/// Builds the server as `main` does and runs it; gives its address, its `Auth` and its store.
async fn serve(
    settings: Settings,
    clock: &Clock,
) -> (String, lodge::auth::Auth, lodge::store::Store) {
    let app = App::build(settings, clock.clone())
        .await
        .expect("server starts");
    let url = app.url();
    let auth = app.auth().clone();
    let store = app.store().clone();
    tokio::spawn(app.run());
    (url, auth, store)
}

impl TestApp {
    /// A new server on this one's database and clock, as after a restart (this one keeps running,
    /// idle), with `configure`d settings, and a client of it holding this client's cookie.
    pub async fn restarted(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = Settings::default();
        settings.server.port = 0;
        settings.database.path = self.db_path.clone();
        settings.database.url = lodge::config::DatabaseUrl(self.db_url.clone());
        configure(&mut settings);
        let db_url = settings.database.url.0.clone();
        let (url, auth, store) = serve(settings, &self.clock).await;
        TestApp {
            url,
            auth,
            store,
            clock: self.clock.clone(),
            db_path: self.db_path.clone(),
            db_url,
            client: self.client.clone(),
            cookie: Arc::new(Mutex::new(self.cookie())),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Another client of the same server, with an empty cookie jar.
    pub fn new_client(&self) -> TestApp {
        TestApp {
            url: self.url.clone(),
            auth: self.auth.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            db_path: self.db_path.clone(),
            db_url: self.db_url.clone(),
            client: self.client.clone(),
            cookie: Arc::new(Mutex::new(None)),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn gql_url(&self) -> String {
        format!("{}/api/gql", self.url)
    }

    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    pub fn set_cookie(&self, value: Option<&str>) {
        *self.cookie.lock().unwrap() = value.map(str::to_owned);
    }

    /// Sends a raw POST with the cookie jar, keeping any cookie the server sets.
    pub async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .client
            .post(self.gql_url())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(cookie) = self.cookie() {
            request = request.header(header::COOKIE, format!("cb-session-id={cookie}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("server answers");
        if let Some(set) = session_set_cookie(&response) {
            let removed = set.to_ascii_lowercase().contains("max-age=0");
            let value = set.split_once('=').unwrap().1.split(';').next().unwrap();
            self.set_cookie((!removed).then_some(value));
        }
        response
    }

    /// Sends `method` to `path` on this server, with this client's cookie, and no body.
    pub async fn request(&self, method: reqwest::Method, path: &str) -> Response {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(cookie) = self.cookie() {
            request = request.header(header::COOKIE, format!("cb-session-id={cookie}"));
        }
        request.send().await.expect("server answers")
    }

    /// `GET path`, with this client's cookie.
    pub async fn get(&self, path: &str) -> Response {
        self.request(reqwest::Method::GET, path).await
    }

    /// POSTs `body` as it is to `/api/gql` with this `Content-Type`, without the cookie.
    pub async fn post_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.gql_url())
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .expect("server answers")
    }

    /// Fails the test unless the server still answers a plain query.
    pub async fn assert_still_answers(&self) {
        let answer = self.gql("{ __typename }", json!({})).await;
        assert_eq!(answer["data"]["__typename"], "Query", "{answer}");
    }

    /// Runs an operation with the cookie jar and returns the whole JSON response.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_with(query, variables, &[]).await
    }

    pub async fn gql_with(&self, query: &str, variables: Value, headers: &[(&str, &str)]) -> Value {
        let response = self
            .post(&json!({ "query": query, "variables": variables }), headers)
            .await;
        assert_eq!(response.status(), 200, "GraphQL answers 200");
        response.json().await.unwrap()
    }

    /// Runs an operation with `Authorization: Bearer` and no cookie.
    pub async fn gql_bearer(&self, token: &str, query: &str, variables: Value) -> Value {
        let bare = self.new_client();
        let auth = format!("Bearer {token}");
        bare.gql_with(query, variables, &[("Authorization", &auth)])
            .await
    }

    pub async fn login(&self, user: &str, password: &str) -> Value {
        self.gql(
            "query login($credentials: Object) {
               authLogin(provider: \"local\", credentials: $credentials) {
                 authId authStatus userTokens { userId authProvider }
               }
             }",
            json!({ "credentials": { "user": user, "password": password } }),
        )
        .await
    }

    pub async fn login_admin(&self) {
        let response = self.login(ADMIN, ADMIN_PASSWORD).await;
        assert_eq!(
            response["data"]["authLogin"]["authStatus"], "SUCCESS",
            "{response}"
        );
    }

    pub async fn login_with_token(&self, token: &str) -> Value {
        self.gql(
            "query authLogin($credentials: Object) {
               authLogin(provider: \"token\", credentials: $credentials) {
                 authId userTokens { userId } authStatus
               }
             }",
            json!({ "credentials": { "token": token } }),
        )
        .await
    }

    /// Creates a user with a password, as the administrator (logged in with another client).
    pub async fn add_user(&self, user: &str, password: &str, role: &str) {
        let admin = self.new_client();
        admin.login_admin().await;
        let created = admin
            .gql(
                "query($id: ID!, $role: String) { createUser(userId: $id, enabled: true, authRole: $role) { userId } }",
                json!({ "id": user, "role": role }),
            )
            .await;
        assert!(created.get("errors").is_none(), "{created}");
        let set = admin
            .gql(
                "query($id: ID!, $password: String) {
                   setUserCredentials(userId: $id, providerId: \"local\", credentials: { password: $password })
                 }",
                json!({ "id": user, "password": password }),
            )
            .await;
        assert!(set.get("errors").is_none(), "{set}");
    }

    pub async fn create_token(&self, name: &str, lifetime: &str) -> Value {
        self.gql(
            &format!(
                "mutation($name: String!) {{
                   tokenApiCreate(tokenName: $name, lifetime: {lifetime}) {{ tokenName token createTime expireTime }}
                 }}"
            ),
            json!({ "name": name }),
        )
        .await
    }

    /// Creates a token that must succeed and returns its secret.
    pub async fn new_token(&self, name: &str) -> String {
        let created = self.create_token(name, "WEEK").await;
        created["data"]["tokenApiCreate"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("token created: {created}"))
            .to_owned()
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    /// A connection of the test's own to the server's database file; it waits for the server's
    /// writer as another process would.
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn
    }

    pub fn count(&self, table: &str) -> i64 {
        self.query_i64(&format!("SELECT count(*) FROM {table}"))
    }

    /// The one number a query gives, read by a connection of the test's own.
    pub fn query_i64(&self, sql: &str) -> i64 {
        match &self.db_url {
            Some(url) => crate::postgres::query_i64(url, sql),
            None => self.db().query_row(sql, [], |r| r.get(0)).unwrap(),
        }
    }

    /// The number in the first row of a query, or `None` (a NULL, or no row).
    pub fn query_opt_i64(&self, sql: &str) -> Option<i64> {
        match &self.db_url {
            Some(url) => crate::postgres::query_opt(url, sql),
            None => {
                use rusqlite::OptionalExtension as _;
                self.db()
                    .query_row(sql, [], |r| r.get(0))
                    .optional()
                    .unwrap()
                    .flatten()
            }
        }
    }

    /// The texts of the first column of a query's rows (NULLs left out).
    pub fn query_texts(&self, sql: &str) -> Vec<String> {
        match &self.db_url {
            Some(url) => crate::postgres::query_texts(url, sql),
            None => {
                let db = self.db();
                let mut stmt = db.prepare(sql).unwrap();
                stmt.query_map([], |r| r.get::<_, Option<String>>(0))
                    .unwrap()
                    .filter_map(Result::unwrap)
                    .collect()
            }
        }
    }

    /// Another process holding the database's write lock until the blocker is released or
    /// dropped: SQLite's, or on PostgreSQL the lock every node's writer takes.
    pub fn block_writes(&self) -> WriteBlocker {
        match &self.db_url {
            Some(url) => WriteBlocker::Postgres(crate::postgres::hold_write_lock(url)),
            None => {
                let blocker = self.db();
                blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteBlocker::Sqlite(blocker)
            }
        }
    }

    /// The settings of another server on this one's database.
    pub fn same_database(&self, settings: &mut Settings) {
        settings.database.path = self.db_path.clone();
        settings.database.url = lodge::config::DatabaseUrl(self.db_url.clone());
    }

    /// Runs statements with a connection of the test's own, as another process would.
    pub fn execute(&self, sql: &str) {
        match &self.db_url {
            Some(url) => crate::postgres::batch(url, sql),
            None => self.db().execute_batch(sql).unwrap(),
        }
    }
}

pub enum WriteBlocker {
    Sqlite(rusqlite::Connection),
    Postgres(crate::postgres::Held),
}

impl WriteBlocker {
    pub fn release(self) {
        match self {
            WriteBlocker::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            WriteBlocker::Postgres(held) => held.release(),
        }
    }
}

/// A TCP port of 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The session cookie a response sets: `cb-session-id`, or `__Host-cb-session-id` behind an
/// https `server.public_url`.
pub fn session_set_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cb-session-id=") || v.starts_with("__Host-cb-session-id="))
        .map(str::to_owned)
}

/// The `webErrorCode` of the first error.
/// The first error's message of an answer that is not a GraphQL execution's (a 4xx).
pub async fn refusal_message(response: Response) -> String {
    let body: Value = response.json().await.expect("a JSON error body");
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["webErrorCode"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a webErrorCode: {response}"))
}

pub fn error_message(response: &Value) -> &str {
    response["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {response}"))
}

pub fn assert_ok(response: &Value) {
    assert!(
        response.get("errors").is_none(),
        "unexpected errors: {response}"
    );
}

/// A small tmpfs of a test's own, unmounted when dropped: a disk that fills up, or that can be
/// made read-only. `None` (with a note on stderr) where this process may not mount.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: this process may not mount a tmpfs (it needs root)");
            return None;
        }
        Some(Self { dir })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Remounts with `options` (`ro` or `rw`).
    pub fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -o remount,{options}");
    }

    /// Writes a file until the disk is full; gives its path.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

impl TestApp {
    /// Sends each body as a POST to `/api/gql` on its own connection, every one written before
    /// any answer is read (as an attacker's parallel requests arrive), with this client's
    /// cookie and `headers`; gives the answers' bodies in the order sent.
    pub async fn post_all_at_once(&self, bodies: &[Value], headers: &[(&str, &str)]) -> Vec<Value> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let address = self.url.trim_start_matches("http://").to_owned();
        let mut extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        if let Some(cookie) = self.cookie() {
            extra.push_str(&format!("Cookie: cb-session-id={cookie}\r\n"));
        }
        let mut streams = Vec::new();
        for body in bodies {
            let body = body.to_string();
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            let request = format!(
                "POST /api/gql HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            streams.push(stream);
        }
        let mut answers = Vec::new();
        for mut stream in streams {
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.unwrap();
            let raw = String::from_utf8_lossy(&raw);
            let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            answers.push(serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")));
        }
        answers
    }
}

/// How many answers carry each `webErrorCode` (`"ok"` for none).
pub fn count_codes(answers: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for answer in answers {
        let code = match answer["errors"][0]["extensions"]["webErrorCode"].as_str() {
            Some(code) => code.to_owned(),
            None => "ok".to_owned(),
        };
        *counts.entry(code).or_default() += 1;
    }
    counts
}

/// A self-signed certificate for `localhost` and 127.0.0.1 made with openssl in `dir`: the
/// paths of its certificate and its key (PEM). `name` tells two apart in one folder.
pub fn make_certificate(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=localhost/O={name}"),
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian: apt-get install openssl)");
    assert!(made.status.success(), "{made:?}");
    (cert, key)
}

/// One answer of [`https`].
pub struct HttpsAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpsAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A POST of `body` as JSON over https to `url`, trusting only the certificate at `root`; the
/// client's own `headers` added. Blocking: call it from a blocking thread.
pub fn https(
    url: &str,
    root: &std::path::Path,
    body: &Value,
    headers: &[(&str, &str)],
) -> HttpsAnswer {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let pem = std::fs::read(root).unwrap();
    let certificate = Certificate::from_pem(&pem).unwrap();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[certificate]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut answer = request
        .send(serde_json::to_vec(body).unwrap().as_slice())
        .unwrap_or_else(|e| panic!("https {url}: {e}"));
    HttpsAnswer {
        status: answer.status().as_u16(),
        headers: answer
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: answer.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// Whether this test runs as root, which acting as another local user (`nobody`) needs; says the
/// test is skipped when not.
pub fn root_or_skip(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: {what} needs root");
    }
    root
}
