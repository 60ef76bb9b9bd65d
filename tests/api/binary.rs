//! The `lodge` binary itself: start-up, configuration errors, signals and the command line.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_lodge");

/// The binary in `dir`, with none of the caller's `LODGE_*` variables; on the PostgreSQL
/// database of the test server whose folder `dir` is, when it has one.
pub(crate) fn lodge(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("LODGE_") {
            command.env_remove(key);
        }
    }
    if let Some(url) = crate::helpers::database_url_of(dir) {
        command.env("LODGE_DATABASE__URL", url);
    }
    command
}

/// Runs `lodge ARGS` in `dir` with `stdin`, to its end; gives its output, its status checked.
pub(crate) fn run_command(
    mut command: Command,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "lodge {args:?}: {output:?}");
    output
}

/// `lodge init` in `dir`: the database and the administrator `admin` ("binary admin
/// password"), which the other commands need.
pub(crate) fn init(dir: &Path) {
    let mut command = lodge(dir);
    command.env("LODGE_ADMIN__PASSWORD", "binary admin password");
    run_command(command, &["init"], "");
}

/// A running `lodge`, killed if a test ends without stopping it.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `lodge` on port 0, logging at debug level to `lodge.log` in `dir`, and reads its
/// stdout until the `listening on` line.
pub(crate) fn start(dir: &Path) -> (Server, String, Vec<String>) {
    start_with(dir, &[])
}

/// [`start`] with more `LODGE_*` variables.
pub(crate) fn start_with(dir: &Path, env: &[(&str, &str)]) -> (Server, String, Vec<String>) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("lodge.log"))
        .unwrap();
    let mut child = Server(
        lodge(dir)
            .env("LODGE_SERVER__PORT", "0")
            .env("LODGE_ADMIN__PASSWORD", "binary admin password")
            .env("LODGE_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.0.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no listening line: {lines:?}");
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stdout closed: {lines:?}"
        );
        let line = line.trim_end().to_owned();
        lines.push(line.clone());
        if let Some(url) = line.strip_prefix("listening on ") {
            let url = url.to_owned();
            std::thread::spawn(move || for _ in reader.lines() {});
            return (child, url, lines);
        }
    }
}

pub(crate) fn post(url: &str, body: Value, cookie: Option<&str>) -> (Value, Option<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .post(format!("{url}/api/gql"))
            .json(&body);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("cb-session-id={cookie}"));
        }
        let response = request.send().await.unwrap();
        let cookie = crate::helpers::session_set_cookie(&response).map(|c| {
            c["cb-session-id=".len()..]
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        });
        (response.json().await.unwrap(), cookie)
    })
}

pub(crate) fn login(url: &str, user: &str, password: &str) -> (Value, Option<String>) {
    post(
        url,
        json!({
            "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
            "variables": { "c": { "user": user, "password": password } }
        }),
        None,
    )
}

pub(crate) fn token_login(url: &str, token: &str) -> (Value, Option<String>) {
    post(
        url,
        json!({
            "query": "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus userTokens { userId } } }",
            "variables": { "c": { "token": token } }
        }),
        None,
    )
}

fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let child = &mut server.0;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_binary_prints_one_listening_line_serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, lines) = start(dir.path());
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("listening on "))
            .count(),
        1
    );
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    assert!(
        lines[0].contains("created the first administrator `admin`"),
        "{lines:?}"
    );
    assert!(
        dir.path().join("lodge.db").exists(),
        "lodge.db in the working directory"
    );

    let (response, cookie) = login(&url, "admin", "binary admin password");
    assert_eq!(
        response["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{response}"
    );
    assert!(cookie.is_some());
    let (created, _) = post(
        &url,
        json!({ "query": "mutation { tokenApiCreate(tokenName: \"ci\") { token } }" }),
        cookie.as_deref(),
    );
    let token = created["data"]["tokenApiCreate"]["token"].as_str().unwrap();
    let (used, _) = token_login(&url, token);
    assert_eq!(used["data"]["authLogin"]["authStatus"], "SUCCESS", "{used}");

    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status:?}");
    let wal = std::fs::metadata(dir.path().join("lodge.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the write-ahead log was checkpointed at shutdown");
    let db = rusqlite::Connection::open(dir.path().join("lodge.db")).unwrap();
    let last_used: Option<i64> = db
        .query_row("SELECT last_used_at FROM api_tokens", [], |r| r.get(0))
        .unwrap();
    assert!(
        last_used.is_some(),
        "the token's last use, held in memory, was written at shutdown"
    );

    // A second start on the same file creates no administrator and keeps the session.
    let (mut child, url, lines) = start(dir.path());
    assert!(!lines.iter().any(|l| l.contains("created")), "{lines:?}");
    let (me, _) = post(
        &url,
        json!({ "query": "{ activeUser { userId } }" }),
        cookie.as_deref(),
    );
    assert_eq!(me["data"]["activeUser"]["userId"], "admin");
    assert!(terminate(&mut child).success());
}

#[test]
fn bad_configuration_stops_start_up_naming_every_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nport = \"eighty\"\n\n[session]\nidle_timeout = \"soon\"\n\n[tokens]\nmax_per_users = 5\n",
    )
    .unwrap();
    let output = lodge(dir.path())
        .env("LODGE_GRAPHQL__CONSOLE", "maybe")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "server.port",
        "session.idle_timeout",
        "`soon`",
        "tokens.max_per_users",
        "graphql.console",
        "LODGE_GRAPHQL__CONSOLE",
        "config.toml",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }
    assert!(!dir.path().join("lodge.db").exists(), "nothing was created");
}

#[test]
fn a_missing_or_broken_config_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let output = lodge(dir.path())
        .args(["--config", "absent.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent.toml"));

    std::fs::write(dir.path().join("broken.toml"), "[server\nport = 1").unwrap();
    let output = lodge(dir.path())
        .args(["--config", "broken.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.toml"), "{stderr}");
}

#[test]
fn the_shipped_config_file_is_valid_and_matches_the_defaults() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let settings = lodge::Settings::load(Some(&shipped)).unwrap();
    let defaults = lodge::Settings::default();
    assert_eq!(format!("{settings:?}"), format!("{defaults:?}"));
}

#[test]
fn schema_graphql_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let generated = lodge::graphql::schema(&Default::default()).as_sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema.graphql is out of date: run `cargo run -q -- schema > schema.graphql`"
    );
    let output = Command::new(BIN).arg("schema").output().unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), generated);
}

