//! `GET /metrics`: Prometheus' text format as a Prometheus parser reads it, counters that move
//! with what happens, and 403 for an address not in `metrics.allow_from`.

use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;

use crate::helpers::*;

async fn scrape(app: &TestApp) -> Scrape {
    let answer = app.get("/metrics").await;
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = answer.text().await.unwrap();
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP lodge_")
                || line.starts_with("# TYPE lodge_")
                || line.starts_with("lodge_"),
            "an unexpected line: {line}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

fn sample<'s>(scrape: &'s Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'s Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, name, labels).map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{name}: {other:?}"),
        None => 0.0,
    }
}

#[tokio::test]
async fn metrics_count_logins_and_tokens_and_time_requests() {
    let app = spawn_app().await;
    app.login_admin().await;
    let token = app.new_token("ci").await;
    app.new_token("doomed").await;
    assert_ok(&app.create_token("soon", "DAY").await);
    assert_ok(
        &app.gql(
            "mutation { tokenApiDelete(tokenName: \"doomed\") }",
            json!({}),
        )
        .await,
    );
    let failed = app.new_client().login(ADMIN, "not the password").await;
    assert_eq!(error_code(&failed), "authFailed");
    app.new_client().login_with_token(&token).await;
    app.gql_bearer(&token, "{ activeUser { userId } }", json!({}))
        .await;

    let first = scrape(&app).await;
    let logins = |scrape: &Scrape, provider: &str, result: &str| {
        value(
            scrape,
            "lodge_logins_total",
            &[("provider", provider), ("result", result)],
        )
    };
    assert_eq!(logins(&first, "local", "success"), 1.0);
    assert_eq!(logins(&first, "local", "failure"), 1.0);
    assert_eq!(logins(&first, "token", "success"), 1.0);
    assert_eq!(logins(&first, "bearer", "success"), 1.0);
    assert_eq!(value(&first, "lodge_tokens_created_total", &[]), 3.0);
    assert_eq!(
        value(&first, "lodge_tokens_expiring", &[]),
        2.0,
        "the week's (new_token) and the day's"
    );
    assert_eq!(value(&first, "lodge_tokens_deleted_total", &[]), 1.0);
    assert!(value(&first, "lodge_sessions", &[]) >= 2.0);
    assert!(value(&first, "lodge_database_bytes", &[]) > 0.0);
    let timed = sample(
        &first,
        "lodge_graphql_request_seconds",
        &[("operation", "authLogin")],
    )
    .expect("authLogin's durations");
    match &timed.value {
        Value::Histogram(buckets) => assert!(buckets.iter().any(|b| b.count >= 2.0), "{buckets:?}"),
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(
        sample(&first, "lodge_writer_commit_seconds", &[]).is_some(),
        "the writer's commits"
    );

    app.new_client().login(ADMIN, ADMIN_PASSWORD).await;
    let second = scrape(&app).await;
    assert_eq!(
        logins(&second, "local", "success"),
        2.0,
        "moved by one login"
    );
}

#[tokio::test]
async fn metrics_are_refused_to_an_address_not_allowed() {
    // The default is loopback (127.0.0.0/8 and ::1): tests reach no other address, so each
    // server here allows one loopback address and is asked from two.
    let only = |address: &'static str| {
        move |s: &mut lodge::Settings| {
            s.metrics.allow_from = vec![lodge::config::IpNet::parse(address).unwrap()];
        }
    };
    let from = |address: &str| {
        reqwest::Client::builder()
            .local_address(address.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    for (allowed, other) in [("127.0.0.1", "127.0.0.2"), ("127.0.0.2", "127.0.0.1")] {
        let app = spawn_app_with(only(allowed)).await;
        let url = format!("{}/metrics", app.url);
        let refused = from(other).get(&url).send().await.unwrap();
        assert_eq!(refused.status(), 403, "from {other}");
        let body = refused.text().await.unwrap();
        assert!(
            body.contains("metrics.allow_from") && !body.contains("lodge_"),
            "{body}"
        );
        let answered = from(allowed).get(&url).send().await.unwrap();
        assert_eq!(answered.status(), 200, "from {allowed}");
    }
}
