//! Every administrator action has a command: the command line changes users while the server
//! runs, and the server follows at the next request.

use serde_json::json;

use crate::binary::{init, lodge, login, post, run_command, start, token_login};

#[test]
fn the_command_line_disables_enables_promotes_and_deletes_users_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start(dir.path());
    run_command(
        lodge(dir.path()),
        &["user", "add", "vic"],
        "vic's password\n",
    );
    let token = run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "vic", "--name", "ci"],
        "",
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let (_, cookie) = login(&url, "vic", "vic's password");
    let cookie = cookie.expect("vic logs in");
    let me = json!({ "query": "{ activeUser { userId authRole } }" });
    let verify = |token: &str| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                reqwest::Client::new()
                    .get(format!("{url}/api/auth/verify"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
    };
    assert_eq!(verify(&token), 200);

    let disabled = run_command(lodge(dir.path()), &["user", "disable", "vic"], "");
    assert!(String::from_utf8_lossy(&disabled.stdout).contains("disabled `vic`"));
    assert_eq!(verify(&token), 401, "the token stops working at once");
    let (answer, _) = post(&url, me.clone(), Some(&cookie));
    assert!(
        answer["data"]["activeUser"].is_null(),
        "the session ended: {answer}"
    );
    let (refused, _) = token_login(&url, &token);
    assert_eq!(
        refused["errors"][0]["message"],
        "User authentication failed"
    );

    run_command(lodge(dir.path()), &["user", "enable", "vic"], "");
    assert_eq!(verify(&token), 200, "the token works again");
    let (answer, _) = post(&url, me.clone(), Some(&cookie));
    assert!(
        answer["data"]["activeUser"].is_null(),
        "an ended session stays ended"
    );

    run_command(lodge(dir.path()), &["user", "role", "vic", "admin"], "");
    let (_, cookie) = login(&url, "vic", "vic's password");
    let (answer, _) = post(&url, me.clone(), cookie.as_deref());
    assert_eq!(
        answer["data"]["activeUser"]["authRole"], "admin",
        "{answer}"
    );
    let bad_role = lodge(dir.path())
        .args(["user", "role", "vic", "root"])
        .output()
        .unwrap();
    assert!(!bad_role.status.success());

    run_command(lodge(dir.path()), &["user", "delete", "vic"], "");
    assert_eq!(verify(&token), 401, "a deleted user's token is gone");
    let listed = run_command(lodge(dir.path()), &["user", "list"], "");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("vic"));
    let again = lodge(dir.path())
        .args(["user", "delete", "vic"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no user `vic`"));
    drop(server);
}

/// The server holds failed-login locks in memory; the command line records a lift in the
/// database, and the server lifts its lock at the account's next login.
#[test]
fn the_command_line_lifts_a_lock_the_running_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start(dir.path());
    run_command(
        lodge(dir.path()),
        &["user", "add", "vic"],
        "vic's password\n",
    );
    let lock = || {
        for _ in 0..10 {
            login(&url, "vic", "wrong");
        }
        let (refused, cookie) = login(&url, "vic", "vic's password");
        assert_eq!(
            refused["errors"][0]["extensions"]["webErrorCode"], "tooManyRequests",
            "{refused}"
        );
        assert!(cookie.is_none());
    };
    lock();
    let unlocked = run_command(lodge(dir.path()), &["user", "unlock", "vic"], "");
    assert!(String::from_utf8_lossy(&unlocked.stdout).contains("lifted the failed-login lock"));
    let (answer, cookie) = login(&url, "vic", "vic's password");
    assert!(cookie.is_some(), "the lock is lifted: {answer}");

    // A password set from the command line lifts it too, and the new password logs in.
    lock();
    run_command(
        lodge(dir.path()),
        &["user", "passwd", "vic"],
        "vic's new password\n",
    );
    let (answer, cookie) = login(&url, "vic", "vic's new password");
    assert!(cookie.is_some(), "the lock is lifted: {answer}");
    drop(server);
}

