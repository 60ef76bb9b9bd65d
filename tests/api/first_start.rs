//! The first start and the commands around it: an administrator only once the server listens,
//! its generated password kept off standard output when that is not a terminal, a password from
//! a file, and commands that never create a database by mistake.

use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

use crate::binary::{Server, init, lodge, login, run_command};

fn users_in(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_first_start_on_a_busy_port_leaves_no_administrator_and_the_next_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let failed = lodge(dir.path())
        .env("LODGE_SERVER__PORT", &port)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr).to_string()
        + &String::from_utf8_lossy(&failed.stdout);
    assert!(
        said.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{said}"
    );
    assert!(!said.contains("first administrator"), "{said}");
    assert_eq!(
        users_in(&dir.path().join("lodge.db")),
        0,
        "no administrator"
    );
    drop(busy);

    // Standard output is a pipe here, not a terminal: the password goes to standard error.
    let errors = dir.path().join("stderr.log");
    let mut server = Server(
        lodge(dir.path())
            .env("LODGE_SERVER__PORT", "0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&errors).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        assert!(Instant::now() < deadline, "{lines:?}");
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{lines:?}");
        if let Some(url) = line.trim().strip_prefix("listening on ") {
            break url.to_owned();
        }
        lines.push(line.trim().to_owned());
    };
    assert_eq!(
        lines,
        [
            "created the first administrator `admin` with a generated password, printed on standard error"
        ]
    );
    let errors = std::fs::read_to_string(&errors).unwrap();
    let shown = errors
        .lines()
        .skip_while(|l| !l.contains("shown only once"))
        .nth(1)
        .unwrap_or_else(|| panic!("no password on standard error: {errors}"))
        .trim()
        .to_owned();
    let (answer, cookie) = login(&url, "admin", &shown);
    assert!(cookie.is_some(), "{answer}");
    drop(server);
}

#[test]
fn commands_other_than_serve_and_init_create_no_database_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let expected = format!("no database at {}", dir.path().join("lodge.db").display());
    let commands: [&[&str]; 6] = [
        &["user", "list"],
        &["user", "add", "ida"],
        &["token", "list", "--expiring"],
        &["token", "create", "--user", "ida", "--name", "ci"],
        &["audit"],
        &["backup", "copy.db"],
    ];
    for args in commands {
        let refused = lodge(dir.path()).args(args).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {refused:?}");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains(&expected) && said.contains("lodge init"),
            "{args:?}: {said}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    init(dir.path());
    let listed = run_command(lodge(dir.path()), &["user", "list"], "");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("admin"));
    let again = run_command(lodge(dir.path()), &["init"], "");
    assert!(String::from_utf8_lossy(&again.stdout).contains("exists"));
}

#[test]
fn the_first_administrators_password_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-password");
    std::fs::write(&file, "a password kept in a file\n").unwrap();

    let mut both = lodge(dir.path());
    both.env("LODGE_ADMIN__PASSWORD_FILE", &file)
        .env("LODGE_ADMIN__PASSWORD", "another password");
    let refused = both.arg("init").output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("both set"),
        "{refused:?}"
    );

    let mut missing = lodge(dir.path());
    missing.env("LODGE_ADMIN__PASSWORD_FILE", dir.path().join("nowhere"));
    let refused = missing.arg("init").output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("admin.password_file") && said.contains("nowhere"),
        "{said}"
    );

    let mut from_file = lodge(dir.path());
    from_file.env("LODGE_ADMIN__PASSWORD_FILE", &file);
    let made = run_command(from_file, &["init"], "");
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(said.contains("the password of the configuration"), "{said}");
    assert!(!said.contains("a password kept"), "{said}");

    let (server, url, _) = crate::binary::start(dir.path());
    let (answer, cookie) = login(&url, "admin", "a password kept in a file");
    assert!(cookie.is_some(), "{answer}");
    drop(server);
}
