//! What `GET /metrics` shows, in Prometheus' text format: counters and histograms recorded as
//! things happen, and a few gauges read when scraped. One set a server (tests run several in one
//! process).

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// A login's provider and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    /// `local` (password), `token` (`authLogin`), `bearer` (`Authorization: Bearer`).
    pub provider: &'static str,
    /// `success`, `failure`, or `denied` (a right token used beyond its scopes or bounds).
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `password` or `token`.
    pub check: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The GraphQL root field a request runs first (`authLogin`, `tokenApiList`, ...), `other`
    /// for a document that did not validate: a set the schema bounds.
    pub operation: &'static str,
}

/// Request durations from 100 µs to about 6.5 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 17)
}

/// The writer's figures, kept by the store and shown here.
#[derive(Clone)]
pub struct WriterMetrics {
    /// Writes committed together.
    pub batch_size: Histogram,
    /// How long each COMMIT took (the disk's flush, with `synchronous = FULL`).
    pub commit_seconds: Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        Self {
            batch_size: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                1.0, 2.0, 9,
            )),
            commit_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 15),
            ),
        }
    }
}

/// The gauges filled in at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scraped {
    pub tokens_expiring: i64,
    pub sessions_live: i64,
    pub database_bytes: i64,
}

pub struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    throttled: Family<CheckLabels, Counter>,
    tokens_created: Counter,
    tokens_deleted: Counter,
    requests: Family<OperationLabels, Histogram>,
    tokens_expiring: Gauge,
    sessions_live: Gauge,
    database_bytes: Gauge,
}

impl Metrics {
    pub fn new(writer: &WriterMetrics) -> Self {
        let mut registry = Registry::with_prefix("lodge");
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Logins and Bearer token checks by provider and result",
            logins.clone(),
        );
        let throttled = Family::<CheckLabels, Counter>::default();
        registry.register(
            "login_throttled",
            "Attempts refused before any check by the login limits",
            throttled.clone(),
        );
        let tokens_created = Counter::default();
        registry.register(
            "tokens_created",
            "API tokens created",
            tokens_created.clone(),
        );
        let tokens_deleted = Counter::default();
        registry.register(
            "tokens_deleted",
            "API tokens deleted or revoked as leaked",
            tokens_deleted.clone(),
        );
        let requests = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "graphql_request_seconds",
            "GraphQL requests' time in Lodge, by their first root field",
            requests.clone(),
        );
        let tokens_expiring = Gauge::default();
        registry.register(
            "tokens_expiring",
            "Live API tokens that expire within tokens.warn_before",
            tokens_expiring.clone(),
        );
        let sessions_live = Gauge::default();
        registry.register(
            "sessions",
            "Sessions in the database not yet ended",
            sessions_live.clone(),
        );
        let database_bytes = Gauge::default();
        registry.register(
            "database_bytes",
            "The database file with its write-ahead log",
            database_bytes.clone(),
        );
        registry.register(
            "writer_batch_size",
            "Writes committed together by the database writer",
            writer.batch_size.clone(),
        );
        registry.register(
            "writer_commit_seconds",
            "Time of each commit of the database writer",
            writer.commit_seconds.clone(),
        );
        Self {
            registry,
            logins,
            throttled,
            tokens_created,
            tokens_deleted,
            requests,
            tokens_expiring,
            sessions_live,
            database_bytes,
        }
    }

    pub fn login(&self, provider: &'static str, result: &'static str) {
        self.logins
            .get_or_create(&LoginLabels { provider, result })
            .inc();
    }

    pub fn throttled(&self, check: &'static str) {
        self.throttled.get_or_create(&CheckLabels { check }).inc();
    }

    pub fn token_created(&self) {
        self.tokens_created.inc();
    }

    pub fn tokens_deleted(&self, count: u64) {
        self.tokens_deleted.inc_by(count);
    }

    pub fn request(&self, operation: &'static str, took: Duration) {
        self.requests
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// The page, with the scraped gauges set first.
    pub fn render(&self, scraped: Scraped) -> String {
        self.tokens_expiring.set(scraped.tokens_expiring);
        self.sessions_live.set(scraped.sessions_live);
        self.database_bytes.set(scraped.database_bytes);
        let mut page = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut page, &self.registry)
            .expect("writing to a String");
        page
    }
}
