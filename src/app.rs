//! Builds the server: opens the store, binds, creates the first administrator, mounts routes.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{
    App as ActixApp, HttpServer,
    dev::{Server, Service as _},
    web,
};
use anyhow::Context as _;

use crate::{auth::Auth, clock::Clock, config::Settings, graphql, http, store::Store, tls};

/// How often ended sessions and long-expired tokens are removed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(300);
/// The name of the housekeeping's lease.
const HOUSEKEEPING: &str = "housekeeping";
/// How often the tokens' last uses held in memory are written.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// A bound server, ready to run.
pub struct App {
    host: String,
    port: u16,
    server: Server,
    auth: Auth,
    /// The database, folded into one file at shutdown.
    store: Store,
    stop_signals: StopSignals,
    /// Where events are delivered, when `notify.webhook_url` is set.
    webhook: Option<crate::notify::Webhook>,
    /// The certificate served, when Lodge serves https itself, and the signal that reloads it.
    tls: Option<(Arc<tls::Certificates>, tls::Hangups)>,
    /// The first administrator when this start created one, with its password when generated.
    pub created_admin: Option<(String, Option<String>)>,
}

impl App {
    /// Checks the TLS and webhook files, opens the database, binds the listener (port 0 lets
    /// the system pick), and then creates the first administrator when there is none.
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let certificates = certificates(&settings.server)?;
        let webhook = crate::notify::Webhook::from_settings(&settings.notify)?;
        let store = Store::from_settings(&settings.database)?;
        let auth = Auth::new(store.clone(), clock, settings.clone());
        auth.devices()
            .load_device_key()
            .await
            .context("cannot read or make the key of device cookies")?;

