//! Several Lodge nodes on one PostgreSQL database behave as one server: what one node
//! acknowledges, every other honours from the next request on. These run in `api_postgres`;
//! on SQLite one server serves its file, and they return at once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    binary::{Server, post, start_with},
    helpers::*,
};

const ME: &str = "{ activeUser { userId } }";
/// What a bearer token may ask: its owner's tokens.
const NEEDS_USER: &str = "{ tokenApiList { tokenName } }";

/// `n` servers on one database and one clock; the first made the administrator.
async fn nodes(n: usize, configure: impl Fn(&mut lodge::Settings)) -> Vec<TestApp> {
    let first = spawn_app_with(&configure).await;
    let mut all = vec![first];
    for _ in 1..n {
        let node = all[0].restarted(&configure).await;
        node.set_cookie(None);
        all.push(node);
    }
    all
}

/// Every token name in `acknowledged` is in the `tokenApiList` answer `listed`.
fn assert_every_one_kept(listed: &Value, acknowledged: &[String]) {
    let listed: Vec<&str> = listed["data"]["tokenApiList"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["tokenName"].as_str().unwrap())
        .collect();
    for name in acknowledged {
        assert!(
            listed.contains(&name.as_str()),
            "{name} was acknowledged and is gone"
        );
    }
}

fn user_of(answer: &Value) -> &str {
    answer["data"]["activeUser"]["userId"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_token_made_on_one_node_works_on_every_other_and_its_end_on_any_holds_at_once() {
    if !on_postgres() {
        return;
    }
    let nodes = nodes(3, |_| {}).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.login_admin().await;
    b.login_admin().await;
    let token = a.new_token("ci").await;
    // Each node looks it up and keeps it.
    for node in &nodes {
        for _ in 0..2 {
            assert_ok(&node.gql_bearer(&token, NEEDS_USER, json!({})).await);
        }
    }
    let login = b.new_client().login_with_token(&token).await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );

    // Deleted on B: refused by A and C in their very next request.
    assert_ok(
        &b.gql("mutation { tokenApiDelete(tokenName: \"ci\") }", json!({}))
            .await,
    );
    for node in [a, c] {
        let answer = node.gql_bearer(&token, NEEDS_USER, json!({})).await;
        assert_eq!(error_code(&answer), "authFailed", "{answer}");
    }

    // A user disabled on C: their token is refused on A at once.
    a.add_user("dan", "dan's password", "admin").await;
    let dan = a.new_client();
    dan.login("dan", "dan's password").await;
    let dans = dan.new_token("deploy").await;
    assert_ok(&a.gql_bearer(&dans, NEEDS_USER, json!({})).await);
    c.login_admin().await;
    assert_ok(
        &c.gql("{ enableUser(userId: \"dan\", enabled: false) }", json!({}))
            .await,
    );
    let answer = a.gql_bearer(&dans, NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&answer), "authFailed", "{answer}");

    // Rotated on A without a grace: the old secret is refused on B at once, the new one works.
    let kept = a.new_token("kept").await;
    assert_ok(&b.gql_bearer(&kept, NEEDS_USER, json!({})).await);
    let rotated = a
        .gql(
            "mutation { tokenApiRotate(tokenName: \"kept\", graceSeconds: 0) { token } }",
            json!({}),
        )
        .await;
    assert_ok(&rotated);
    let new = rotated["data"]["tokenApiRotate"]["token"].as_str().unwrap();
    let answer = b.gql_bearer(&kept, NEEDS_USER, json!({})).await;
    assert_eq!(error_code(&answer), "authFailed", "{answer}");
    assert_ok(&b.gql_bearer(new, NEEDS_USER, json!({})).await);
}