#[test]
fn the_command_line_makes_scoped_tokens_and_lists_their_access() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    run_command(
        lodge(dir.path()),
        &["user", "add", "wall"],
        "wall's password\n",
    );
    run_command(
        lodge(dir.path()),
        &[
            "token",
            "create",
            "--user",
            "wall",
            "--name",
            "dashboard",
            "--scope",
            "read_proxy",
            "--service",
            "grafana.example.com",
            "--allow-from",
            "192.0.2.0/24",
        ],
        "",
    );
    run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "wall", "--name", "plain"],
        "",
    );
    let listed = run_command(lodge(dir.path()), &["token", "list", "--user", "wall"], "");
    let listed = String::from_utf8(listed.stdout).unwrap();
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {listed}"))
            .to_owned()
    };
    assert!(
        line("dashboard").ends_with("read_proxy; grafana.example.com; from 192.0.2.0/24"),
        "{listed}"
    );
    assert!(
        line("plain").ends_with("api proxy; any service; from anywhere"),
        "{listed}"
    );
    let bad = lodge(dir.path())
        .args([
            "token", "create", "--user", "wall", "--name", "x", "--scope", "admin",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("unknown scope `admin`"), "{stderr}");
}

#[test]
fn lodge_scan_finds_a_token_by_its_checksum_and_needs_no_database() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    run_command(
        lodge(dir.path()),
        &["user", "add", "wall"],
        "wall's password\n",
    );
    let made = run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "wall", "--name", "ci"],
        "",
    );
    let token = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    let mut lookalike = token.clone();
    let last = lookalike.pop().unwrap();
    lookalike.push(if last == 'a' { 'b' } else { 'a' });

    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir(repo.path().join("deploy")).unwrap();
    std::fs::write(
        repo.path().join("deploy/env"),
        format!("# settings\nHOST=ci.example.com\nTOKEN={token}\n"),
    )
    .unwrap();
    std::fs::write(
        repo.path().join("notes.md"),
        format!("shape only: {lookalike}\n"),
    )
    .unwrap();
    // Run from an empty folder, without a database.
    let empty = tempfile::tempdir().unwrap();
    let scan = |path: &std::path::Path| lodge(empty.path()).arg("scan").arg(path).output().unwrap();
    let found = scan(repo.path());
    assert_eq!(found.status.code(), Some(1));
    let stdout = String::from_utf8(found.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "{}:3: a Lodge API token\n",
            repo.path().join("deploy/env").display()
        )
    );
    assert!(!stdout.contains(&token), "the secret is not printed");
    assert!(
        !empty.path().join("lodge.db").exists(),
        "no database was made"
    );

    std::fs::remove_file(repo.path().join("deploy/env")).unwrap();
    let clean = scan(repo.path());
    assert_eq!(clean.status.code(), Some(0), "the lookalike is not a token");
    assert!(clean.stdout.is_empty());
}

#[test]
fn lodge_token_list_expiring_exits_1_while_a_token_expires_soon() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    run_command(lodge(dir.path()), &["user", "add", "ci"], "ci's password\n");
    run_command(
        lodge(dir.path()),
        &[
            "token",
            "create",
            "--user",
            "ci",
            "--name",
            "yearly",
            "--lifetime",
            "year",
        ],
        "",
    );
    let calm = lodge(dir.path())
        .args(["token", "list", "--expiring"])
        .output()
        .unwrap();
    assert_eq!(calm.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&calm.stdout).contains("no token expires within"));
    run_command(
        lodge(dir.path()),
        &[
            "token",
            "create",
            "--user",
            "ci",
            "--name",
            "weekly",
            "--lifetime",
            "week",
        ],
        "",
    );
    let warned = lodge(dir.path())
        .args(["token", "list", "--expiring"])
        .output()
        .unwrap();
    assert_eq!(warned.status.code(), Some(1));
    let listed = String::from_utf8_lossy(&warned.stdout);
    assert!(
        listed.contains("ci") && listed.contains("weekly"),
        "{listed}"
    );
    assert!(!listed.contains("yearly"), "{listed}");
}

#[test]
fn lodge_token_rotate_prints_a_new_secret_and_keeps_the_old_for_its_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, _) = start(dir.path());
    run_command(lodge(dir.path()), &["user", "add", "ci"], "ci's password\n");
    let made = run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "ci", "--name", "deploy"],
        "",
    );
    let old = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    let rotated = run_command(
        lodge(dir.path()),
        &[
            "token", "rotate", "--user", "ci", "--name", "deploy", "--grace", "1h",
        ],
        "",
    );
    let new = String::from_utf8(rotated.stdout).unwrap().trim().to_owned();
    assert!(new.starts_with("lodge_") && new != old);
    for token in [&old, &new] {
        let (answer, cookie) = token_login(&url, token);
        assert!(cookie.is_some(), "{answer}");
    }
    let too_long = lodge(dir.path())
        .args([
            "token", "rotate", "--user", "ci", "--name", "deploy", "--grace", "8d",
        ])
        .output()
        .unwrap();
    assert!(!too_long.status.success());
    assert!(String::from_utf8_lossy(&too_long.stderr).contains("tokens.max_rotation_grace"));
    drop(server);
}