        let host = settings.server.host.clone();
        let listener =
            TcpListener::bind((host.as_str(), settings.server.port)).with_context(|| {
                format!(
                    "cannot listen on {host}:{} (server.host, server.port)",
                    settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        // Only once the port is ours: a start that cannot listen leaves no administrator
        // behind with a password nobody saw.
        let created_admin = auth.users().ensure_first_admin().await?;

        let state = web::Data::new(http::AppState {
            auth: auth.clone(),
            operations: graphql::OperationCache::new(Arc::new(graphql::schema(&settings.graphql))),
            secure_cookies: settings.server.public_url.is_https(),
            session_cookie: if settings.server.public_url.is_https() {
                crate::http::HOST_SESSION_COOKIE
            } else {
                crate::http::SESSION_COOKIE
            },
            tls: certificates.is_some(),
            console: settings.graphql.console,
            log_requests: settings.log.requests,
        });
        let log_requests = settings.log.requests;
        let tls = certificates.is_some();
        let per_request = store.shares_with_other_nodes();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_connections = settings.server.max_connections.max(1) as usize;
        let connections = http::Connections::new(
            max_connections,
            settings.server.max_connections_per_address as usize,
            settings.server.trusted_proxies.clone(),
            settings.limits.ipv6_prefix.0,
        );
        let server = HttpServer::new(move || {
            ActixApp::new()
                .app_data(state.clone())
                // One layer around every request, each part only where it is used: on
                // PostgreSQL the change counter is read once at most in a request, which sees
                // the database as of its start; served over https, browsers keep to it for this
                // host for a year; `log.requests` writes its line. (actix's `Condition` and
                // `from_fn` layers for the last two cost 3 % of a `noop` request's instructions
                // even when off.)
                .wrap_fn(move |req, service| {
                    let line = log_requests.then(|| http::access_log::Started::of(&req));
                    let call = service.call(req);
                    async move {
                        let mut response = if per_request {
                            crate::store::per_request(call).await?
                        } else {
                            call.await?
                        };
                        if tls {
                            http::keep_to_https(&mut response);
                        }
                        if let Some(line) = line {
                            line.answered(&response);
                        }
                        Ok(response)
                    }
                })
                .configure(http::routes)
        })
        .workers(workers)
        // actix counts per worker; each takes its share of the cap.
        .max_connections(max_connections.div_ceil(workers))
        .on_connect(move |io, extensions| {
            extensions.insert(connections.opened(io));
        });
        let server = match &certificates {
            Some(certificates) => {
                server.listen_rustls_0_23(listener, certificates.server_config()?)?
            }
            None => server.listen(listener)?,
        };
        let server = server
            .disable_signals()
            .shutdown_timeout(
                settings
                    .server
                    .shutdown_timeout
                    .0
                    .as_secs()
                    .max(1)
                    .unsigned_abs(),
            )
            .run();
        Ok(Self {
            host,
            port,
            server,
            auth,
            store,
            stop_signals: StopSignals::register()?,
            tls: certificates.map(|c| (c, tls::Hangups::register())),
            webhook,
            created_admin,
        })
    }

    /// The product's rules this server runs with (tests use it to run housekeeping).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The database this server runs on.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://HOST:PORT` (or `https://`) with the port actually bound.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// Serves until the server is stopped (SIGTERM or Ctrl-C in the binary).
    pub async fn run(self) -> std::io::Result<()> {
        let auth = self.auth.clone();
        let housekeeping = tokio::spawn(async move {
            let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
            loop {
                every.tick().await;
                // One node of several runs it; another takes over when it stops renewing.
                if !auth.runs(HOUSEKEEPING, HOUSEKEEPING_EVERY * 3).await {
                    continue;
                }
                match auth.housekeeping().await {
                    Ok((sessions, tokens)) if sessions + tokens > 0 => {
                        tracing::info!(sessions, tokens, "removed ended sessions and old tokens");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("housekeeping failed: {:#}", anyhow::Error::new(e)),
                }
            }
        });
        let auth = self.auth.clone();
        let last_uses = tokio::spawn(async move {
            let mut every = tokio::time::interval(LAST_USED_EVERY);
            loop {
                every.tick().await;
                let _ = auth.flush_last_used().await;
            }
        });
        // Webhook deliveries, when `notify.webhook_url` is set.
        let notifications = self
            .webhook
            .map(|webhook| tokio::spawn(crate::notify::deliver(self.auth.clone(), webhook)));
        let reloads = self
            .tls
            .map(|(certificates, hangups)| tokio::spawn(tls::watch(certificates, hangups)));
        let handle = self.server.handle();
        let stop_signals = self.stop_signals;
        let stopper = tokio::spawn(async move {
            stop_signals.received().await;
            tracing::info!("stopping: finishing the requests in flight");
            handle.stop(true).await;
        });
        let result = self.server.await;
        stopper.abort();
        housekeeping.abort();
        last_uses.abort();
        if let Some(notifications) = notifications {
            notifications.abort();
        }
        if let Some(reloads) = reloads {
            reloads.abort();
        }
        // What is held in memory goes to the file before the last checkpoint.
        let _ = self.auth.flush_last_used().await;
        // Another node takes over the tasks at once.
        self.auth.give_up(HOUSEKEEPING).await;
        self.auth.give_up(crate::notify::TASK).await;
        // Fold the write-ahead log into the database file, so a stopped server leaves one file.
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.checkpoint()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot checkpoint the database at shutdown: {e:#}"),
            Err(e) => tracing::warn!("cannot checkpoint the database at shutdown: {e}"),
        }
        result
    }
}

/// The certificate `server.tls_cert` and `server.tls_key` name, when both are set.
fn certificates(
    server: &crate::config::ServerSettings,
) -> anyhow::Result<Option<Arc<tls::Certificates>>> {
    let (cert, key) = (&server.tls_cert, &server.tls_key);
    match (cert.as_os_str().is_empty(), key.as_os_str().is_empty()) {
        (true, true) => Ok(None),
        (false, false) => tls::Certificates::open(cert, key).map(Some),
        _ => anyhow::bail!(
            "server.tls_cert and server.tls_key go together: set both to serve https, or neither"
        ),
    }
}

/// SIGTERM and SIGINT, registered when the server is built: a signal that comes right after the
/// `listening on` line still stops it cleanly. (actix's own handlers are installed only once the
/// server first runs, and a SIGTERM before that ended the process at once.)
struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    #[cfg(unix)]
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn register() -> std::io::Result<Self> {
        Ok(Self {})
    }

    #[cfg(unix)]
    async fn received(mut self) {
        let terminate = std::pin::pin!(self.terminate.recv());
        let interrupt = std::pin::pin!(self.interrupt.recv());
        futures_util::future::select(terminate, interrupt).await;
    }

    #[cfg(not(unix))]
    async fn received(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