#[tokio::test]
async fn a_session_opened_on_one_node_works_on_every_other_and_ends_everywhere() {
    if !on_postgres() {
        return;
    }
    let nodes = nodes(3, |s| {
        s.session.idle_timeout = lodge::config::Duration::parse("30m").unwrap()
    })
    .await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.login_admin().await;
    let cookie = a.cookie();
    for node in [b, c] {
        node.set_cookie(cookie.as_deref());
        assert_eq!(user_of(&node.gql(ME, json!({})).await), ADMIN);
    }
    // Logged out on C: A and B refuse the cookie in their next request.
    assert_eq!(
        c.gql("{ authLogout }", json!({})).await["data"]["authLogout"],
        true
    );
    for node in [a, b] {
        let answer = node.gql("{ tokenApiList { tokenName } }", json!({})).await;
        assert_eq!(error_code(&answer), "sessionExpired", "{answer}");
    }

    // A session idle beyond the timeout ends on every node.
    a.login_admin().await;
    let cookie = a.cookie();
    b.set_cookie(cookie.as_deref());
    assert_eq!(user_of(&b.gql(ME, json!({})).await), ADMIN);
    a.advance(jiff::SignedDuration::from_mins(31));
    for node in [a, b] {
        let answer = node.gql("{ tokenApiList { tokenName } }", json!({})).await;
        assert_eq!(error_code(&answer), "sessionExpired", "{answer}");
    }
}

#[tokio::test]
async fn twenty_parallel_creates_spread_across_nodes_give_exactly_five_tokens() {
    if !on_postgres() {
        return;
    }
    let nodes = nodes(2, |s| s.tokens.max_per_user = 5).await;
    nodes[0].login_admin().await;
    let cookie = nodes[0].cookie();
    let creates = (0..20).map(|i| {
        let client = nodes[i % 2].new_client();
        client.set_cookie(cookie.as_deref());
        async move { client.create_token(&format!("parallel-{i}"), "DAY").await }
    });
    let results = futures_util::future::join_all(creates).await;
    let codes = count_codes(&results);
    assert_eq!(codes.get("ok"), Some(&5), "{codes:?}");
    assert_eq!(codes.get("quotaExceeded"), Some(&15), "{codes:?}");
    assert_eq!(nodes[1].count("api_tokens"), 5);
}

