//! A real PostgreSQL for the tests: Debian's binaries, one cluster per test run in a temporary
//! folder on a 127.0.0.1 port, started at the first use (`initdb` and `pg_ctl`, as the
//! `postgres` user when run as root, since `initdb` refuses root) and stopped when the test
//! process ends. Each test gets a schema of its own in it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    options: String,
    /// Where the cluster lives; kept until the process ends.
    _dir: PathBuf,
}

/// The folder of PostgreSQL's programs, if it is installed.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    // SAFETY: no arguments, no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Makes the `postgres` user own `dir` and what is in it, when this process is root (which
/// PostgreSQL's programs refuse to run as).
fn give_to_postgres(dir: &Path) {
    if !is_root() {
        return;
    }
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs a PostgreSQL program, as the `postgres` user when this process is root.
fn run(bin: &Path, program: &str, args: &[&str]) {
    let program = bin.join(program);
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(args)
            .status()
    } else {
        Command::new(&program).args(args).status()
    };
    let status = status.unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(status.success(), "{} {args:?} failed", program.display());
}

/// The cluster of this test run, started at the first call; `None` when PostgreSQL is not
/// installed (a failure instead under `CI_REQUIRE_POSTGRES=1`).
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER.get_or_init(|| start(|_| String::new())).as_ref()
}

/// A cluster of the caller's own, for a test that stops and starts it; stopped when the test
/// process ends, like the shared one.
pub fn own_cluster() -> Option<Cluster> {
    own_cluster_with(|_| String::new())
}

/// [`own_cluster`] with more server options, made from the cluster's folder (which the
/// `postgres` user owns) before it starts.
pub fn own_cluster_with(options: impl FnOnce(&Path) -> String) -> Option<Cluster> {
    cluster()?;
    start(options)
}

fn start(more: impl FnOnce(&Path) -> String) -> Option<Cluster> {
    let Some(bin) = binaries() else {
        assert!(
            std::env::var_os("CI_REQUIRE_POSTGRES").is_none_or(|v| v != "1"),
            "CI_REQUIRE_POSTGRES=1 but PostgreSQL is not installed (apt-get install postgresql)"
        );
        eprintln!("PostgreSQL is not installed: api_postgres runs on SQLite instead");
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("lodge-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    give_to_postgres(&dir);
    let port = crate::helpers::free_port();
    let data_arg = data.to_str().unwrap();
    run(
        &bin,
        "initdb",
        &[
            "-D",
            data_arg,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "-N",
        ],
    );
    let extra = more(&dir);
    give_to_postgres(&dir);
    let options = format!(
        "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections=600 \
         -c fsync=on -c shared_buffers=64MB {extra}",
        dir = dir.display()
    );
    let cluster = Cluster {
        port,
        bin: bin.clone(),
        data: data.clone(),
        options,
        _dir: dir.clone(),
    };
    cluster.start();
    // Stopped when this process ends, however it ends: a watcher waits for it.
    let stop = format!(
        "while [ -e /proc/{pid} ]; do sleep 0.5; done; \
         {pg_ctl} -D {data_arg} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        dir = dir.display(),
    );
    let mut watcher = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &stop]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &stop]);
        c
    };
    // Not waited for: it outlives this process on purpose.
    #[allow(clippy::zombie_processes)]
    watcher
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the cluster's watcher starts");
    Some(cluster)
}

impl Cluster {
    /// Starts the server (again) and waits until it takes connections.
    pub fn start(&self) {
        let log = self._dir.join("log");
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &self.options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once: its connections are cut, as when its host fails.
    pub fn stop(&self) {
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// A fresh schema of this cluster's, and the URL that works in it.
    pub fn fresh_url(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        batch(&base, &format!("CREATE SCHEMA {schema}"));
        format!("{base}?options=-csearch_path%3D{schema}")
    }
}

/// The synchronous client blocks on a runtime of its own, which a test's runtime thread may not
/// do: it runs on a thread of its own.
fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap())
}

/// Runs statements at `url` with a connection of the test's own.
pub fn batch(url: &str, sql: &str) {
    on_own_thread(|| {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap()
    })
}

/// Takes the advisory lock every node's writer holds for its batch (`WRITE_LOCK` in
/// src/store/postgres/mod.rs).
pub const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(1282368615, hashtext(current_schema()))";

/// A connection of another process's holding the writers' lock, on a thread of its own.
pub struct Held {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Takes the writers' lock at `url` and holds it until released.
pub fn hold_write_lock(url: &str) -> Held {
    let (locked, taken) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let url = url.to_owned();
    let thread = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = client.transaction().unwrap();
        tx.batch_execute(WRITE_LOCK).unwrap();
        locked.send(()).unwrap();
        let _ = released.recv();
        tx.rollback().unwrap();
    });
    taken.recv().unwrap();
    Held {
        release: Some(release),
        thread: Some(thread),
    }
}

impl Held {
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.release.take();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.end();
    }
}

/// The number in the first row of a query at `url`, or `None`.
pub fn query_opt(url: &str, sql: &str) -> Option<i64> {
    on_own_thread(|| {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .query_opt(sql, &[])
            .unwrap()
            .and_then(|row| row.get(0))
    })
}

/// The texts of the first column of a query's rows at `url` (NULLs left out).
pub fn query_texts(url: &str, sql: &str) -> Vec<String> {
    on_own_thread(|| {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .query(sql, &[])
            .unwrap()
            .iter()
            .filter_map(|row| row.get::<_, Option<String>>(0))
            .collect()
    })
}

/// The one number a query at `url` gives.
pub fn query_i64(url: &str, sql: &str) -> i64 {
    on_own_thread(|| {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .query_one(sql, &[])
            .unwrap()
            .get(0)
    })
}
