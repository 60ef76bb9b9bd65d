//! Notifications by webhook (`[notify]`) against a real HTTP receiver: signed, each event once,
//! nothing lost while the receiver fails or Lodge is killed, no request held up by a receiver
//! that never answers.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use jiff::SignedDuration;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::helpers::*;

pub const SECRET: &str = "webhook signing key";

/// How the receiver answers the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 503 for this many requests, then accept.
    FailFirst(usize),
    /// Reads the request and never answers, holding the connection.
    Hang,
}

/// One request as the receiver read it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub json: Value,
    /// Whether it was answered 2xx.
    pub accepted: bool,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `X-Lodge-Signature` is the HMAC-SHA256 of the body with `key`.
    pub fn signed_with(&self, key: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(&self.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.header("X-Lodge-Signature") == Some(&format!("sha256={hex}"))
    }
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    seen: Vec<Delivery>,
    failed: usize,
    held: Vec<TcpStream>,
}

/// A webhook receiver on 127.0.0.1: plain HTTP/1.1, one request a connection.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), mode)
    }

    pub fn start_on(listener: TcpListener, mode: Mode) -> Self {
        let url = format!("http://{}/hooks/lodge", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            mode: Some(mode),
            ..State::default()
        }));
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, serving.clone()));
            }
        });
        Self { url, state }
    }

    pub fn seen(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The deliveries answered 2xx.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.seen().into_iter().filter(|d| d.accepted).collect()
    }

    /// Closes the connections held unanswered.
    pub fn release(&self) {
        self.state.lock().unwrap().held.clear();
    }

    /// Waits (up to 30 s) until `done` holds for the accepted deliveries.
    /// Waits for the first accepted delivery.
    pub async fn wait_for_event_text(&self) -> Delivery {
        self.wait_for("a delivery", |all| !all.is_empty()).await[0].clone()
    }

    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "waited 30 s for {what}; seen: {:?}",
                self.seen().iter().map(|d| &d.json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for `count` accepted deliveries of `event`.
    pub async fn wait_for_event(&self, event: &str, count: usize) -> Vec<Delivery> {
        let of = |all: &[Delivery]| {
            all.iter()
                .filter(|d| d.json["event"] == event)
                .cloned()
                .collect::<Vec<_>>()
        };
        let all = self
            .wait_for(&format!("{count} {event}"), |all| of(all).len() >= count)
            .await;
        of(&all)
    }
}

async fn answer(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head_end, length) = loop {
        let Ok(n) = stream.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        read.extend_from_slice(&buffer[..n]);
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end]).to_string();
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while read.len() < head_end + length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => read.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&read[..head_end]).to_string();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = read[head_end..head_end + length].to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = {
        let mut state = state.lock().unwrap();
        let status = match state.mode.unwrap_or(Mode::Accept) {
            Mode::Accept => Some(200),
            Mode::FailFirst(n) if state.failed < n => {
                state.failed += 1;
                Some(503)
            }
            Mode::FailFirst(_) => Some(204),
            Mode::Hang => None,
        };
        state.seen.push(Delivery {
            headers,
            body,
            json,
            accepted: status.is_some_and(|s| s < 300),
        });
        if status.is_none() {
            state.held.push(stream);
            return;
        }
        status
    };
    let reply = match status {
        Some(200) => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        Some(204) => "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
        _ => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    };
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn app_notifying(
    receiver: &Receiver,
    configure: impl FnOnce(&mut lodge::Settings),
) -> TestApp {
    let url = receiver.url.clone();
    spawn_app_with(move |s| {
        s.notify.webhook_url = lodge::config::WebhookUrl::parse(&url).unwrap();
        s.notify.webhook_secret = SECRET.into();
        s.limits.account_failures = 3;
        configure(s);
    })
    .await
}

async fn rotate(app: &TestApp, name: &str) -> Value {
    let rotated = app
        .gql(
            "mutation($n: String!) { tokenApiRotate(tokenName: $n, graceSeconds: 60) { token } }",
            json!({ "n": name }),
        )
        .await;
    assert_ok(&rotated);
    rotated
}

