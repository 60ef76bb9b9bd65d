//! A real nginx (`auth_request`) and a real Caddy (`forward_auth`) asking Lodge, in front of an
//! upstream that echoes headers, with the configurations the docs tell people to use:
//! `docs/nginx-forward-auth.conf` and `docs/caddy-forward-auth.Caddyfile`.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use jiff::SignedDuration;
use serde_json::{Value, json};

use lodge::config::RequestHeaders;

use crate::helpers::*;

fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The name the documented proxies serve: clients reach it at 127.0.0.1 through
/// [`service_client`].
const SERVICE: &str = "service.example.com";

/// A client that finds [`SERVICE`] at the proxy listening on `port` of 127.0.0.1, sending from
/// `from` when given.
fn service_client(port: u16, from: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().resolve(SERVICE, ([127, 0, 0, 1], port).into());
    if let Some(from) = from {
        builder = builder.local_address(from.parse::<std::net::IpAddr>().unwrap());
    }
    builder.build().unwrap()
}

/// An upstream that answers every request with the request's headers, one per line.
fn start_upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut headers = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push_str(line.trim_end());
                headers.push('\n');
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{headers}",
                headers.len()
            );
        }
    });
    (port, hits)
}

/// A proxy's process and its folder, stopped and removed when dropped.
struct Proxy {
    child: Child,
    _prefix: tempfile::TempDir,
}

impl Drop for Proxy {
    /// SIGTERM, so that nginx's master stops its workers (a SIGKILL left them running with no
    /// parent); SIGKILL only if it has not stopped within 5 s.
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: a signal to this test's own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(binary: &Path, lodge: &str, upstream: u16) -> (Proxy, u16) {
    let documented = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx-forward-auth.conf");
    let server = std::fs::read_to_string(documented).unwrap();
    let port = free_port();
    let server = server
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:8978", lodge)
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"));
    let prefix = tempfile::tempdir().unwrap();
    (run_nginx(binary, &server, prefix, port), port)
}

/// The `server { }` block of `docs/FILE` (nginx with TLS for lodge.example.com), made to listen
/// on a free port of 127.0.0.1 for `localhost` with a certificate made in `prefix`; the block,
/// its port and the certificate.
fn documented_https(prefix: &Path, file: &str) -> (String, u16, PathBuf) {
    let (cert, key) = make_certificate(prefix, "nginx");
    let port = free_port();
    let documented = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(file);
    let server = std::fs::read_to_string(documented)
        .unwrap()
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("lodge.example.com", "localhost")
        .replace("/etc/ssl/lodge/fullchain.pem", &cert.display().to_string())
        .replace("/etc/ssl/lodge/privkey.pem", &key.display().to_string());
    (server, port, cert)
}

