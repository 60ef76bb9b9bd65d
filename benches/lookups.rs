//! Micro-benchmarks of the pieces every authenticated request runs: reading a token and its
//! digest, and the store lookups of a token and of a session, on a real SQLite file seeded like
//! bench/load's (1,000 users, 5 tokens each, a session each).
//!
//! `cargo bench --bench lookups`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use lodge::{
    auth::secret::{ApiTokenSecret, SessionSecret},
    store::{Store, Tx, change_counter, sessions, tokens, users},
};

struct Seeded {
    _dir: tempfile::TempDir,
    store: Store,
    token_texts: Vec<String>,
    token_digests: Vec<[u8; 32]>,
    session_ids: Vec<i64>,
}

fn add_user(tx: &Tx, number: usize) -> i64 {
    let name = format!("user{number:04}");
    let user = users::NewUser {
        user_id: &name,
        display_name: &name,
        role: "user",
        enabled: true,
        password_hash: None,
        now: 0,
    };
    users::insert(tx, &user).unwrap()
}

fn seeded() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lodge.db")).unwrap();
    let mut token_texts = Vec::new();
    let mut token_digests = Vec::new();
    let mut session_ids = Vec::new();
    let mut conn = store.sqlite_connection().unwrap();
    let transaction = conn.transaction().unwrap();
    let tx = Tx::Sqlite(&transaction);
    for u in 0..1000 {
        let user = add_user(&tx, u);
        for t in 0..5 {
            let secret = ApiTokenSecret::generate();
            let digest = secret.digest();
            let token = tokens::insert(
                &tx,
                &tokens::NewToken {
                    user,
                    name: &format!("t{t}"),
                    digest: &digest,
                    now: 0,
                    expires_at: None,
                    lifetime: "never",
                    needs_admin: false,
                    grants: None,
                },
            )
            .unwrap();
            if t == 0 {
                let session = SessionSecret::generate().digest();
                let id = sessions::insert(
                    &tx,
                    &sessions::NewSession {
                        secret_digest: &session,
                        user,
                        provider: "token",
                        token_id: Some(token),
                        now: 0,
                        address: None,
                        user_agent: None,
                        grants: None,
                        token_generation: None,
                    },
                )
                .unwrap();
                session_ids.push(id);
            }
            token_texts.push(secret.expose().to_owned());
            token_digests.push(digest);
        }
    }
    transaction.commit().unwrap();
    drop(conn);
    Seeded {
        _dir: dir,
        store,
        token_texts,
        token_digests,
        session_ids,
    }
}

fn secrets(c: &mut Criterion) {
    let text = ApiTokenSecret::generate().expose().to_owned();
    c.bench_function("token parse and digest", |b| {
        b.iter(|| ApiTokenSecret::parse(black_box(&text)).unwrap().digest())
    });
    c.bench_function("token generate", |b| b.iter(ApiTokenSecret::generate));
    c.bench_function("session secret generate and digest", |b| {
        b.iter(|| SessionSecret::generate().digest())
    });
}

