use lodge::{Settings, store::Store};

#[test]
fn pooled_connections_use_wal_foreign_keys_a_busy_timeout_and_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.database.path = dir.path().join("lodge.db");
    let store = Store::open(&settings.database.path).unwrap();
    let conn = store.sqlite_connection().unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "wal");
    assert_eq!(pragma("foreign_keys"), "1");
    assert_eq!(pragma("synchronous"), "2", "FULL");
    assert_eq!(pragma("busy_timeout"), "5000");
}

#[test]
fn the_database_folder_is_created_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/lodge.db");
    Store::open(&path).unwrap();
    assert!(path.exists());
}

#[test]
fn a_file_that_is_not_a_database_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lodge.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let error = format!("{:#}", Store::open(&path).err().expect("refused"));
    assert!(error.contains(&path.display().to_string()), "{error}");
}

#[test]
fn a_database_from_a_newer_lodge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lodge.db");
    Store::open(&path).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let error = format!("{:#}", Store::open(&path).err().expect("refused"));
    assert!(error.contains("newer version of Lodge"), "{error}");
}

#[tokio::test]
async fn a_backup_taken_under_load_starts_a_server_with_what_came_before() {
    use crate::helpers::*;
    use serde_json::json;

    let app = spawn_app().await;
    app.login_admin().await;
    let before = app.new_token("before").await;

    let busy = app.new_client();
    busy.login_admin().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let load = tokio::spawn(async move {
        let mut rounds = 0;
        while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
            busy.create_token("churn", "DAY").await;
            busy.gql(
                "mutation { tokenApiDelete(tokenName: \"churn\") }",
                json!({}),
            )
            .await;
            rounds += 1;
        }
        rounds
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("backup.db");
    let store = app.store.clone();
    let path = target.clone();
    let backup = tokio::task::spawn_blocking(move || store.backup_to(&path))
        .await
        .unwrap();
    if on_postgres() {
        // PostgreSQL is backed up with its own tools: the command says which, and writes nothing.
        let message = format!("{:#}", backup.expect_err("refused"));
        assert!(message.contains("pg_dump"), "{message}");
        assert!(!target.exists());
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        return;
    }
    backup.expect("backup");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(load.await.unwrap() > 0, "writes ran beside the backup");

    let mut settings = lodge::Settings::default();
    settings.server.port = 0;
    settings.database.path = target.clone();
    let restored = lodge::App::build(settings, lodge::Clock::system())
        .await
        .unwrap();
    assert!(restored.created_admin.is_none(), "the users came along");
    let url = restored.url();
    tokio::spawn(restored.run());
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/gql"))
        .json(&json!({
            "query": "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
            "variables": { "c": { "token": before } }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        response["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{response}"
    );

    let again = app.store.backup_to(&target).unwrap_err();
    assert!(again.to_string().contains("exists already"), "{again}");
}

#[tokio::test]
async fn a_database_locked_by_another_process_gets_a_clear_error_and_work_resumes_after() {
    use crate::helpers::*;
    use serde_json::json;

    let app = spawn_app().await;
    app.login_admin().await;
    let mut tokens = Vec::new();
    for name in ["one", "two", "three"] {
        tokens.push(app.new_token(name).await);
    }
    let blocker = app.block_writes();
    // Logins queued together, and a token created, while the writer cannot start a write.
    let logins: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (client, token) = (app.new_client(), token.clone());
            tokio::spawn(async move { client.login_with_token(&token).await })
        })
        .collect();
    let refused = app.create_token("while-locked", "DAY").await;
    assert_eq!(error_code(&refused), "unavailable", "{refused}");
    let message = error_message(&refused);
    assert!(message.contains("locked by another process"), "{message}");
    assert!(!message.to_lowercase().contains("sqlite"), "{message}");
    for login in logins {
        let answered = tokio::time::timeout(std::time::Duration::from_secs(60), login)
            .await
            .expect("every queued login is answered");
        let response = answered.unwrap();
        assert_eq!(error_code(&response), "unavailable", "{response}");
    }
    // Reading still works while another process writes.
    assert_ok(&app.gql("{ tokenApiList { tokenName } }", json!({})).await);

    blocker.release();
    assert_ok(&app.create_token("after-the-lock", "DAY").await);
    let login = app.new_client().login_with_token(&tokens[0]).await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );
}

#[tokio::test]
async fn a_full_disk_gets_a_clear_error_loses_nothing_and_work_resumes_when_space_is_freed() {
    use crate::helpers::*;
    use serde_json::json;

    if on_postgres() {
        // The disk under SQLite's file; PostgreSQL's disk is its own server's, whose full disk
        // it reports as an error of its own (mapped to the same "disk is full" answer).
        return;
    }

    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    let path = disk.path().join("lodge.db");
    let app = spawn_app_with(|s| s.database.path = path.clone()).await;
    app.login_admin().await;
    let before = app.new_token("before").await;

    let filler = disk.fill();
    let refused = app.create_token("while-full", "DAY").await;
    assert_eq!(error_code(&refused), "unavailable", "{refused}");
    let message = error_message(&refused);
    assert!(
        message.contains("disk holding the database is full"),
        "{message}"
    );
    assert!(!message.to_lowercase().contains("sqlite"), "{message}");
    // The server still answers what needs no write.
    let listed = app.gql("{ tokenApiList { tokenName } }", json!({})).await;
    assert_ok(&listed);
    assert_eq!(listed["data"]["tokenApiList"].as_array().unwrap().len(), 1);
    let health = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(health.status(), 200);

    std::fs::remove_file(filler).unwrap();
    assert_ok(&app.create_token("after", "DAY").await);
    let login = app
        .new_client()
        .gql(
            "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
            json!({ "c": { "token": before } }),
        )
        .await;
    assert_ok(&login);

    let db = app.db();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let names: Vec<String> = db
        .prepare("SELECT name FROM api_tokens ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["before", "after"]);
}