#[test]
fn the_command_line_manages_users_and_tokens_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _) = start(dir.path());

    let added = run_command(
        lodge(dir.path()),
        &["user", "add", "mia", "--admin"],
        "mia's password\n",
    );
    assert!(String::from_utf8_lossy(&added.stdout).contains("added admin `mia`"));
    let (response, _) = login(&url, "mia", "mia's password");
    assert_eq!(
        response["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{response}"
    );

    let listed = lodge(dir.path()).args(["user", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("mia") && listed.contains("admin"),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .next()
            .unwrap()
            .ends_with("last login            sessions"),
        "{listed}"
    );
    let mia = listed.lines().find(|l| l.starts_with("mia ")).unwrap();
    assert!(mia.ends_with(" 1"), "mia's one session: {mia}");

    run_command(
        lodge(dir.path()),
        &["user", "passwd", "mia"],
        "mia's new password\n",
    );
    let (response, _) = login(&url, "mia", "mia's new password");
    assert_eq!(
        response["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{response}"
    );

    let created = run_command(
        lodge(dir.path()),
        &[
            "token",
            "create",
            "--user",
            "mia",
            "--name",
            "deploy",
            "--lifetime",
            "week",
        ],
        "",
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("lodge_"), "{token}");
    let (response, _) = token_login(&url, &token);
    assert_eq!(
        response["data"]["authLogin"]["userTokens"][0]["userId"], "mia",
        "{response}"
    );

    let listed = lodge(dir.path())
        .args(["token", "list", "--user", "mia"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("deploy") && !listed.contains(&token),
        "{listed}"
    );

    run_command(
        lodge(dir.path()),
        &["token", "delete", "--user", "mia", "--name", "deploy"],
        "",
    );
    let (response, _) = token_login(&url, &token);
    assert_eq!(
        response["errors"][0]["message"],
        "User authentication failed"
    );

    // tokens.admins_only (the default) binds GraphQL callers; the operator may give anyone one.
    run_command(
        lodge(dir.path()),
        &["user", "add", "ned"],
        "ned's password\n",
    );
    run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "ned", "--name", "ci"],
        "",
    );

    let refused = lodge(dir.path())
        .args(["token", "delete", "--user", "mia", "--name", "deploy"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no token named `deploy`"));

    let backup = lodge(dir.path())
        .args(["backup", "copy.db"])
        .output()
        .unwrap();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(dir.path().join("copy.db").exists());
    let again = lodge(dir.path())
        .args(["backup", "copy.db"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let audit = lodge(dir.path())
        .args(["audit", "--since", "1h"])
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    for kind in [
        "token.create",
        "token.delete",
        "login",
        "user.create",
        "password.change",
    ] {
        assert!(audit.contains(kind), "{kind} missing from:\n{audit}");
    }
    assert!(audit.contains("by the command line"), "{audit}");

    assert!(terminate(&mut child).success());
}

#[test]
fn a_command_line_run_leaves_everything_in_the_database_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    run_command(
        lodge(dir.path()),
        &["user", "add", "ida"],
        "ida's password\n",
    );
    run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "ida", "--name", "ci"],
        "",
    );
    // The last connection to close folds the write-ahead log into the file and removes it, so a
    // copy of lodge.db alone (the file an operator sees) holds every change.
    assert!(!dir.path().join("lodge.db-wal").exists());
    let copy = dir.path().join("copy.db");
    std::fs::copy(dir.path().join("lodge.db"), &copy).unwrap();
    let tokens: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM api_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tokens, 1);
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url, _) = start(dir.path());
    let mut secrets = vec![
        "binary admin password".to_owned(),
        "a wrong password".to_owned(),
    ];
    login(&url, "admin", "a wrong password");
    let (_, cookie) = login(&url, "admin", "binary admin password");
    let cookie = cookie.unwrap();
    secrets.push(cookie.clone());
    let (created, _) = post(
        &url,
        json!({ "query": "mutation { tokenApiCreate(tokenName: \"logged\") { token } }" }),
        Some(&cookie),
    );
    let token = created["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(token.clone());
    let (_, token_cookie) = token_login(&url, &token);
    secrets.push(token_cookie.unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        client
            .post(format!("{url}/api/gql"))
            .bearer_auth(&token)
            .json(&json!({ "query": "{ tokenApiList { tokenName } }" }))
            .send()
            .await
            .unwrap();
        client
            .get(format!("{url}/api/auth/verify"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        client
            .get(format!("{url}/api/auth/verify"))
            .bearer_auth(format!("{token}x"))
            .send()
            .await
            .unwrap();
    });
    let (_, _) = post(&url, json!({ "query": "{ authLogout }" }), Some(&cookie));
    assert!(terminate(&mut server).success());

    let log = std::fs::read_to_string(dir.path().join("lodge.log")).unwrap();
    assert!(log.contains("listening on"), "the log was captured");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
    let body = &token["lodge_".len()..];
    assert!(!log.contains(body), "part of a token is in the log");
}

#[test]
fn a_read_only_database_is_refused_at_start_saying_so_and_starts_once_writable() {
    let Some(disk) = crate::helpers::Tmpfs::mount("4m") else {
        return;
    };
    init(disk.path());
    disk.remount("ro");
    let refused = lodge(disk.path()).arg("serve").output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("lodge.db cannot be written") && message.contains("Read-only"),
        "{message}"
    );
    assert!(message.contains("check its owner and mode"), "{message}");

    disk.remount("rw");
    let (mut server, url, _) = start(disk.path());
    let (response, _) = login(&url, "admin", "binary admin password");
    assert_eq!(
        response["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{response}"
    );
    assert!(terminate(&mut server).success());
}

#[test]
fn a_sigterm_right_after_the_listening_line_still_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let (mut server, _, _) = start(dir.path());
        let status = terminate(&mut server);
        assert!(status.success(), "exit status {status:?}");
    }
}

