//! `kill -9` at random moments while clients create and delete tokens: after each restart the
//! file is whole, every acknowledged create is there and every acknowledged delete is gone.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};

use crate::binary::{lodge, start};

const CLIENTS: usize = 4;
const KILLS: usize = 10;

#[derive(Default)]
struct Acknowledged {
    /// (user, token name) whose create the server answered with a secret.
    created: HashMap<(String, String), String>,
    /// (user, token name) whose delete the server answered with true.
    deleted: Vec<(String, String)>,
}

async fn gql(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    query: &str,
    variables: Value,
) -> Option<Value> {
    let response = client
        .post(format!("{url}/api/gql"))
        .header("Cookie", format!("cb-session-id={cookie}"))
        .json(&json!({ "query": query, "variables": variables }))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

async fn login(client: &reqwest::Client, url: &str, user: &str, password: &str) -> Option<String> {
    let response = client
        .post(format!("{url}/api/gql"))
        .json(&json!({
            "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
            "variables": { "c": { "user": user, "password": password } }
        }))
        .send()
        .await
        .ok()?;
    let cookie = crate::helpers::session_set_cookie(&response)?;
    Some(
        cookie["cb-session-id=".len()..]
            .split(';')
            .next()?
            .to_owned(),
    )
}

/// One client: creates tokens as its own user, deleting the oldest to stay under the quota.
async fn churn(url: String, user: String, round: usize, ack: Arc<Mutex<Acknowledged>>) {
    let client = reqwest::Client::new();
    let Some(cookie) = login(&client, &url, &user, "crash test password").await else {
        return;
    };
    let mut live: Vec<String> = Vec::new();
    for n in 0.. {
        let name = format!("r{round}-n{n}");
        let created = gql(
            &client,
            &url,
            &cookie,
            "mutation($n: String!) { tokenApiCreate(tokenName: $n, lifetime: WEEK) { token } }",
            json!({ "n": name }),
        )
        .await;
        let Some(created) = created else { return };
        if let Some(secret) = created["data"]["tokenApiCreate"]["token"].as_str() {
            ack.lock()
                .unwrap()
                .created
                .insert((user.clone(), name.clone()), secret.to_owned());
            live.push(name);
        }
        if live.len() >= 3 {
            let oldest = live.remove(0);
            let deleted = gql(
                &client,
                &url,
                &cookie,
                "mutation($n: String!) { tokenApiDelete(tokenName: $n) }",
                json!({ "n": oldest }),
            )
            .await;
            let Some(deleted) = deleted else { return };
            if deleted["data"]["tokenApiDelete"] == true {
                ack.lock().unwrap().deleted.push((user.clone(), oldest));
            }
        }
    }
}

fn check_file(db: &Path, ack: &Acknowledged) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let exists = |user: &str, name: &str| -> bool {
        conn.query_row(
            "SELECT count(*) FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE u.user_id = ?1 AND t.name = ?2",
            [user, name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            > 0
    };
    for (user, name) in &ack.deleted {
        assert!(
            !exists(user, name),
            "acknowledged delete of {user}/{name} came back"
        );
    }
    for (user, name) in ack.created.keys() {
        if !ack.deleted.contains(&(user.clone(), name.clone())) {
            // A delete sent just before the kill may have committed without its answer
            // arriving; the audit row written in its transaction tells.
            assert!(
                exists(user, name) || deleted_unacknowledged(&conn, user, name),
                "acknowledged create of {user}/{name} is lost"
            );
        }
    }
    let over: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT user_id FROM api_tokens GROUP BY user_id HAVING count(*) > 5)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(over, 0, "no user holds more than the quota");
}

/// Whether the audit log shows a delete of that token that the client never heard back about.
fn deleted_unacknowledged(conn: &rusqlite::Connection, user: &str, name: &str) -> bool {
    conn.query_row(
        "SELECT count(*) FROM audit_events WHERE kind = 'token.delete' AND user_id = ?1 AND token_name = ?2",
        [user, name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lodge.db");
    let ack = Arc::new(Mutex::new(Acknowledged::default()));

    for round in 0..KILLS {
        let (mut server, url, _) = start(dir.path());
        if round == 0 {
            for c in 0..CLIENTS {
                let mut add = lodge(dir.path())
                    .args(["user", "add", &format!("crash-{c}"), "--admin"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                use std::io::Write as _;
                add.stdin
                    .take()
                    .unwrap()
                    .write_all(b"crash test password\n")
                    .unwrap();
                assert!(add.wait().unwrap().success());
            }
        }
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(churn(url.clone(), format!("crash-{c}"), round, ack.clone())))
            .collect();
        // A moment between 150 and 650 ms into the load, different each round.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        tokio::time::sleep(Duration::from_millis(150 + u64::from(nanos % 500))).await;
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        for client in clients {
            let _ = tokio::time::timeout(Duration::from_secs(10), client).await;
        }
        check_file(&db, &ack.lock().unwrap());
    }
    let ack = ack.lock().unwrap();
    assert!(
        ack.created.len() > 20,
        "the load ran: {} creates acknowledged",
        ack.created.len()
    );
}