/// nginx with `server` (a `server { }` block listening on `port`), its files in `prefix`.
fn run_nginx(binary: &Path, server: &str, prefix: tempfile::TempDir, port: u16) -> Proxy {
    let p = prefix.path().display();
    let config = format!(
        "user root;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         {server}\n}}\n"
    );
    let path = prefix.path().join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(binary)
        .args([
            "-p",
            &p.to_string(),
            "-c",
            &path.display().to_string(),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx starts");
    listening(child, prefix, port, "nginx")
}

/// Caddy with `docs/caddy-forward-auth.Caddyfile`, on a free port, without TLS or its admin API.
fn start_caddy(binary: &Path, lodge: &str, upstream: u16) -> (Proxy, u16) {
    let documented =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/caddy-forward-auth.Caddyfile");
    let site = std::fs::read_to_string(documented).unwrap();
    let port = free_port();
    let site = site
        .replace(
            "service.example.com {",
            &format!("http://{SERVICE}:{port} {{\n\tbind 127.0.0.1"),
        )
        .replace("127.0.0.1:8978", lodge)
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"));
    let prefix = tempfile::tempdir().unwrap();
    let path = prefix.path().join("Caddyfile");
    std::fs::write(
        &path,
        format!("{{\n\tadmin off\n\tauto_https off\n}}\n{site}"),
    )
    .unwrap();
    let child = Command::new(binary)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", prefix.path())
        .env("XDG_DATA_HOME", prefix.path())
        .env("XDG_CONFIG_HOME", prefix.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("caddy starts");
    (listening(child, prefix, port, "caddy"), port)
}

/// Waits until the proxy `child` listens on `port`.
fn listening(child: Child, prefix: tempfile::TempDir, port: u16, name: &str) -> Proxy {
    let proxy = Proxy {
        child,
        _prefix: prefix,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{name} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy
}

/// The proxy's binary, or `None` (the test is skipped, except in CI) when it is not installed.
fn binary_or_skip(name: &str, required_by: &str) -> Option<PathBuf> {
    let binary = find_binary(name);
    if binary.is_none() {
        let why =
            format!("proxy test skipped: {name} is not installed (Debian: apt-get install {name})");
        if std::env::var_os(required_by).is_some() {
            panic!("{why}, and {required_by} is set");
        }
        eprintln!("{why}");
    }
    binary
}

#[tokio::test]
async fn nginx_lets_through_only_requests_with_a_lodge_token_or_session() {
    let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") else {
        return;
    };
    let app = spawn_app().await;
    app.add_user("vera", "vera's password", "admin").await;
    app.login_admin().await;
    let admin_token = app.new_token("admin's").await;
    let doomed = app.new_token("doomed").await;
    let expiring = app.create_token("expiring", "DAY").await["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let vera = app.new_client();
    vera.login("vera", "vera's password").await;
    let vera_token = vera.new_token("vera's").await;

    let (upstream, hits) = start_upstream();
    let lodge = app.url.trim_start_matches("http://").to_owned();
    let (_nginx, port) = start_nginx(&binary, &lodge, upstream);
    let through = |headers: Vec<(&'static str, String)>| {
        let client = app.client.clone();
        async move {
            let mut request = client.get(format!("http://127.0.0.1:{port}/some/page"));
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.text().await.unwrap().to_lowercase(),
            )
        }
    };
    let bearer = |t: &str| ("Authorization", format!("Bearer {t}"));

    // A valid token reaches the upstream with Lodge's headers.
    let (status, seen) = through(vec![bearer(&admin_token)]).await;
    assert_eq!(status, 200);
    assert!(seen.contains("x-user: admin\n"), "{seen}");
    assert!(seen.contains("x-team: admin|user\n"), "{seen}");

    // So does a session cookie from authLogin.
    let cookie = ("Cookie", format!("cb-session-id={}", app.cookie().unwrap()));
    let (status, seen) = through(vec![cookie]).await;
    assert_eq!(status, 200);
    assert!(seen.contains("x-user: admin\n"), "{seen}");

    // A token deleted a moment ago, one expired, a bad one, and none: 401, never upstream.
    let (status, _) = through(vec![bearer(&doomed)]).await;
    assert_eq!(status, 200, "valid before the delete");
    assert_ok(
        &app.gql(
            "mutation { tokenApiDelete(tokenName: \"doomed\") }",
            json!({}),
        )
        .await,
    );
    app.advance(SignedDuration::from_hours(25));
    app.login_admin().await;
    let before = hits.load(Ordering::SeqCst);
    let refused = [
        ("no credentials", vec![]),
        ("a bad token", vec![bearer("lodge_not_a_token")]),
        ("an expired token", vec![bearer(&expiring)]),
        ("a deleted token", vec![bearer(&doomed)]),
        (
            "a forged X-User alone",
            vec![("X-User", "admin".to_owned())],
        ),
        (
            "a forged X-User with a bad token",
            vec![("X-User", "admin".to_owned()), bearer("lodge_x")],
        ),
    ];
    for (case, headers) in refused {
        let (status, _) = through(headers).await;
        assert_eq!(status, 401, "{case}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "no refused request reached the upstream"
    );

    // A forged X-User beside another user's valid token: the upstream sees the token's user.
    let (status, seen) = through(vec![
        ("X-User", "admin".to_owned()),
        ("X-Team", "admin|user".to_owned()),
        bearer(&vera_token),
    ])
    .await;
    assert_eq!(status, 200);
    assert!(seen.contains("x-user: vera\n"), "{seen}");
    assert!(!seen.contains("x-user: admin"), "{seen}");
    assert_eq!(seen.matches("x-user:").count(), 1, "{seen}");
}

#[tokio::test]
async fn nginx_clears_forged_identity_headers_and_passes_on_a_throttled_answer() {
    if let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") {
        forged_headers_are_cleared_and_throttling_passed_on(|lodge, upstream| {
            start_nginx(&binary, lodge, upstream)
        })
        .await;
    }
}

#[tokio::test]
async fn caddy_clears_forged_identity_headers_and_passes_on_a_throttled_answer() {
    if let Some(binary) = binary_or_skip("caddy", "CI_REQUIRE_CADDY") {
        forged_headers_are_cleared_and_throttling_passed_on(|lodge, upstream| {
            start_caddy(&binary, lodge, upstream)
        })
        .await;
    }
}

/// Through the proxy `start` runs: a client's identity headers never reach the upstream, and a
/// throttled address gets 401 with `Retry-After`.
async fn forged_headers_are_cleared_and_throttling_passed_on(
    start: impl FnOnce(&str, u16) -> (Proxy, u16),
) {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![lodge::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.login_admin().await;
    let token = app.new_token("script").await;
    let (upstream, hits) = start_upstream();
    let lodge = app.url.trim_start_matches("http://").to_owned();
    let (_proxy, port) = start(&lodge, upstream);
    let client = service_client(port, None);
    let get = |token: String, extra: &[(&'static str, &'static str)]| {
        let mut request = client
            .get(format!("http://{SERVICE}:{port}/page"))
            .bearer_auth(token);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.send()
    };

    let forged = [
        ("X-Role", "admin"),
        ("X-First-name", "Forged"),
        ("X-Last-name", "Forged"),
        ("X-Full-name", "Forged Name"),
        ("X-Email", "forged@example.com"),
        ("X-Team", "admin"),
        ("X_User", "forged"),
        ("X_Full_name", "Forged Name"),
    ];
    let response = get(token.clone(), &forged).await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = response.text().await.unwrap().to_lowercase();
    assert!(
        !seen.contains("forged"),
        "no client identity header arrives: {seen}"
    );
    assert!(!seen.contains("x-role"), "{seen}");
    assert!(seen.contains("x-user: admin\n"), "{seen}");
    assert!(seen.contains("x-team: admin|user\n"), "{seen}");
    assert!(seen.contains("x-full-name: admin\n"), "{seen}");

    for _ in 0..30 {
        let response = get("lodge_wrong".into(), &[]).await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let before = hits.load(Ordering::SeqCst);
    let throttled = get(token, &[]).await.unwrap();
    assert_eq!(
        throttled.status(),
        401,
        "passed on by the proxy, not turned into a 500"
    );
    let retry_after = throttled
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap());
    assert_eq!(retry_after, Some("2"), "one failure drains every 2 s");
    assert_eq!(hits.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn nginx_holds_scoped_tokens_to_their_methods_services_and_addresses() {
    if let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") {
        for trusted in [true, false] {
            scoped_tokens_hold_through(
                trusted,
                documented_headers("## nginx (tested)"),
                |lodge, upstream| start_nginx(&binary, lodge, upstream),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn caddy_holds_scoped_tokens_to_their_methods_services_and_addresses() {
    if let Some(binary) = binary_or_skip("caddy", "CI_REQUIRE_CADDY") {
        for trusted in [true, false] {
            scoped_tokens_hold_through(
                trusted,
                documented_headers("## Caddy (tested)"),
                |lodge, upstream| start_caddy(&binary, lodge, upstream),
            )
            .await;
        }
    }
}

/// Through the proxy `start` runs, with or without the proxy in `server.trusted_proxies`: a
/// `read_proxy` token reaches the upstream with `GET` only, a token limited to a path prefix
/// reaches that prefix only, and for a client at 127.0.0.2 (the proxy reaches Lodge from
/// 127.0.0.1) a token bound to 127.0.0.2 passes only when the proxy is trusted, one bound to
/// 127.0.0.1 only when it is not, and a forwarded address the client made up never counts. A
/// refusal is a 403 that never reaches the upstream.
async fn scoped_tokens_hold_through(
    trusted: bool,
    set: RequestHeaders,
    start: impl FnOnce(&str, u16) -> (Proxy, u16),
) {
    let app = spawn_app_with(|s| {
        s.forward_auth.request_headers = set;
        if trusted {
            s.server.trusted_proxies = vec![lodge::config::IpNet::parse("127.0.0.1").unwrap()];
        }
    })
    .await;
    app.login_admin().await;
    let create = |name: &'static str, scopes: Value, services: Value, from: Value| {
        let app = &app;
        async move {
            let created = app
                .gql(
                    "mutation($n: String!, $s: [String!], $v: [String!], $f: [String!]) {
                       tokenApiCreate(tokenName: $n, scopes: $s, services: $v, allowFrom: $f) { token }
                     }",
                    json!({ "n": name, "s": scopes, "v": services, "f": from }),
                )
                .await;
            created["data"]["tokenApiCreate"]["token"]
                .as_str()
                .unwrap_or_else(|| panic!("{created}"))
                .to_owned()
        }
    };
    let reader = create("reader", json!(["read_proxy"]), json!([]), json!([])).await;
    let one_path = create(
        "one-path",
        json!(["proxy"]),
        json!(["service.example.com/allowed/"]),
        json!([]),
    )
    .await;
    let client_bound = create("client", json!(["proxy"]), json!([]), json!(["127.0.0.2"])).await;
    let proxy_bound = create("proxy", json!(["proxy"]), json!([]), json!(["127.0.0.1"])).await;
    let made_up = create(
        "made-up",
        json!(["proxy"]),
        json!([]),
        json!(["10.0.0.0/8"]),
    )
    .await;
    let (upstream, hits) = start_upstream();
    let lodge = app.url.trim_start_matches("http://").to_owned();
    let (_proxy, port) = start(&lodge, upstream);
    // The client connects from 127.0.0.2, the proxy reaches Lodge from 127.0.0.1.
    let client = service_client(port, Some("127.0.0.2"));
    let send =
        |method: reqwest::Method, path: &'static str, token: &str, from: Option<&'static str>| {
            let mut request = client
                .request(method, format!("http://{SERVICE}:{port}{path}"))
                .bearer_auth(token);
            if let Some(ip) = from {
                request = request.header("X-Forwarded-For", ip);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap().to_lowercase())
            }
        };
    use reqwest::Method;

    let (status, seen) = send(Method::GET, "/page", &reader, None).await;
    assert_eq!(status, 200, "a reading token reads");
    assert!(
        seen.contains("x-lodge-token: reader\n"),
        "the upstream learns the token: {seen}"
    );
    let before = hits.load(Ordering::SeqCst);
    let (status, _) = send(Method::POST, "/page", &reader, None).await;
    assert_eq!(status, 403, "a reading token does not write");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "the POST never reached the upstream"
    );

    assert_eq!(
        send(Method::GET, "/allowed/x", &one_path, None).await.0,
        200
    );
    assert_eq!(send(Method::POST, "/allowed", &one_path, None).await.0, 200);
    assert_eq!(send(Method::GET, "/allowedx", &one_path, None).await.0, 403);
    assert_eq!(send(Method::GET, "/other", &one_path, None).await.0, 403);

    let (as_client, as_proxy) = if trusted { (200, 403) } else { (403, 200) };
    let (status, _) = send(Method::GET, "/page", &client_bound, None).await;
    assert_eq!(
        status, as_client,
        "bound to the client, trusted proxy: {trusted}"
    );
    let (status, _) = send(Method::GET, "/page", &proxy_bound, None).await;
    assert_eq!(
        status, as_proxy,
        "bound to the proxy, trusted proxy: {trusted}"
    );
    let (status, _) = send(Method::GET, "/page", &made_up, Some("10.1.2.3")).await;
    assert_eq!(status, 403, "a forwarded address the client made up");
}

#[tokio::test]
async fn through_nginx_forged_request_headers_and_hosts_cannot_widen_a_token() {
    if let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") {
        forged_requests_cannot_widen_a_token(
            documented_headers("## nginx (tested)"),
            true,
            |lodge, upstream| start_nginx(&binary, lodge, upstream),
        )
        .await;
    }
}

#[tokio::test]
async fn through_caddy_forged_request_headers_and_hosts_cannot_widen_a_token() {
    if let Some(binary) = binary_or_skip("caddy", "CI_REQUIRE_CADDY") {
        forged_requests_cannot_widen_a_token(
            documented_headers("## Caddy (tested)"),
            false,
            |lodge, upstream| start_caddy(&binary, lodge, upstream),
        )
        .await;
    }
}

/// Through the proxy `start` runs, with Lodge reading `set`: a token bound to Grafana, sent to
/// the documented service with a forged `X-Forwarded-Host`, `X-Forwarded-Uri`, `X-Original-URL`
/// or `Host`, and a `read_proxy` token sent with `POST` and forged method headers, are refused
/// without reaching the upstream, and each refusal is in the audit log. `default_server`: the
/// proxy answers a request for another host with the documented block (nginx's only server is
/// its default), so Lodge is asked and must refuse it.
async fn forged_requests_cannot_widen_a_token(
    set: RequestHeaders,
    default_server: bool,
    start: impl FnOnce(&str, u16) -> (Proxy, u16),
) {
    let app = spawn_app_with(|s| {
        s.forward_auth.request_headers = set;
        s.server.trusted_proxies = vec![lodge::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.login_admin().await;
    let create = |name: &'static str, scopes: Value, services: Value| {
        let app = &app;
        async move {
            let created = app
                .gql(
                    "mutation($n: String!, $s: [String!], $v: [String!]) {
                       tokenApiCreate(tokenName: $n, scopes: $s, services: $v) { token }
                     }",
                    json!({ "n": name, "s": scopes, "v": services }),
                )
                .await;
            created["data"]["tokenApiCreate"]["token"]
                .as_str()
                .unwrap_or_else(|| panic!("{created}"))
                .to_owned()
        }
    };
    let grafana = create("grafana", json!(["proxy"]), json!(["grafana.example.com"])).await;
    let reader = create("reader", json!(["read_proxy"]), json!([])).await;
    let service = create("service", json!(["proxy"]), json!([SERVICE])).await;
    let (upstream, hits) = start_upstream();
    let lodge = app.url.trim_start_matches("http://").to_owned();
    let (_proxy, port) = start(&lodge, upstream);
    let client = service_client(port, None);
    let send = |method: reqwest::Method, token: &str, headers: &[(&'static str, &'static str)]| {
        let mut request = client
            .request(method, format!("http://{SERVICE}:{port}/d/home"))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    use reqwest::Method;

    assert_eq!(send(Method::GET, &service, &[]).await, 200, "the control");
    assert_eq!(send(Method::GET, &reader, &[]).await, 200, "the control");
    let before = hits.load(Ordering::SeqCst);
    let forged_host: &[(&str, &[(&'static str, &'static str)])] = &[
        (
            "X-Forwarded-Host",
            &[("X-Forwarded-Host", "grafana.example.com")],
        ),
        (
            "X-Forwarded-Host and -Uri",
            &[
                ("X-Forwarded-Host", "grafana.example.com"),
                ("X-Forwarded-Uri", "/d/home"),
            ],
        ),
        (
            "X-Original-URL",
            &[("X-Original-URL", "http://grafana.example.com/d/home")],
        ),
    ];
    // The same refusal is recorded once a minute: a minute between them, so each has its row.
    let minute = SignedDuration::from_secs(61);
    for (case, headers) in forged_host {
        assert_eq!(send(Method::GET, &grafana, headers).await, 403, "{case}");
        app.advance(minute);
    }
    let forged_method: &[(&'static str, &'static str)] =
        &[("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET")];
    assert_eq!(
        send(Method::POST, &reader, forged_method).await,
        403,
        "a read_proxy token POSTing with forged method headers"
    );

    // A forged Host: the request reaches the proxy at its address with another name.
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/d/home"))
        .header("Host", "grafana.example.com")
        .bearer_auth(&grafana)
        .send()
        .await
        .unwrap();
    if default_server {
        assert_eq!(
            response.status(),
            403,
            "a forged Host on the default server"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "no forged request reached the upstream"
    );

    let events = app
        .gql(
            "{ auditLog(filter: {kind: \"token.denied\"}) { tokenName detail } }",
            json!({}),
        )
        .await;
    let events = events["data"]["auditLog"].as_array().unwrap().clone();
    let refused = |token: &str| {
        events
            .iter()
            .filter(|e| e["tokenName"] == token)
            .map(|e| e["detail"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let grafana_refusals = refused("grafana");
    assert!(
        grafana_refusals
            .iter()
            .any(|d| d.contains("not allowed for service.example.com")),
        "the refusal names the host the proxy asked for: {events:?}"
    );
    let reader_refusals = refused("reader");
    assert!(
        reader_refusals.iter().any(|d| d.contains("not POST")),
        "{events:?}"
    );
    let expected = forged_host.len() + usize::from(default_server);
    assert_eq!(grafana_refusals.len(), expected, "{events:?}");
}

#[tokio::test]
async fn through_nginx_the_upstream_never_sees_the_callers_lodge_credentials() {
    if let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") {
        credentials_stay_at_the_gate(
            documented_headers("## nginx (tested)"),
            |lodge, upstream| start_nginx(&binary, lodge, upstream),
        )
        .await;
    }
}

#[tokio::test]
async fn through_caddy_the_upstream_never_sees_the_callers_lodge_credentials() {
    if let Some(binary) = binary_or_skip("caddy", "CI_REQUIRE_CADDY") {
        credentials_stay_at_the_gate(
            documented_headers("## Caddy (tested)"),
            |lodge, upstream| start_caddy(&binary, lodge, upstream),
        )
        .await;
    }
}

/// Through the proxy `start` runs: a request that passed with a Lodge token or a Lodge session
/// reaches the upstream without the `Authorization` header that carried the token and without
/// the `cb-session-id` cookie, while the service's own cookies and another `Authorization`
/// pass.
async fn credentials_stay_at_the_gate(
    set: RequestHeaders,
    start: impl FnOnce(&str, u16) -> (Proxy, u16),
) {
    let app = spawn_app_with(|s| s.forward_auth.request_headers = set).await;
    app.login_admin().await;
    let token = app.new_token("script").await;
    let session = app.cookie().unwrap();
    let (upstream, _) = start_upstream();
    let lodge = app.url.trim_start_matches("http://").to_owned();
    let (_proxy, port) = start(&lodge, upstream);
    let client = service_client(port, None);
    let through = |headers: Vec<(&'static str, String)>| {
        let mut request = client.get(format!("http://{SERVICE}:{port}/page"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };

    let (status, seen) = through(vec![
        ("Authorization", format!("Bearer {token}")),
        ("Cookie", "grafana_session=g1; theme=dark".into()),
    ])
    .await;
    assert_eq!(status, 200);
    assert!(
        !seen.contains(&token),
        "the token stays at the gate: {seen}"
    );
    assert!(!seen.to_lowercase().contains("authorization"), "{seen}");
    assert!(seen.contains("grafana_session=g1; theme=dark"), "{seen}");

    let cookies = [
        format!("cb-session-id={session}"),
        format!("grafana_session=g1; cb-session-id={session}"),
        format!("cb-session-id={session}; grafana_session=g1"),
        format!("a=1; cb-session-id={session}; grafana_session=g1"),
    ];
    for cookie in cookies {
        let (status, seen) = through(vec![
            ("Cookie", cookie.clone()),
            ("Authorization", "Basic c2VydmljZTpvd24=".into()),
        ])
        .await;
        assert_eq!(status, 200, "{cookie}");
        assert!(
            !seen.contains(&session),
            "{cookie}: the session stays: {seen}"
        );
        assert!(!seen.contains("cb-session-id"), "{cookie}: {seen}");
        assert!(
            seen.contains("Basic c2VydmljZTpvd24="),
            "{cookie}: another Authorization passes: {seen}"
        );
        if cookie.contains("grafana_session") {
            assert!(seen.contains("grafana_session=g1"), "{cookie}: {seen}");
        }
    }
}

/// The text of the first ```LANG block after `heading` in docs/forward-auth.md.
fn documented_block(heading: &str, lang: &str) -> String {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/forward-auth.md"))
            .unwrap();
    let section = &guide[guide.find(heading).unwrap_or_else(|| panic!("{heading}"))..];
    let start = section.find(&format!("```{lang}\n")).expect("a block") + lang.len() + 4;
    let length = section[start..].find("```").expect("its end");
    section[start..start + length].to_owned()
}

/// The Lodge settings of the first ```toml block after `heading` in docs/forward-auth.md, with
/// the `(from, to)` replacements made in its text.
fn documented_settings(heading: &str, replace: &[(&str, &str)]) -> lodge::config::Settings {
    use figment::providers::{Format as _, Serialized, Toml};
    let text = replace
        .iter()
        .fold(documented_block(heading, "toml"), |text, (from, to)| {
            text.replace(from, to)
        });
    figment::Figment::new()
        .merge(Serialized::defaults(lodge::config::Settings::default()))
        .merge(Toml::string(&text))
        .extract()
        .unwrap_or_else(|e| panic!("the settings under {heading}: {e}"))
}

/// The `forward_auth.request_headers` docs/forward-auth.md gives for the proxy of `heading`.
fn documented_headers(heading: &str) -> RequestHeaders {
    documented_settings(heading, &[])
        .forward_auth
        .request_headers
}

/// nginx asking Lodge over https (`docs/nginx-forward-auth-tls.conf`), with the certificate made
/// by the commands of docs/forward-auth.md: a token passes and a scoped one is held to its
/// service; the same nginx checking another name refuses to ask Lodge at all.
#[tokio::test]
async fn nginx_asks_lodge_over_https_and_checks_its_certificates_name() {
    let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") else {
        return;
    };
    let heading = "### Lodge over https, behind nginx";
    let etc = tempfile::tempdir().unwrap();
    let folder = etc.path().join("lodge").display().to_string();
    // As written, in a folder of the test's own and for the test's own user.
    let script = documented_block(heading, "sh")
        .replace("/etc/lodge", &folder)
        .replace("chown lodge ", "chown root ");
    let made = Command::new("sh").args(["-ec", &script]).output().unwrap();
    assert!(made.status.success(), "{made:?}");
    let documented = documented_settings(heading, &[("/etc/lodge", &folder)]);
    assert_eq!(
        documented.forward_auth.request_headers,
        RequestHeaders::Original
    );

    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("script").await;
    let created = app
        .gql(
            "mutation { tokenApiCreate(tokenName: \"grafana\", scopes: [\"proxy\"],
               services: [\"grafana.example.com\"]) { token } }",
            json!({}),
        )
        .await;
    let grafana = created["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let over_tls = app
        .restarted(|s| {
            s.server.tls_cert = documented.server.tls_cert.clone();
            s.server.tls_key = documented.server.tls_key.clone();
            s.server.trusted_proxies = documented.server.trusted_proxies.clone();
            s.forward_auth = documented.forward_auth.clone();
        })
        .await;
    assert!(over_tls.url.starts_with("https://"), "{}", over_tls.url);

    let maps = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx-forward-auth.conf"),
    )
    .unwrap();
    let maps = &maps[..maps.find("server {").unwrap()];
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx-forward-auth-tls.conf"),
    )
    .unwrap();
    let (upstream, hits) = start_upstream();
    let nginx = |name: &str| {
        let port = free_port();
        let server = conf
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace(
                "127.0.0.1:8978",
                over_tls.url.trim_start_matches("https://"),
            )
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"))
            .replace("/etc/lodge", &folder)
            .replace(
                "proxy_ssl_name lodge.internal;",
                &format!("proxy_ssl_name {name};"),
            );
        let prefix = tempfile::tempdir().unwrap();
        (
            run_nginx(&binary, &format!("{maps}{server}"), prefix, port),
            port,
        )
    };
    let (_nginx, port) = nginx("lodge.internal");
    let client = service_client(port, None);
    let get = |token: &str| {
        let request = client
            .get(format!("http://{SERVICE}:{port}/page"))
            .bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap().to_lowercase())
        }
    };
    let (status, seen) = get(&token).await;
    assert_eq!(status, 200, "{seen}");
    assert!(seen.contains("x-user: admin\n"), "{seen}");
    assert!(!seen.contains("authorization"), "{seen}");
    assert_eq!(get(&grafana).await.0, 403, "held to its service");
    assert_eq!(get("lodge_wrong").await.0, 401);

    let (_other, port) = nginx("other.internal");
    let before = hits.load(Ordering::SeqCst);
    let response = service_client(port, None)
        .get(format!("http://{SERVICE}:{port}/page"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        500,
        "a certificate for another name: nginx does not ask"
    );
    assert_eq!(hits.load(Ordering::SeqCst), before);
}

/// Lodge behind nginx with TLS (`docs/nginx-lodge.conf`): with nginx in
/// `server.trusted_proxies` a browser's login through https passes the same-origin check and
/// gets a `Secure` cookie with no other setting; the same headers from a client that is not a
/// trusted proxy change nothing.
#[tokio::test]
async fn behind_nginx_with_tls_the_origin_and_the_secure_cookie_follow_the_proxy() {
    let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") else {
        return;
    };
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec![lodge::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    let prefix = tempfile::tempdir().unwrap();
    let (server, port, cert) = documented_https(prefix.path(), "nginx-lodge.conf");
    let server = server.replace("127.0.0.1:8978", app.url.trim_start_matches("http://"));
    let _nginx = run_nginx(&binary, &server, prefix, port);

    let login = json!({
        "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
        "variables": { "c": { "user": ADMIN, "password": ADMIN_PASSWORD } }
    });
    let origin = format!("https://localhost:{port}");
    let url = format!("{origin}/api/gql");
    let answer = {
        let (url, cert, login, origin) = (url.clone(), cert.clone(), login.clone(), origin.clone());
        tokio::task::spawn_blocking(move || {
            https(
                &url,
                &cert,
                &login,
                &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
            )
        })
        .await
        .unwrap()
    };
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["data"]["authLogin"]["authStatus"],
        "SUCCESS",
        "{}",
        answer.body
    );
    let cookie = answer.header("set-cookie").expect("a session cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(answer.header("strict-transport-security").is_some());

    let foreign = {
        let (url, cert, login) = (url.clone(), cert.clone(), login.clone());
        tokio::task::spawn_blocking(move || {
            https(&url, &cert, &login, &[("Origin", "https://evil.example")])
        })
        .await
        .unwrap()
    };
    assert_eq!(foreign.status, 403, "{}", foreign.body);

    // Straight to Lodge from 127.0.0.2, which is no proxy of Lodge's: its forwarded headers
    // are its own claims.
    let direct = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let forged = direct
        .post(format!("{}/api/gql", app.url))
        .header("Origin", "https://lodge.example.com")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "lodge.example.com")
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a forged forwarded origin is refused");
    let plain = direct
        .post(format!("{}/api/gql", app.url))
        .header("X-Forwarded-Proto", "https")
        .json(&login)
        .send()
        .await
        .unwrap();
    let cookie = session_set_cookie(&plain).expect("a session cookie");
    assert!(
        !cookie.contains("Secure"),
        "only a trusted proxy's https counts: {cookie}"
    );
}

#[test]
fn the_docs_show_the_tested_proxy_configurations_verbatim() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let guide = std::fs::read_to_string(docs.join("forward-auth.md")).unwrap();
    for file in [
        "nginx-forward-auth.conf",
        "nginx-forward-auth-tls.conf",
        "caddy-forward-auth.Caddyfile",
    ] {
        let conf = std::fs::read_to_string(docs.join(file)).unwrap();
        assert!(
            guide.contains(&conf),
            "docs/forward-auth.md must show docs/{file}"
        );
    }
    let readme = std::fs::read_to_string(docs.join("../README.md")).unwrap();
    let conf = std::fs::read_to_string(docs.join("nginx-lodge.conf")).unwrap();
    assert!(
        readme.contains(&conf),
        "README.md must show docs/nginx-lodge.conf"
    );
    let scaling = std::fs::read_to_string(docs.join("scaling.md")).unwrap();
    let conf = std::fs::read_to_string(docs.join("nginx-nodes.conf")).unwrap();
    assert!(
        scaling.contains(&conf),
        "docs/scaling.md must show docs/nginx-nodes.conf"
    );
}

/// Two `lodge` nodes on one PostgreSQL database behind nginx (`docs/nginx-nodes.conf`): a
/// login and a token work through it whichever node answers, both nodes answer, and with one
/// node killed the other answers everything (on SQLite, which one server serves, it returns).
#[test]
fn two_nodes_behind_nginx_serve_as_one_and_either_may_die() {
    if !on_postgres() {
        return;
    }
    let Some(binary) = binary_or_skip("nginx", "CI_REQUIRE_NGINX") else {
        return;
    };
    let url = crate::postgres::cluster().unwrap().fresh_url();
    let env = [
        ("LODGE_DATABASE__URL", url.as_str()),
        ("LODGE_LOG__REQUESTS", "true"),
    ];
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let (server, address, _) = crate::binary::start_with(dir.path(), &env);
            (server, address)
        })
        .collect();
    let prefix = tempfile::tempdir().unwrap();
    let (server, port, cert) = documented_https(prefix.path(), "nginx-nodes.conf");
    let server = server
        .replace("10.0.0.11:8978", nodes[0].1.trim_start_matches("http://"))
        .replace("10.0.0.12:8978", nodes[1].1.trim_start_matches("http://"));
    let _nginx = run_nginx(&binary, &server, prefix, port);
    let gql = format!("https://localhost:{port}/api/gql");
    let ask = |body: Value, cookie: Option<&str>| {
        let cookie = cookie.map(|c| format!("cb-session-id={c}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        https(&gql, &cert, &body, &headers)
    };

    let login = ask(
        json!({
            "query": "query($c: Object) { authLogin(provider: \"local\", credentials: $c) { authStatus } }",
            "variables": { "c": { "user": "admin", "password": "binary admin password" } }
        }),
        None,
    );
    assert_eq!(
        login.json()["data"]["authLogin"]["authStatus"],
        "SUCCESS",
        "{}",
        login.body
    );
    let cookie = login.header("set-cookie").unwrap()["cb-session-id=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let created = ask(
        json!({ "query": "mutation { tokenApiCreate(tokenName: \"ci\", lifetime: DAY) { token } }" }),
        Some(&cookie),
    );
    let token = created.json()["data"]["tokenApiCreate"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", created.body))
        .to_owned();
    let token_login = json!({
        "query": "query($c: Object) { authLogin(provider: \"token\", credentials: $c) { authStatus } }",
        "variables": { "c": { "token": token } }
    });
    let list = json!({ "query": "{ tokenApiList { tokenName } }" });
    // Ten token logins and ten session queries, through whichever node nginx picks.
    let ten_rounds = || {
        for _ in 0..10 {
            let answer = ask(token_login.clone(), None);
            assert_eq!(
                answer.json()["data"]["authLogin"]["authStatus"],
                "SUCCESS",
                "{}",
                answer.body
            );
            assert_ok(&ask(list.clone(), Some(&cookie)).json());
        }
    };
    ten_rounds();
    for dir in &dirs {
        let log = std::fs::read_to_string(dir.path().join("lodge.log")).unwrap();
        assert!(log.contains("/api/gql"), "each node answered some: {log}");
    }

    // One node dies: everything goes to the other.
    let (mut killed, _) = nodes.remove(0);
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    ten_rounds();
}