#[test]
fn a_backup_never_follows_a_symbolic_link() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("planted.db");
    let dangling = dir.path().join("dangling.db");
    std::os::unix::fs::symlink(&target, &dangling).unwrap();
    let existing = elsewhere.path().join("precious.txt");
    std::fs::write(&existing, "keep me").unwrap();
    let to_existing = dir.path().join("existing.db");
    std::os::unix::fs::symlink(&existing, &to_existing).unwrap();
    let linked_dir = dir.path().join("linked");
    std::os::unix::fs::symlink(elsewhere.path(), &linked_dir).unwrap();

    for (case, path, says) in [
        ("a dangling link", "dangling.db", "symbolic link"),
        ("a link to a file", "existing.db", "symbolic link"),
        (
            "a path through a linked folder",
            "linked/new.db",
            "symbolic link",
        ),
    ] {
        let backup = lodge(dir.path()).args(["backup", path]).output().unwrap();
        let stderr = String::from_utf8_lossy(&backup.stderr);
        assert!(!backup.status.success(), "{case}");
        assert!(stderr.contains(says), "{case}: {stderr}");
    }
    assert!(
        !target.exists(),
        "nothing written where the dangling link points"
    );
    assert!(!elsewhere.path().join("new.db").exists());
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
}

/// The database, its write-ahead log and index, and backups are readable by their owner only;
/// a backup into a folder that does not exist says so.
#[test]
fn the_database_and_its_backups_are_private_and_a_missing_folder_is_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, url, _) = start_with(
        dir.path(),
        &[(
            "LODGE_DATABASE__PATH",
            data.join("lodge.db").to_str().unwrap(),
        )],
    );
    let (answer, _) = login(&url, "admin", "wrong");
    assert!(answer.get("errors").is_some());
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "the folder Lodge made");
    for file in ["lodge.db", "lodge.db-wal", "lodge.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let backup = dir.path().join("backup.db");
    let with_db = |args: &[&str]| {
        lodge(dir.path())
            .env("LODGE_DATABASE__PATH", data.join("lodge.db"))
            .args(args)
            .output()
            .unwrap()
    };
    let made = with_db(&["backup", backup.to_str().unwrap()]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert_eq!(mode(&backup), 0o600, "the backup");
    let missing = dir.path().join("no such folder/backup.db");
    let refused = with_db(&["backup", missing.to_str().unwrap()]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("does not exist: create it first"), "{said}");
    drop(server);
}

/// Another local user who keeps trying to open the backup while `lodge backup` makes it never
/// succeeds: the file is private from the moment it exists, not narrowed after it was made.
#[test]
fn another_user_cannot_open_a_backup_while_it_is_written() {
    use std::os::unix::{fs::PermissionsExt as _, process::CommandExt as _};
    if !crate::helpers::root_or_skip("acting as another user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    // Only the files' own modes stand between them and `nobody`.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Opens PATH as fast as it can until STOP exists; says whether it ever did.
    let spin = r#"my ($path, $stop) = @ARGV;
        until (-e $stop) { if (open(my $f, '<', $path)) { print "opened"; exit 0 } }
        print "never";"#;
    for round in 0..20 {
        let path = dir.path().join(format!("backup-{round}.db"));
        let stop = dir.path().join(format!("stop-{round}"));
        let watcher = Command::new("perl")
            .args(["-e", spin])
            .arg(&path)
            .arg(&stop)
            .uid(65534)
            .gid(65534)
            .stdout(Stdio::piped())
            .spawn()
            .expect("perl");
        let backup = lodge(dir.path())
            .args(["backup", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(backup.status.success(), "{backup:?}");
        std::fs::write(&stop, "").unwrap();
        let seen = watcher.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&seen.stdout),
            "never",
            "round {round}: another user opened the backup"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A log level with a typing error is refused at start, naming the key: `inf` would otherwise
/// be read as a module's name, and the log would say nothing at all.
#[test]
fn a_log_level_that_is_no_level_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    for level in ["inf", "info,lodge=debug,warnn"] {
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[log]\nlevel = \"{level}\"\n"),
        )
        .unwrap();
        let output = lodge(dir.path()).args(["user", "list"]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{level}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("log.level"), "{level}: {stderr}");
        assert!(stderr.contains("is not a log level"), "{level}: {stderr}");
    }
    for level in ["info", "DEBUG", "warn,lodge=debug", "off"] {
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[log]\nlevel = \"{level}\"\n"),
        )
        .unwrap();
        let output = lodge(dir.path()).args(["user", "list"]).output().unwrap();
        assert!(output.status.success(), "{level}: {output:?}");
    }
}

