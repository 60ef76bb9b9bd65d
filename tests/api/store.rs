use lodge::{Settings, store::Store};

#[test]
fn pooled_connections_use_wal_foreign_keys_a_busy_timeout_and_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.database.path = dir.path().join("lodge.db");
    let store = Store::open(&settings.database.path).unwrap();
    let conn = store.conn().unwrap();
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
