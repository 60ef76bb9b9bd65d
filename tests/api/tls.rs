//! https of Lodge's own (`server.tls_cert`, `server.tls_key`): a client that trusts the
//! certificate logs in and gets a Secure cookie and HSTS, TLS 1.1 is refused, and a replaced
//! certificate is served to new connections without a restart (on a change of the files, and
//! on SIGHUP).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    binary::{lodge, start_with},
    helpers::*,
};

fn login_body(user: &str, password: &str) -> Value {
    json!({
        "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
        "variables": { "c": { "user": user, "password": password } }
    })
}

/// Whether a client trusting only `root` completes a handshake with `url`.
fn trusted_by(url: &str, root: &Path) -> bool {
    let (url, root) = (url.to_owned(), root.to_owned());
    std::thread::spawn(move || {
        std::panic::catch_unwind(|| https(&format!("{url}/api/gql"), &root, &json!({}), &[]))
            .is_ok()
    })
    .join()
    .unwrap()
}

/// `openssl s_client` at `port` with only `version` (`-tls1_1`, `-tls1_2`); its output.
fn handshake(port: u16, version: &str) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version,
        ])
        // Lets this client offer TLS 1.1 at all: the refusal must be the server's.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_logs_in_with_a_secure_cookie_and_hsts_and_refuses_tls_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_certificate(dir.path(), "first");
    let app = {
        let (cert, key) = (cert.clone(), key.clone());
        spawn_app_with(move |s| {
            s.server.tls_cert = cert;
            s.server.tls_key = key;
        })
        .await
    };
    assert!(app.url.starts_with("https://127.0.0.1:"), "{}", app.url);
    let port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let url = format!("{}/api/gql", app.url);
    let answer = {
        let cert = cert.clone();
        tokio::task::spawn_blocking(move || {
            https(&url, &cert, &login_body(ADMIN, ADMIN_PASSWORD), &[])
        })
        .await
        .unwrap()
    };
    assert_eq!(
        answer.json()["data"]["authLogin"]["authStatus"],
        "SUCCESS",
        "{}",
        answer.body
    );
    let cookie = answer.header("set-cookie").unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert_eq!(
        answer.header("strict-transport-security"),
        Some("max-age=31536000")
    );

    let (ok, text) = tokio::task::spawn_blocking(move || handshake(port, "-tls1_2"))
        .await
        .unwrap();
    assert!(ok, "TLS 1.2 is served: {text}");
    let (ok, text) = tokio::task::spawn_blocking(move || handshake(port, "-tls1_1"))
        .await
        .unwrap();
    assert!(!ok, "TLS 1.1 is refused: {text}");
    // The client offered TLS 1.1 and the server answered with an alert (rustls sends
    // handshake_failure, 40): the refusal is the server's, not the client library's.
    assert!(
        text.contains("Protocol  : TLSv1.1") && text.contains("SSL alert number"),
        "refused by the server: {text}"
    );

    // Replaced as a renewal replaces them: new connections get the new certificate.
    let (new_cert, new_key) = make_certificate(dir.path(), "renewed");
    let app_url = app.url.clone();
    tokio::task::spawn_blocking(move || {
        assert!(!trusted_by(&app_url, &new_cert), "not served yet");
        std::fs::copy(&new_key, &key).unwrap();
        std::fs::copy(&new_cert, &cert).unwrap();
        wait_until("the renewed certificate", || {
            trusted_by(&app_url, &new_cert)
        });
    })
    .await
    .unwrap();
}

#[test]
fn sighup_reloads_the_certificate_and_a_broken_one_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_key) = make_certificate(dir.path(), "first");
    let (cert, key) = (dir.path().join("live.crt"), dir.path().join("live.key"));
    std::fs::copy(&first, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    let env = [
        ("LODGE_SERVER__TLS_CERT", cert.to_str().unwrap()),
        ("LODGE_SERVER__TLS_KEY", key.to_str().unwrap()),
    ];
    let (mut server, url, _) = start_with(dir.path(), &env);
    assert!(url.starts_with("https://"), "{url}");
    assert!(trusted_by(&url, &first));

    let (second, second_key) = make_certificate(dir.path(), "second");
    std::fs::copy(&second_key, &key).unwrap();
    std::fs::copy(&second, &cert).unwrap();
    let pid = i32::try_from(server.0.id()).unwrap();
    // SAFETY: a signal to this test's own child process.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until("the second certificate", || trusted_by(&url, &second));
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "still running after SIGHUP"
    );

    std::fs::write(&cert, "not a certificate").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let log = dir.path().join("lodge.log");
    wait_until("the refusal in the log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("kept the TLS certificate in use")
    });
    assert!(trusted_by(&url, &second), "the second one is still served");
    drop(server);
}

#[test]
fn a_bad_certificate_setting_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = make_certificate(dir.path(), "one");
    let (_, other_key) = make_certificate(dir.path(), "other");
    let cert = cert.to_str().unwrap();
    let missing = dir.path().join("missing.key");
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("LODGE_SERVER__TLS_CERT", cert)], "go together"),
        (
            &[
                ("LODGE_SERVER__TLS_CERT", cert),
                ("LODGE_SERVER__TLS_KEY", missing.to_str().unwrap()),
            ],
            "missing.key (server.tls_key)",
        ),
        (
            &[
                ("LODGE_SERVER__TLS_CERT", cert),
                ("LODGE_SERVER__TLS_KEY", other_key.to_str().unwrap()),
            ],
            "does not fit the certificate",
        ),
    ];
    for (env, says) in cases {
        let out = lodge(dir.path())
            .env("LODGE_SERVER__PORT", "0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{env:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{env:?}: {said}");
    }
    assert!(
        !dir.path().join("lodge.db").exists(),
        "the settings are checked before the database is made"
    );
}