/// `lodge scan` of a 3 GB file finds the token at its end in bounded memory, and a folder it
/// cannot read is named on standard error while the scan goes on (run as `nobody`, as root
/// reads everything).
#[test]
fn lodge_scan_streams_a_large_file_and_goes_on_past_a_folder_it_cannot_read() {
    use std::os::unix::{fs::PermissionsExt as _, process::CommandExt as _};
    if !crate::helpers::root_or_skip("acting as another user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let made = run_command(
        lodge(dir.path()),
        &["token", "create", "--user", "admin", "--name", "ci"],
        "",
    );
    let token = String::from_utf8(made.stdout).unwrap().trim().to_owned();

    let repo = tempfile::tempdir().unwrap();
    let open = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(repo.path(), 0o755);
    let big = repo.path().join("big.log");
    {
        use std::io::{Seek as _, Write as _};
        let mut file = std::fs::File::create(&big).unwrap();
        let size = 3 * 1024 * 1024 * 1024_u64;
        // Sparse: three gigabytes of zeros on no disk, then the token on the next line.
        file.set_len(size).unwrap();
        file.seek(std::io::SeekFrom::Start(size - 100)).unwrap();
        write!(file, "\n{token}\n").unwrap();
    }
    open(&big, 0o644);
    std::fs::create_dir(repo.path().join("locked")).unwrap();
    std::fs::write(repo.path().join("locked/env"), format!("{token}\n")).unwrap();
    open(&repo.path().join("locked"), 0o000);
    std::fs::create_dir(repo.path().join("open")).unwrap();
    std::fs::write(repo.path().join("open/env"), format!("T={token}\n")).unwrap();
    open(&repo.path().join("open"), 0o755);
    open(&repo.path().join("open/env"), 0o644);

    let empty = tempfile::tempdir().unwrap();
    open(empty.path(), 0o755);
    let child = lodge(empty.path())
        .arg("scan")
        .arg(repo.path())
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let (stdout, stderr) = {
        use std::io::Read as _;
        let (mut out, mut err) = (String::new(), String::new());
        let mut child = child;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        std::mem::forget(child);
        (out, err)
    };
    let mut status = 0;
    // SAFETY: waits for this test's own child; `usage` is filled in by the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    assert_eq!(libc::WEXITSTATUS(status), 1, "{stderr}");
    open(&repo.path().join("locked"), 0o755);
    assert_eq!(
        stdout,
        format!(
            "{}:2: a Lodge API token\n{}:1: a Lodge API token\n",
            big.display(),
            repo.path().join("open/env").display()
        )
    );
    assert!(
        stderr.contains(&format!(
            "cannot read {}",
            repo.path().join("locked").display()
        )),
        "{stderr}"
    );
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(
        peak_mib < 200,
        "bounded memory: {peak_mib} MiB for a 3 GB file"
    );
}

/// `lodge migrate` refuses a SQLite file a running server has open (it would go on writing rows
/// the copy lacks), exit code 2, before it reaches for the target; stopped, it is not refused.
#[test]
fn lodge_migrate_refuses_a_database_a_running_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _, _) = crate::binary::start_with(dir.path(), &[]);
    let port = crate::helpers::free_port();
    let to = format!("postgres://lodge@127.0.0.1:{port}/lodge?connect_timeout=2");
    let migrate = || {
        lodge(dir.path())
            .args(["migrate", "--from", "lodge.db", "--to", &to])
            .output()
            .unwrap()
    };
    let refused = migrate();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("open in a running Lodge"), "{said}");
    assert!(said.contains("lodge.db"), "{said}");
    drop(server);
    let after = migrate();
    let said = String::from_utf8_lossy(&after.stderr);
    assert!(
        !said.contains("running Lodge"),
        "stopped, it is not refused: {said}"
    );
}