fn secret(rotated: &Value) -> String {
    rotated["data"]["tokenApiRotate"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn each_event_arrives_once_signed_and_without_a_secret() {
    let receiver = Receiver::start(Mode::Accept).await;
    let app = app_notifying(&receiver, |_| {}).await;
    app.login_admin().await;
    app.add_user("carol", "carol's password", "user").await;
    let old = app.new_token("ci").await;
    let leaked = app.new_token("leaked").await;

    let new = secret(&rotate(&app, "ci").await);
    let rotated = &receiver.wait_for_event("token.rotate", 1).await[0];
    assert_eq!(rotated.json["userId"], "admin");
    assert_eq!(rotated.json["tokenName"], "ci");
    assert_eq!(
        rotated.json["detail"],
        "the previous secret works for 1m more by admin"
    );

    let reported = app
        .client
        .post(format!("{}/api/tokens/revoke", app.url))
        .json(&json!({ "tokens": [leaked] }))
        .send()
        .await
        .unwrap();
    assert_eq!(reported.status(), 202);
    let leak = &receiver.wait_for_event("token.leaked", 1).await[0];
    assert_eq!(leak.json["tokenName"], "leaked");
    assert_eq!(
        leak.json["detail"],
        "reported as leaked from 127.0.0.1: revoked"
    );

    for _ in 0..3 {
        let failed = app
            .new_client()
            .login("carol", "not carol's password")
            .await;
        assert_eq!(error_code(&failed), "authFailed", "{failed}");
    }
    let locked = &receiver.wait_for_event("user.locked", 1).await[0];
    assert_eq!(locked.json["userId"], "carol");
    assert!(locked.json["tokenName"].is_null());
    let audit = app
        .gql(
            "{ auditLog(filter: { kind: \"user.locked\" }) { userId detail } }",
            json!({}),
        )
        .await;
    assert_eq!(audit["data"]["auditLog"][0]["userId"], "carol", "{audit}");

    // The token enters tokens.warn_before (7 days), and later has a day left: one warning
    // each, whoever looks and however often.
    let listed = app
        .gql("{ tokenApiList { tokenName expireTime } }", json!({}))
        .await;
    let expires: jiff::Timestamp = listed["data"]["tokenApiList"][0]["expireTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let week_before = expires - SignedDuration::from_hours(7 * 24 - 1);
    app.advance(week_before.duration_since(app.clock.now()));
    app.auth.notices().warn_of_expiring_tokens().await.unwrap();
    app.auth.notices().warn_of_expiring_tokens().await.unwrap();
    let first = receiver.wait_for_event("token.expiring", 1).await;
    assert_eq!(first[0].json["tokenName"], "ci");
    assert!(
        first[0].json["detail"]
            .as_str()
            .unwrap()
            .starts_with("expires in 6 days ("),
        "{}",
        first[0].json
    );
    app.advance(SignedDuration::from_hours(6 * 24));
    app.auth.notices().warn_of_expiring_tokens().await.unwrap();
    app.auth.notices().warn_of_expiring_tokens().await.unwrap();
    let last = receiver.wait_for_event("token.expiring", 2).await;
    assert!(
        last[1].json["detail"]
            .as_str()
            .unwrap()
            .starts_with("expires in 23 hours ("),
        "{}",
        last[1].json
    );
    app.advance(SignedDuration::from_hours(12));
    app.auth.notices().warn_of_expiring_tokens().await.unwrap();
    // Deliveries go out in order: once this one is in, anything queued before it is too.
    app.login_admin().await;
    rotate(&app, "ci").await;
    receiver.wait_for_event("token.rotate", 2).await;

    let all = receiver.seen();
    let events: Vec<_> = all
        .iter()
        .map(|d| d.json["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "token.rotate",
            "token.leaked",
            "user.locked",
            "token.expiring",
            "token.expiring",
            "token.rotate"
        ],
        "each event once, in order"
    );
    let ids: BTreeSet<_> = all.iter().map(|d| d.json["id"].to_string()).collect();
    assert_eq!(ids.len(), all.len(), "unique ids");
    for delivery in &all {
        assert!(
            delivery.signed_with(SECRET),
            "signed: {:?}",
            delivery.headers
        );
        assert!(!delivery.signed_with("another key"));
        assert_eq!(delivery.header("Content-Type"), Some("application/json"));
        assert_eq!(
            delivery.header("X-Lodge-Event"),
            delivery.json["event"].as_str()
        );
        assert_eq!(
            delivery.header("X-Lodge-Delivery"),
            delivery.json["id"].as_str()
        );
        let fields: BTreeSet<_> = delivery.json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            fields,
            ["detail", "event", "id", "time", "tokenName", "userId"]
                .map(String::from)
                .into()
        );
        let text = String::from_utf8_lossy(&delivery.body);
        for secret in [&old, &new, &leaked] {
            assert!(!text.contains(&secret[..20]), "no secret in {text}");
        }
        assert!(!text.contains("not carol"), "no password tried in {text}");
    }
}

#[tokio::test]
async fn a_report_of_a_rotated_tokens_previous_secret_revokes_both_and_is_announced() {
    let receiver = Receiver::start(Mode::Accept).await;
    let app = app_notifying(&receiver, |_| {}).await;
    app.login_admin().await;
    let old = app.new_token("ci").await;
    let new = secret(&rotate(&app, "ci").await);
    let kept = app.new_token("kept").await;
    assert_ok(&app.login_with_token(&old).await);

    let reported = app
        .new_client()
        .client
        .post(format!("{}/api/tokens/revoke", app.url))
        .json(&json!({ "tokens": [old] }))
        .send()
        .await
        .unwrap();
    assert_eq!(reported.status(), 202);
    for (which, secret) in [("the previous secret", &old), ("the current secret", &new)] {
        let refused = app
            .gql_bearer(secret, "{ tokenApiList { tokenName } }", json!({}))
            .await;
        assert_eq!(error_code(&refused), "authFailed", "{which}: {refused}");
    }
    let other = app
        .gql_bearer(&kept, "{ activeUser { userId } }", json!({}))
        .await;
    assert_eq!(other["data"]["activeUser"]["userId"], "admin", "{other}");
    let leak = &receiver.wait_for_event("token.leaked", 1).await[0];
    assert_eq!(leak.json["tokenName"], "ci");
    app.login_admin().await;
    let audit = app
        .gql(
            "{ auditLog(filter: { kind: \"token.leaked\" }) { tokenName detail } }",
            json!({}),
        )
        .await;
    assert_eq!(
        audit["data"]["auditLog"],
        json!([{ "tokenName": "ci", "detail": "reported as leaked: revoked, 1 sessions ended" }])
    );

    // After its grace the previous secret opens nothing, and a report of it revokes nothing.
    let again = app.new_token("again").await;
    rotate(&app, "again").await;
    app.advance(SignedDuration::from_secs(61));
    app.login_admin().await;
    app.client
        .post(format!("{}/api/tokens/revoke", app.url))
        .json(&json!({ "tokens": [again] }))
        .send()
        .await
        .unwrap();
    let listed = app.gql("{ tokenApiList { tokenName } }", json!({})).await;
    let names: Vec<_> = listed["data"]["tokenApiList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tokenName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"again"), "{listed}");
}

#[tokio::test]
async fn a_lock_of_a_name_no_account_has_is_not_posted_into_the_chat() {
    let receiver = Receiver::start(Mode::Accept).await;
    let app = app_notifying(&receiver, |s| {
        s.notify.format = lodge::config::NotifyFormat::Slack;
    })
    .await;
    app.add_user("carol", "carol's password", "user").await;
    let made_up = "@channel *urgent* [reset here](https://evil.example)";
    for _ in 0..3 {
        app.new_client().login(made_up, "wrong").await;
    }
    let answer = app.new_client().login(made_up, "wrong").await;
    assert_eq!(
        error_code(&answer),
        "tooManyRequests",
        "locked like any name"
    );
    for _ in 0..3 {
        app.new_client().login("carol", "wrong").await;
    }
    let delivered = receiver.wait_for_event_text().await;
    let text = delivered.json["text"].as_str().unwrap();
    assert!(text.contains("user `carol`"), "{text}");
    // Deliveries go out in order: the made-up name's lock would have come first.
    assert_eq!(receiver.seen().len(), 1, "{:?}", receiver.seen());
    app.login_admin().await;
    let audit = app
        .gql(
            "{ auditLog(filter: { kind: \"user.locked\" }) { userId } }",
            json!({}),
        )
        .await;
    assert_eq!(
        audit["data"]["auditLog"].as_array().unwrap().len(),
        2,
        "both are in the audit log: {audit}"
    );
}

#[tokio::test]
async fn slack_format_sends_one_text_and_only_the_chosen_events() {
    let receiver = Receiver::start(Mode::Accept).await;
    let app = app_notifying(&receiver, |s| {
        s.notify.format = lodge::config::NotifyFormat::Slack;
        s.notify.webhook_secret = String::new();
        s.notify.events = vec![lodge::config::NotifyEvent::TokenRotate];
    })
    .await;
    app.login_admin().await;
    app.add_user("carol", "carol's password", "user").await;
    app.new_token("<!here>").await;
    for _ in 0..3 {
        app.new_client().login("carol", "wrong").await;
    }
    rotate(&app, "<!here>").await;
    let delivered = receiver.wait_for_event_text().await;
    // Deliveries go out in order: the lock before the rotation would have come first.
    assert_eq!(receiver.seen().len(), 1, "only the chosen event");
    assert_eq!(
        delivered.json,
        json!({
            "text": "Lodge: token.rotate, token `&lt;!here&gt;`, user `admin`: the previous \
                     secret works for 1m more by admin"
        })
    );
    assert_eq!(
        delivered.header("X-Lodge-Signature"),
        None,
        "no secret, no signature"
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_once_it_answers() {
    let receiver = Receiver::start(Mode::FailFirst(3)).await;
    let app = app_notifying(&receiver, |_| {}).await;
    app.login_admin().await;
    app.new_token("a").await;
    app.new_token("b").await;
    rotate(&app, "a").await;
    rotate(&app, "b").await;
    rotate(&app, "a").await;
    let delivered = receiver.wait_for_event("token.rotate", 3).await;
    let names: Vec<_> = delivered
        .iter()
        .map(|d| d.json["tokenName"].clone())
        .collect();
    assert_eq!(names, ["a", "b", "a"], "all three, in order");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 6, "three 503s, then three deliveries");
    assert!(
        seen[..3].iter().all(|d| d.json["id"] == seen[0].json["id"]),
        "the first again"
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_no_request() {
    let receiver = Receiver::start(Mode::Hang).await;
    let app = app_notifying(&receiver, |_| {}).await;
    app.login_admin().await;
    app.new_token("ci").await;
    let mut token = secret(&rotate(&app, "ci").await);
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.seen().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the delivery was never attempted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While the receiver holds the delivery unanswered, every request is answered: logins,
    // events that queue more deliveries, lists.
    for round in 0..20 {
        let script = app.new_client();
        assert_ok(&script.login_with_token(&token).await);
        app.login_admin().await;
        if round % 5 == 0 {
            token = secret(&rotate(&app, "ci").await);
        }
        assert_ok(&app.gql("{ tokenApiList { tokenName } }", json!({})).await);
    }
    assert_eq!(
        receiver.seen().len(),
        1,
        "still the one delivery, unanswered"
    );
    receiver.release();
}

/// The binary, with the receiver down: the events wait in the database through a `kill -9` and
/// reach the receiver once it is up and Lodge has started again; an event queued by the command
/// line reaches it through the running server.
#[test]
fn deliveries_wait_for_a_receiver_that_is_down_across_a_kill_9() {
    use crate::binary::{lodge, login, post, run_command, start_with};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/lodge");
    let env = [
        ("LODGE_NOTIFY__WEBHOOK_URL", url.as_str()),
        ("LODGE_NOTIFY__WEBHOOK_SECRET", SECRET),
    ];
    let (mut server, base, _) = start_with(dir.path(), &env);
    let (_, cookie) = login(&base, "admin", "binary admin password");
    let cookie = cookie.expect("logged in");
    let create = json!({ "query": "mutation { tokenApiCreate(tokenName: \"ci\") { token } }" });
    let (created, _) = post(&base, create, Some(&cookie));
    assert!(created["errors"].is_null(), "{created}");
    for _ in 0..3 {
        let query = "mutation { tokenApiRotate(tokenName: \"ci\", graceSeconds: 60) { token } }";
        let (rotated, _) = post(&base, json!({ "query": query }), Some(&cookie));
        assert!(rotated["errors"].is_null(), "{rotated}");
    }
    let log = dir.path().join("lodge.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("notification not delivered")
    {
        assert!(Instant::now() < deadline, "no failed delivery logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();

    let receiver = {
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let _inside = runtime.enter();
        Receiver::start_on(listener, Mode::Accept)
    };
    let (server, _, _) = start_with(dir.path(), &env);
    let delivered = runtime.block_on(receiver.wait_for_event("token.rotate", 3));
    let ids: BTreeSet<_> = delivered.iter().map(|d| d.json["id"].to_string()).collect();
    assert_eq!(ids.len(), 3, "three events, each once after de-duplication");
    assert!(delivered.iter().all(|d| d.signed_with(SECRET)));

    let mut command = lodge(dir.path());
    command.envs(env);
    run_command(
        command,
        &["token", "rotate", "--user", "admin", "--name", "ci"],
        "",
    );
    let delivered = runtime.block_on(receiver.wait_for_event("token.rotate", 4));
    assert_eq!(
        delivered[3].json["detail"],
        "the previous secret stopped at once by the command line"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("/hooks/lodge"),
        "the webhook's URL is never logged"
    );
    drop(server);
}

/// An https receiver (actix-web with rustls) serving `cert`: the deliveries it accepted.
async fn https_receiver(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (String, Arc<Mutex<Vec<Value>>>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = actix_web::web::Data::new(seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().app_data(kept.clone()).route(
            "/hook",
            actix_web::web::post().to(
                |body: actix_web::web::Bytes,
                 seen: actix_web::web::Data<Arc<Mutex<Vec<Value>>>>| async move {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    actix_web::HttpResponse::Ok().finish()
                },
            ),
        )
    })
    .workers(1)
    .disable_signals()
    .listen_rustls_0_23(listener, config)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("https://127.0.0.1:{port}/hook"), seen)
}

#[tokio::test]
async fn an_https_receiver_is_trusted_through_notify_ca_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_certificate(dir.path(), "receiver");
    let (url, seen) = https_receiver(&cert, &key).await;
    let with_ca = {
        let (url, cert) = (url.clone(), cert.clone());
        spawn_app_with(move |s| {
            s.notify.webhook_url = lodge::config::WebhookUrl::parse(&url).unwrap();
            s.notify.ca_file = cert;
        })
        .await
    };
    with_ca.login_admin().await;
    with_ca.new_token("ci").await;
    rotate(&with_ca, "ci").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing delivered over https");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.lock().unwrap()[0]["event"], "token.rotate");

    // Without it the receiver's certificate is no public CA's: the delivery fails and waits.
    let without = spawn_app_with(move |s| {
        s.notify.webhook_url = lodge::config::WebhookUrl::parse(&url).unwrap();
    })
    .await;
    without.login_admin().await;
    without.new_token("ci").await;
    rotate(&without, "ci").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempts = without.query_i64("SELECT coalesce(max(attempts), 0) FROM notify_outbox");
        if attempts >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing more arrived");

    let mut settings = lodge::Settings::default();
    settings.server.port = 0;
    settings.database.path = dir.path().join("other.db");
    settings.notify.webhook_url = lodge::config::WebhookUrl::parse("https://127.0.0.1:1/").unwrap();
    settings.notify.ca_file = dir.path().join("missing.pem");
    let refused = lodge::App::build(settings, lodge::Clock::system()).await;
    let message = format!(
        "{:#}",
        refused.err().expect("a missing ca_file stops start-up")
    );
    assert!(
        message.contains("notify.ca_file") && message.contains("missing.pem"),
        "{message}"
    );
}