/// A database whose folder cannot be written (SQLite makes its -wal and -shm files there) is
/// refused naming the folder, not with advice to move the database away, by every command that
/// writes; the commands that only read work on it and leave the folder as it was.
#[test]
fn a_database_in_a_folder_that_cannot_be_written_names_the_folder() {
    use std::os::unix::{fs::PermissionsExt as _, process::CommandExt as _};
    if !crate::helpers::root_or_skip("acting as another user") {
        return;
    }
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = top.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    init(&dir);
    let created = lodge(&dir)
        .args(["token", "create", "--user", "admin", "--name", "nightly"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    // Everything in the file itself, and no log or index beside it: the last connection to
    // close removes them once the log is folded in.
    let conn = rusqlite::Connection::open(dir.join("lodge.db")).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    for file in ["lodge.db-wal", "lodge.db-shm"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    // Owned by `nobody`, the file writable, the folder not.
    let chown = |path: &std::path::Path| std::os::unix::fs::chown(path, Some(65534), Some(65534));
    chown(&dir).unwrap();
    chown(&dir.join("lodge.db")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let as_nobody = |args: &[&str]| {
        lodge(&dir)
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let delete = ["token", "delete", "--user", "admin", "--name", "nightly"];
    for writes in [&["user", "disable", "admin"][..], &delete] {
        let refused = as_nobody(writes);
        assert!(!refused.status.success(), "{writes:?}");
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(
            message.contains(&format!("cannot write in {}", dir.display()))
                && message.contains("check its owner and mode"),
            "{writes:?}: {message}"
        );
        assert!(!message.contains("Move it away"), "{message}");
    }
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = files();
    let listed = as_nobody(&["user", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("admin ") && l.contains(" yes ")),
        "{listed}"
    );
    let tokens = as_nobody(&["token", "list", "--user", "admin"]);
    assert!(tokens.status.success(), "{tokens:?}");
    assert!(
        String::from_utf8_lossy(&tokens.stdout).contains("nightly"),
        "{tokens:?}"
    );
    let audit = as_nobody(&["audit", "--since", "1h"]);
    assert!(audit.status.success(), "{audit:?}");
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("token.create"),
        "{audit:?}"
    );
    assert_eq!(
        files(),
        before,
        "a command that only reads wrote in the folder"
    );
}
