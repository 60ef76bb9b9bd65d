//! Floods against the binary: huge user names, slow bodies, more connections than the cap.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::binary::{Server, start_with};

/// The server's resident memory in KiB.
fn resident_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends one POST to `/api/gql` on its own connection and gives the whole raw answer.
fn raw_post(address: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST /api/gql HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn database_bytes(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("lodge.db")).unwrap();
    conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_thousand_failed_logins_with_huge_names_leave_memory_and_the_database_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // A burst large enough that every one of them is looked at, not throttled.
    let (server, url, _) = start_with(dir.path(), &[("LODGE_LIMITS__ADDRESS_BURST", "100000")]);
    let address = url.trim_start_matches("http://").to_owned();
    let name_of = |i: usize| format!("{i:05}{}", "n".repeat(60_000));
    // Warm up the allocator and the database with a few, then measure.
    let login = |i: usize| {
        let body = json!({
            "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
            "variables": { "c": { "user": name_of(i), "password": "guess" } },
        });
        let answer = raw_post(&address, &body.to_string());
        assert!(
            answer.contains("User authentication failed"),
            "{answer:.300}"
        );
    };
    for i in 0..20 {
        login(i);
    }
    let memory_before = resident_kib(&server);
    let database_before = database_bytes(dir.path());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in 0..4 {
            let login = &login;
            scope.spawn(move || (0..250).for_each(|i| login(1000 + part * 250 + i)));
        }
    });
    let memory_after = resident_kib(&server);
    let database_after = database_bytes(dir.path());
    eprintln!(
        "1,000 huge names in {:?}: memory {memory_before} -> {memory_after} KiB, database \
         {database_before} -> {database_after} bytes",
        started.elapsed()
    );
    // Before: 329 MB of memory and 164 MB of database after 2,479 such names.
    assert!(
        memory_after < memory_before + 16 * 1024,
        "memory grew from {memory_before} to {memory_after} KiB"
    );
    assert!(
        database_after < database_before + 1024 * 1024,
        "the database grew from {database_before} to {database_after} bytes"
    );
    let conn = rusqlite::Connection::open(dir.path().join("lodge.db")).unwrap();
    let (rows, longest): (i64, i64) = conn
        .query_row(
            "SELECT count(*), max(length(user_id)) FROM audit_events WHERE kind = 'login'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, 1020, "each failure is recorded");
    assert!(longest <= 200, "each with a bounded user id: {longest}");
}

/// Opens a connection that sends its headers and one byte of a 100-byte body, then nothing.
fn slow_body(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /api/gql HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

#[test]
fn slow_bodies_are_cut_off_and_the_connection_cap_holds_then_frees() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start_with(
        dir.path(),
        &[
            ("LODGE_SERVER__BODY_TIMEOUT", "2s"),
            ("LODGE_SERVER__MAX_CONNECTIONS", "40"),
        ],
    );
    let address = url.trim_start_matches("http://").to_owned();
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    let slow: Vec<TcpStream> = (0..40).map(|_| slow_body(&address)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // At the cap a new connection is not served: it waits until the slow ones are cut off.
    let mut waiting = TcpStream::connect(&address).unwrap();
    waiting.write_all(health.as_bytes()).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buffer = [0; 64];
    assert!(
        waiting.read(&mut buffer).is_err(),
        "a connection beyond the cap is answered only once others close"
    );

    for (i, mut stream) in slow.into_iter().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "slow body {i}: {answer}"
        );
        assert!(answer.contains("server.body_timeout"), "{answer}");
    }
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    waiting.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");

    let log = std::fs::read_to_string(dir.path().join("lodge.log")).unwrap();
    assert!(
        log.contains("the limit (server.max_connections = 40)"),
        "the cap is reported: {log}"
    );
    assert!(log.contains("below server.max_connections again"), "{log}");
    drop(server);
}

/// Beyond `server.max_connections_per_address`, a new connection from the same address is
/// closed at once, while another address is served, and one closed gives its place back.
#[tokio::test(flavor = "multi_thread")]
async fn one_address_holds_at_most_its_connections_and_others_are_served() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let app = crate::helpers::spawn_app_with(|s| s.server.max_connections_per_address = 3).await;
    let address: std::net::SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    // A connection that asked once and keeps its place (keep-alive); whether it was answered.
    let keep = move || {
        let mut socket = TcpStream::connect(address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut status = String::new();
        let answered = BufReader::new(&socket).read_line(&mut status).is_ok()
            && status.starts_with("HTTP/1.1 200");
        (socket, answered)
    };
    let held = tokio::task::spawn_blocking(move || (0..3).map(|_| keep()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        held.iter().all(|(_, answered)| *answered),
        "three are served"
    );

    let (closed, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut socket = TcpStream::connect(address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut answer = Vec::new();
        let read = socket.read_to_end(&mut answer);
        (read.is_err() || answer.is_empty(), started.elapsed())
    })
    .await
    .unwrap();
    assert!(closed, "the fourth connection is closed without an answer");
    assert!(
        took < Duration::from_secs(3),
        "at once, not at a timeout: {took:?}"
    );

    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let served = elsewhere
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200, "another address is served meanwhile");

    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = tokio::task::spawn_blocking(move || keep().1).await.unwrap();
    assert!(again, "a closed connection gives its place back");
}