#[tokio::test]
async fn wrong_passwords_spread_across_nodes_lock_the_account_on_every_node() {
    if !on_postgres() {
        return;
    }
    let nodes = nodes(2, |s| s.limits.address_burst = 1000).await;
    nodes[0].add_user("ivy", "ivy's password", "user").await;
    // Ten failures, alternating nodes: the limit (limits.account_failures) is the account's,
    // not each node's.
    for i in 0..10 {
        let answer = nodes[i % 2].new_client().login("ivy", "a guess").await;
        assert_eq!(error_code(&answer), "authFailed", "guess {i}: {answer}");
    }
    for node in &nodes {
        let answer = node.new_client().login("ivy", "a guess").await;
        assert_eq!(error_code(&answer), "tooManyRequests", "{answer}");
        let answer = node.new_client().login("ivy", "ivy's password").await;
        assert_eq!(error_code(&answer), "tooManyRequests", "locked: {answer}");
    }
    // Unlocked on one node a moment later: every node lets the account in.
    nodes[0].advance(jiff::SignedDuration::from_secs(1));
    nodes[1].login_admin().await;
    assert_ok(
        &nodes[1]
            .gql("{ adminUnlockUser(userId: \"ivy\") }", json!({}))
            .await,
    );
    for node in &nodes {
        let answer = node.new_client().login("ivy", "ivy's password").await;
        assert_eq!(
            answer["data"]["authLogin"]["authStatus"], "SUCCESS",
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_address_budget_is_not_multiplied_by_the_number_of_nodes() {
    if !on_postgres() {
        return;
    }
    let nodes = nodes(3, |s| s.limits.address_burst = 6).await;
    // Six failures from one address, two on each node, use its whole budget.
    for i in 0..6 {
        let answer = nodes[i % 3]
            .new_client()
            .login(&format!("nobody{i}"), "x")
            .await;
        assert_eq!(error_code(&answer), "authFailed", "failure {i}: {answer}");
    }
    for node in &nodes {
        let answer = node.new_client().login("nobody", "x").await;
        assert_eq!(error_code(&answer), "tooManyRequests", "{answer}");
    }
}

#[tokio::test]
async fn housekeeping_and_the_webhook_sender_run_on_one_node_at_a_time() {
    if !on_postgres() {
        return;
    }
    let receiver = crate::notify::Receiver::start(crate::notify::Mode::Accept).await;
    let url = receiver.url.clone();
    let nodes = nodes(3, move |s| {
        s.notify.webhook_url = lodge::config::WebhookUrl::parse(&url).unwrap();
        s.notify.webhook_secret = crate::notify::SECRET.into();
    })
    .await;
    // Each node rotates a token of its own: every event arrives once, whichever node sends.
    for (i, node) in nodes.iter().enumerate() {
        node.login_admin().await;
        node.new_token(&format!("node-{i}")).await;
        assert_ok(
            &node
                .gql(
                    "mutation($n: String!) { tokenApiRotate(tokenName: $n) { token } }",
                    json!({ "n": format!("node-{i}") }),
                )
                .await,
        );
    }
    let rotations = receiver.wait_for_event("token.rotate", 3).await;
    let mut ids: Vec<_> = rotations
        .iter()
        .map(|d| d.header("X-Lodge-Delivery").unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each event once");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.seen().len(), 3, "and no second delivery");

    // The housekeeping's lease: one node holds it, the others wait until it is given up.
    let lease = Duration::from_secs(900);
    let holders: Vec<bool> =
        futures_util::future::join_all(nodes.iter().map(|n| n.auth.runs("housekeeping", lease)))
            .await;
    assert_eq!(holders.iter().filter(|h| **h).count(), 1, "{holders:?}");
    let holder = holders.iter().position(|h| *h).unwrap();
    nodes[holder].auth.give_up("housekeeping").await;
    let other = (holder + 1) % 3;
    assert!(nodes[other].auth.runs("housekeeping", lease).await);
    assert!(!nodes[holder].auth.runs("housekeeping", lease).await);
    // Run out (a node that stopped without giving it up): another takes it.
    nodes[0].advance(jiff::SignedDuration::from_mins(16));
    assert!(nodes[holder].auth.runs("housekeeping", lease).await);
}

#[tokio::test]
async fn readyz_follows_the_database_and_nothing_acknowledged_is_lost_while_it_is_down() {
    if !on_postgres() {
        return;
    }
    let cluster = crate::postgres::own_cluster().expect("PostgreSQL is installed");
    let url = cluster.fresh_url();
    let app = spawn_app_with(move |s| {
        s.database.url = lodge::config::DatabaseUrl(Some(url.clone()));
        s.tokens.max_per_user = 100_000;
    })
    .await;
    app.login_admin().await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    // Tokens created one after another until told to stop; each acknowledged name is kept.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Creates answered `unavailable` so far: the database stays down until there is one (a
    // create sent as it stops may wait out a short outage in the pool and succeed after it).
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let (client, stop, refused) = (app.new_client(), stop.clone(), refused.clone());
        client.set_cookie(app.cookie().as_deref());
        tokio::spawn(async move {
            let (mut acknowledged, mut unavailable) = (Vec::new(), 0);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let name = format!("load-{i}");
                i += 1;
                let answer = client.create_token(&name, "DAY").await;
                match answer["data"]["tokenApiCreate"]["tokenName"].as_str() {
                    Some(_) => acknowledged.push(name),
                    None => {
                        assert_eq!(error_code(&answer), "unavailable", "{answer}");
                        unavailable += 1;
                        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acknowledged, unavailable)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cluster = std::sync::Arc::new(cluster);
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = app.get("/readyz").await;
        if ready.status() == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz stayed {}",
            ready.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The process answers without the database: liveness, and a clear error.
    assert_eq!(app.get("/healthz").await.status(), 200);
    let answer = app.gql("{ tokenApiList { tokenName } }", json!({})).await;
    assert_eq!(error_code(&answer), "unavailable", "{answer}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no create was refused in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "readyz not 200 again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, unavailable) = load.await.unwrap();
    assert!(
        unavailable > 0,
        "some creates ran while the database was down"
    );
    let listed = app.gql("{ tokenApiList { tokenName } }", json!({})).await;
    assert_ok(&listed);
    assert_every_one_kept(&listed, &acknowledged);
}

#[test]
fn killing_one_node_under_load_loses_nothing_acknowledged_and_the_others_answer() {
    if !on_postgres() {
        return;
    }
    let url = crate::postgres::cluster().unwrap().fresh_url();
    let env = [("LODGE_DATABASE__URL", url.as_str())];
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut started: Vec<(Server, String)> = dirs
        .iter()
        .map(|dir| {
            let (server, address, _) = start_with(dir.path(), &env);
            (server, address)
        })
        .collect();
    let addresses: Vec<String> = started.iter().map(|(_, a)| a.clone()).collect();
    let (_, cookie) = crate::binary::login(&addresses[0], "admin", "binary admin password");
    let cookie = cookie.expect("a session");

    // Each node creates tokens in a loop; what each acknowledges is kept.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loads: Vec<_> = addresses
        .iter()
        .enumerate()
        .map(|(n, address)| {
            let (address, cookie, stop) = (address.clone(), cookie.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let name = format!("node{n}-{i}");
                    i += 1;
                    let create = json!({
                        "query": "mutation($n: String!) { tokenApiCreate(tokenName: $n, lifetime: DAY) { tokenName } }",
                        "variables": { "n": name },
                    });
                    let answered = std::panic::catch_unwind(|| post(&address, create, Some(&cookie)));
                    match answered {
                        Ok((answer, _)) if answer["data"]["tokenApiCreate"].is_object() => {
                            acknowledged.push(name)
                        }
                        // The killed node: its connection is refused or cut.
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (mut killed, _) = started.remove(0);
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    // The other node goes on answering.
    let survivor = &addresses[1];
    for _ in 0..5 {
        let (me, _) = post(survivor, json!({ "query": ME }), Some(&cookie));
        assert_eq!(user_of(&me), "admin", "{me}");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acknowledged: Vec<String> = loads.into_iter().flat_map(|l| l.join().unwrap()).collect();
    assert!(
        acknowledged.iter().any(|n| n.starts_with("node0-"))
            && acknowledged.iter().any(|n| n.starts_with("node1-")),
        "both nodes took creates"
    );
    let (listed, _) = post(
        survivor,
        json!({ "query": "{ tokenApiList { tokenName } }" }),
        Some(&cookie),
    );
    assert_every_one_kept(&listed, &acknowledged);
}

#[tokio::test]
async fn lodge_migrate_copies_a_sqlite_installation_that_then_serves_from_postgres() {
    if !on_postgres() {
        return;
    }
    let sqlite = lodge::config::DatabaseUrl(None);
    let app = spawn_app_with(move |s| s.database.url = sqlite.clone()).await;
    assert!(app.db_url.is_none(), "a SQLite file");
    app.login_admin().await;
    let token = app.new_token("ci").await;
    app.add_user("bea", "bea's password", "user").await;
    let failed = app.new_client().login("bea", "a guess").await;
    assert_eq!(error_code(&failed), "authFailed");
    app.auth.flush_last_used().await.unwrap();

    let url = crate::postgres::cluster().unwrap().fresh_url();
    // `lodge migrate` refuses a file a running server holds (this test's server keeps it open):
    // the copy is made from an online backup of it, as an operator who cannot stop it would.
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("stopped.db").display().to_string();
    let mut backup = crate::binary::lodge(dir.path());
    backup.env("LODGE_DATABASE__PATH", &app.db_path);
    crate::binary::run_command(backup, &["backup", &from], "");
    let copied = crate::binary::run_command(
        crate::binary::lodge(dir.path()),
        &["migrate", "--from", &from, "--to", &url],
        "",
    );
    let said = String::from_utf8_lossy(&copied.stdout);
    for table in ["users", "api_tokens", "sessions", "audit_events"] {
        assert!(said.contains(table), "{said}");
    }
    assert!(said.contains("counted again there"), "{said}");
    // Into a database that holds users: refused, nothing changed.
    let again = crate::binary::lodge(dir.path())
        .args(["migrate", "--from", &from, "--to", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("empty database only"),
        "{again:?}"
    );

    // A server on PostgreSQL: the token, the session and the users came along; new rows get
    // new ids.
    let moved = url.clone();
    let pg = app
        .restarted(move |s| s.database.url = lodge::config::DatabaseUrl(Some(moved)))
        .await;
    assert_eq!(pg.db_url.as_deref(), Some(url.as_str()));
    assert_eq!(user_of(&pg.gql(ME, json!({})).await), ADMIN, "the session");
    let login = pg.new_client().login_with_token(&token).await;
    assert_eq!(
        login["data"]["authLogin"]["authStatus"], "SUCCESS",
        "{login}"
    );
    let bea = pg.new_client().login("bea", "bea's password").await;
    assert_eq!(bea["data"]["authLogin"]["authStatus"], "SUCCESS", "{bea}");
    pg.new_token("after").await;
    pg.add_user("cal", "cal's password", "user").await;
    let audit = pg
        .gql(
            "{ auditLog(filter: { kind: \"login\" }) { success userId } }",
            json!({}),
        )
        .await;
    let failures = audit["data"]["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["success"] == false && e["userId"] == "bea")
        .count();
    assert_eq!(failures, 1, "the audit log came along: {audit}");
}

#[test]
fn a_database_url_that_is_wrong_or_unreachable_is_refused_at_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let url = format!("postgres://lodge:s3cret@127.0.0.1:{port}/lodge?connect_timeout=2");
    let started = crate::binary::lodge(dir.path())
        .env("LODGE_DATABASE__URL", &url)
        .env("LODGE_SERVER__PORT", "0")
        .output()
        .unwrap();
    assert!(!started.status.success());
    let said = String::from_utf8_lossy(&started.stderr);
    assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
    assert!(said.contains("cannot be reached"), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
    assert!(
        !dir.path().join("lodge.db").exists(),
        "no SQLite file made instead"
    );

    let wrong = crate::binary::lodge(dir.path())
        .env("LODGE_DATABASE__URL", "mysql://lodge@db/lodge")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("database.url") && said.contains("postgres://"),
        "{said}"
    );
}

#[tokio::test]
async fn nodes_starting_together_on_an_empty_database_make_one_administrator() {
    if !on_postgres() {
        return;
    }
    let url = crate::postgres::cluster().unwrap().fresh_url();
    let build = || {
        let mut settings = lodge::Settings::default();
        settings.server.port = 0;
        settings.database.url = lodge::config::DatabaseUrl(Some(url.clone()));
        lodge::App::build(settings, lodge::Clock::system())
    };
    let started = futures_util::future::join_all((0..3).map(|_| build())).await;
    let created: Vec<bool> = started
        .into_iter()
        .map(|app| app.expect("every node starts").created_admin.is_some())
        .collect();
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    assert_eq!(
        crate::postgres::query_i64(&url, "SELECT count(*) FROM users"),
        1
    );
}

#[tokio::test]
async fn a_database_a_newer_lodge_migrated_is_refused() {
    if !on_postgres() {
        return;
    }
    let app = spawn_app().await;
    app.execute("UPDATE lodge_schema SET version = 999");
    let mut settings = lodge::Settings::default();
    settings.server.port = 0;
    app.same_database(&mut settings);
    let refused = lodge::App::build(settings, lodge::Clock::system())
        .await
        .err()
        .expect("refused");
    let said = format!("{refused:#}");
    assert!(said.contains("newer version of Lodge"), "{said}");
}

/// TLS to PostgreSQL: with `sslmode=require` the server's certificate is checked against
/// `database.ca_file`; without it (the public roots) a self-signed one is refused, saying so.
#[tokio::test]
async fn tls_to_postgres_checks_the_servers_certificate_against_database_ca_file() {
    if !on_postgres() {
        return;
    }
    let (mut cert, mut key) = (Default::default(), Default::default());
    let cluster = crate::postgres::own_cluster_with(|dir| {
        (cert, key) = make_certificate(dir, "postgres");
        format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        )
    })
    .expect("PostgreSQL is installed");
    let _ = &key;
    let url = format!(
        "{}&sslmode=require",
        cluster.fresh_url().replace("@127.0.0.1", "@localhost")
    );
    let trusting = url.clone();
    let ca = cert.clone();
    let app = spawn_app_with(move |s| {
        s.database.url = lodge::config::DatabaseUrl(Some(trusting.clone()));
        s.database.ca_file = ca.clone();
    })
    .await;
    app.login_admin().await;
    assert_ok(&app.gql("{ tokenApiList { tokenName } }", json!({})).await);

    let mut settings = lodge::Settings::default();
    settings.server.port = 0;
    settings.database.url = lodge::config::DatabaseUrl(Some(url));
    let refused = lodge::App::build(settings, lodge::Clock::system())
        .await
        .err()
        .expect("an unknown certificate is refused");
    let said = format!("{refused:#}").to_lowercase();
    assert!(said.contains("certificate"), "{said}");
}

/// Requests in flight share their first read (`store::postgres::Looks`), but a request that begins
/// after another node acknowledged a delete never takes a read from before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_one_node_holds_for_the_next_request_on_another_under_load() {
    if !on_postgres() {
        return;
    }
    // The load goes on with each token after its delete: those failures must not throttle.
    let nodes = nodes(2, |s| {
        s.tokens.max_per_user = 100;
        s.limits.address_burst = 1_000_000;
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.login_admin().await;
    b.login_admin().await;
    for round in 0..10 {
        let name = format!("busy-{round}");
        let token = a.new_token(&name).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load: Vec<_> = (0..16)
            .map(|_| {
                let (client, token, stop) = (a.new_client(), token.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        client.gql_bearer(&token, NEEDS_USER, json!({})).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let deleted = b
            .gql(
                "mutation($n: String!) { tokenApiDelete(tokenName: $n) }",
                json!({ "n": name }),
            )
            .await;
        assert_ok(&deleted);
        let answer = a.gql_bearer(&token, NEEDS_USER, json!({})).await;
        assert_eq!(error_code(&answer), "authFailed", "round {round}: {answer}");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in load {
            task.await.unwrap();
        }
    }
}

#[tokio::test]
async fn after_a_database_restart_every_request_to_idle_nodes_succeeds() {
    if !on_postgres() {
        return;
    }
    let cluster = crate::postgres::own_cluster().expect("PostgreSQL is installed");
    let url = cluster.fresh_url();
    let nodes = nodes(2, move |s| {
        s.database.url = lodge::config::DatabaseUrl(Some(url.clone()));
    })
    .await;
    nodes[0].login_admin().await;
    let token = nodes[0].new_token("ci").await;
    let cookie = nodes[0].cookie();
    // Each node's connections are used once, then left idle across the restart.
    for node in &nodes {
        node.set_cookie(cookie.as_deref());
        assert_ok(&node.gql(NEEDS_USER, json!({})).await);
        assert_ok(&node.gql_bearer(&token, NEEDS_USER, json!({})).await);
    }
    let cluster = std::sync::Arc::new(cluster);
    for round in 0..2 {
        let restarting = cluster.clone();
        tokio::task::spawn_blocking(move || {
            restarting.stop();
            restarting.start();
        })
        .await
        .unwrap();
        for (n, node) in nodes.iter().enumerate() {
            let what = format!("round {round}, node {n}");
            // A write first (its writer's connection is the one that went), then reads by
            // session and by token, a password login and a token login.
            let made = node
                .create_token(&format!("after-{round}-{n}"), "DAY")
                .await;
            assert_ok(&made);
            assert_ok(&node.gql(NEEDS_USER, json!({})).await);
            assert_ok(&node.gql_bearer(&token, NEEDS_USER, json!({})).await);
            let client = node.new_client();
            assert_ok(&client.login(ADMIN, ADMIN_PASSWORD).await);
            assert_ok(&client.login_with_token(&token).await);
            assert_eq!(node.get("/readyz").await.status(), 200, "{what}");
        }
    }
}

/// A URL naming no `sslmode` to another host asks for TLS: the test's cluster, which has none,
/// reached by a name that is not this host's (`hostaddr` points it at 127.0.0.1), is refused;
/// the same with `sslmode=disable` said outright, or through `localhost`, connects.
#[tokio::test]
async fn across_a_network_a_database_url_without_sslmode_requires_tls() {
    if !on_postgres() {
        return;
    }
    let cluster = crate::postgres::cluster().expect("PostgreSQL is installed");
    let schema_url = cluster.fresh_url();
    let (base, options) = schema_url.split_once('?').unwrap();
    let port = base.rsplit(':').next().unwrap().split('/').next().unwrap();
    let remote = format!(
        "postgres://postgres@db.example.internal:{port}/postgres?hostaddr=127.0.0.1&{options}"
    );
    let dir = tempfile::tempdir().unwrap();
    let refused = crate::binary::lodge(dir.path())
        .env("LODGE_DATABASE__URL", &remote)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("TLS"), "says TLS is what failed: {said}");

    for url in [
        format!("{remote}&sslmode=disable"),
        schema_url.replace("127.0.0.1", "localhost"),
    ] {
        let listed = crate::binary::lodge(dir.path())
            .env("LODGE_DATABASE__URL", &url)
            .args(["user", "list"])
            .output()
            .unwrap();
        assert!(listed.status.success(), "{url}: {listed:?}");
    }
}