fn lookups(c: &mut Criterion) {
    let s = seeded();
    let mut i = 0;
    c.bench_function("token lookup (parse, digest, by_digest)", |b| {
        b.iter(|| {
            i = (i + 7919) % s.token_texts.len();
            let digest = ApiTokenSecret::parse(&s.token_texts[i]).unwrap().digest();
            // A read of SQLite's runs on the calling thread: its future is ready at once.
            s.store
                .read(move |conn| tokens::by_digest(conn, &digest))
                .now_or_never()
                .unwrap()
                .unwrap()
                .unwrap()
        })
    });
    c.bench_function("session lookup (by_id)", |b| {
        b.iter(|| {
            i = (i + 7919) % s.session_ids.len();
            let id = s.session_ids[i];
            s.store
                .read(move |conn| sessions::by_id(conn, id))
                .now_or_never()
                .unwrap()
                .unwrap()
                .unwrap()
        })
    });
    // What a request reads before it trusts a remembered session or token: the write-ahead
    // log's header, and the change counter when the header moved.
    c.bench_function("write-ahead log header read (shared memory)", |b| {
        b.iter(|| s.store.log_header().unwrap())
    });
    c.bench_function("change counter read (a read transaction)", |b| {
        b.iter(|| {
            s.store
                .read(change_counter::current)
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    // Under load the writer commits between any two lookups, and a reader then reads its pages
    // again; this shows that cost with one small commit from another connection before each.
    let writer = s.store.sqlite_connection().unwrap();
    // Without the flush: this measures the reader's cost, not the disk's.
    writer.execute_batch("PRAGMA synchronous = OFF").unwrap();
    c.bench_function("token lookup after another connection's commit", |b| {
        b.iter(|| {
            i = (i + 7919) % s.token_digests.len();
            writer
                .execute(
                    "UPDATE sessions SET last_seen_at = last_seen_at + 1 WHERE id = 1",
                    [],
                )
                .unwrap();
            let digest = s.token_digests[i];
            s.store
                .read(move |conn| tokens::by_digest(conn, &digest))
                .now_or_never()
                .unwrap()
                .unwrap()
                .unwrap()
        })
    });
    c.bench_function(
        "a commit of one small update, unflushed (for the line above)",
        |b| {
            b.iter(|| {
                writer
                    .execute(
                        "UPDATE sessions SET last_seen_at = last_seen_at + 1 WHERE id = 1",
                        [],
                    )
                    .unwrap()
            })
        },
    );
}

/// What the server's first login after a start (or after sessions ended elsewhere) reads: every
/// user's list of sessions, at the cap of 100 sessions for each of 1,000 users.
fn session_lists(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lists.db")).unwrap();
    let mut conn = store.sqlite_connection().unwrap();
    let transaction = conn.transaction().unwrap();
    let tx = Tx::Sqlite(&transaction);
    let digest = SessionSecret::generate().digest();
    for u in 0..1000 {
        let user = add_user(&tx, u);
        for _ in 0..100 {
            let session = sessions::NewSession {
                secret_digest: &digest,
                user,
                provider: "local",
                token_id: None,
                now: 0,
                address: None,
                user_agent: None,
                grants: None,
                token_generation: None,
            };
            sessions::insert(&tx, &session).unwrap();
        }
    }
    transaction.commit().unwrap();
    drop(conn);
    let mut group = c.benchmark_group("sessions");
    group.sample_size(10);
    group.bench_function("every user's list read (100,000 sessions, in parts)", |b| {
        b.iter(|| {
            store
                .read(|conn| {
                    let mut lists = sessions::UserSessions::default();
                    while !lists.read_whole() {
                        lists.sync(conn, 0, u32::MAX)?;
                    }
                    Ok(lists)
                })
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function(
        "the first part read (what the first login waits for)",
        |b| {
            b.iter(|| {
                store
                    .read(|conn| {
                        let mut lists = sessions::UserSessions::default();
                        lists.sync(conn, 0, u32::MAX)?;
                        Ok(lists)
                    })
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        },
    );
    group.finish();
}

/// What `/metrics` costs a request: a token login counts one login and times one request.
fn metrics(c: &mut Criterion) {
    let metrics = lodge::metrics::Metrics::new(&lodge::metrics::WriterMetrics::default());
    let took = std::time::Duration::from_micros(30);
    c.bench_function("metrics: a token login's recording (count and time)", |b| {
        b.iter(|| {
            metrics.login(std::hint::black_box("token"), "success");
            metrics.request(std::hint::black_box("authLogin"), took);
        })
    });
    let started = std::time::Instant::now();
    c.bench_function("metrics: the request's clock (two readings)", |b| {
        b.iter(|| std::hint::black_box(started.elapsed()))
    });
}

criterion_group!(benches, secrets, lookups, session_lists, metrics);
criterion_main!(benches);
