//! Connecting to PostgreSQL: the URL and TLS, the pool's connections, the driver's failures as
//! the store's, and the schema's migrations.

use std::{
    path::Path,
    str::FromStr as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;

use crate::store::{
    Cause, Constraint, Result, StoreError,
    db::{PgConnection, Tx, args},
};

/// Takes the advisory lock held while the schema is migrated, so that nodes starting together
/// migrate once.
const MIGRATE_LOCK: &str = "SELECT pg_advisory_xact_lock(1282368616, hashtext(current_schema()))";

/// How long opening a connection may take unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema's versions, each the SQL that brings the one before to it. Numbered as SQLite's
/// migrations are, so that a version means the same tables on both: PostgreSQL starts at 12,
/// the SQLite schema it was first written for, in one step.
const MIGRATIONS: &[(i64, &str)] = &[
    (12, include_str!("migrations/012_schema.sql")),
    (
        13,
        include_str!("migrations/013_shared_limits_and_leases.sql"),
    ),
    (14, include_str!("migrations/014_token_lifetime.sql")),
];

/// How to open a connection: the parsed URL and the TLS set-up.
pub(super) struct Connector {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Moved on when a statement finds the server gone: connections opened before are
    /// closed instead of used (their first use would fail).
    epoch: AtomicU64,
}

impl Connector {
    pub(super) fn new(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            anyhow::anyhow!(
                "database.url is not a PostgreSQL URL ({e}): postgres://user@host:port/database"
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // libpq's default, `prefer`, falls back to plain text without a word when the server
        // offers no TLS, or when someone between says so: across a network a URL that names
        // no mode asks for TLS instead. On this host (loopback, a socket) `prefer` stays.
        if !url.contains("sslmode") && !only_this_host(&config) {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        if config.get_application_name().is_none() {
            config.application_name("lodge");
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                use rustls::pki_types::{CertificateDer, pem::PemObject as _};
                let certificates: Vec<_> = CertificateDer::pem_file_iter(path)
                    .and_then(|found| found.collect::<Result<_, _>>())
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read database.ca_file {}: {e}", path.display())
                    })?;
                if certificates.is_empty() {
                    anyhow::bail!(
                        "database.ca_file {} holds no PEM certificate",
                        path.display()
                    );
                }
                for certificate in certificates {
                    roots
                        .add(certificate)
                        .map_err(|e| anyhow::anyhow!("database.ca_file {}: {e}", path.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .context("TLS for PostgreSQL")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            epoch: AtomicU64::new(0),
        })
    }

    pub(super) fn connect(&self) -> Result<PgConnection> {
        let client = postgres::Config::from(self.config.clone()).connect(self.tls.clone())?;
        Ok(PgConnection::new(
            client,
            self.epoch.load(Ordering::Relaxed),
        ))
    }

    /// Where the database is, without user or password.
    pub(super) fn describe(&self) -> String {
        use tokio_postgres::config::Host;
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .chain(std::iter::repeat(&5432)),
            )
            .map(|(host, port)| match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "PostgreSQL database {} on {}",
            self.config.get_dbname().unwrap_or("(the user's)"),
            if hosts.is_empty() {
                "localhost".to_owned()
            } else {
                hosts.join(", ")
            }
        )
    }

    /// Notes a failure: when it shows the server gone, connections opened before it are not
    /// used again.
    pub(super) fn saw<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(StoreError::Unreachable(_)) = &result {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Whether every host `config` names is this machine: a Unix socket, `localhost` or a loopback
/// address. A host's name says where the operator means to connect, so a `hostaddr` beside it
/// does not count; alone, it does.
fn only_this_host(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    let hosts = config.get_hosts();
    if hosts.is_empty() {
        // Only addresses, or libpq's default: the local socket, or localhost.
        return config
            .get_hostaddrs()
            .iter()
            .all(std::net::IpAddr::is_loopback);
    }
    hosts.iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    })
}

/// Opens the pool's connections.
pub(super) struct Manager(pub(super) Arc<Connector>);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<PgConnection> {
        self.0.connect()
    }

    /// Checked at every checkout without a round trip: a connection is good while it is open
    /// and no statement has found the server gone since it was opened.
    fn is_valid(&self, conn: &mut PgConnection) -> Result<()> {
        if conn.is_closed() || conn.epoch < self.0.epoch.load(Ordering::Relaxed) {
            return Err(StoreError::Invalid(
                "a connection from before a failure".into(),
            ));
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.is_closed()
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        let Some(code) = e.code().cloned() else {
            // No answer from the server: the connection failed or closed. Anything else without
            // a code is the client's (a value of the wrong type): a bug of ours.
            let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
            return match e.is_closed() || io {
                true => StoreError::Unreachable(e.into()),
                false => StoreError::Sqlite(e.into()),
            };
        };
        let e = Cause::from(e);
        match code {
            c if c == SqlState::UNIQUE_VIOLATION => StoreError::Constraint(Constraint::Unique, e),
            c if c == SqlState::FOREIGN_KEY_VIOLATION => {
                StoreError::Constraint(Constraint::ForeignKey, e)
            }
            c if c.code().starts_with("23") => StoreError::Constraint(Constraint::Other, e),
            c if c == SqlState::DISK_FULL => StoreError::DiskFull(e),
            c if c == SqlState::READ_ONLY_SQL_TRANSACTION => StoreError::ReadOnly(e),
            c if c == SqlState::LOCK_NOT_AVAILABLE
                || c == SqlState::T_R_SERIALIZATION_FAILURE
                || c == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                StoreError::Locked(e)
            }
            // Connection failures, a server shutting down or starting, too many connections.
            c if c.code().starts_with("08")
                || c.code().starts_with("57P")
                || c == SqlState::TOO_MANY_CONNECTIONS =>
            {
                StoreError::Unreachable(e)
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

/// A failure to reach the server that the driver did not report itself (the pool's).
pub(super) fn unreachable(why: String) -> StoreError {
    StoreError::Unreachable(Cause::Again(why))
}

/// Brings the schema to the newest version this binary knows, under an advisory lock; refuses a
/// database a newer Lodge has migrated.
pub(super) fn migrate(conn: &PgConnection) -> anyhow::Result<()> {
    let tx = Tx::Postgres(conn);
    conn.batch("BEGIN")?;
    let outcome = (|| -> anyhow::Result<()> {
        conn.batch(MIGRATE_LOCK)?;
        conn.batch("CREATE TABLE IF NOT EXISTS lodge_schema (version BIGINT NOT NULL)")?;
        let version: i64 = tx
            .query_opt("SELECT version FROM lodge_schema", args![], |r| r.get(0))?
            .unwrap_or(0);
        let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if version > newest {
            anyhow::bail!(
                "the database was migrated by a newer version of Lodge (schema {version}, this \
                 one knows {newest}); run that version or restore a backup"
            );
        }
        if version == 0 {
            conn.batch("INSERT INTO lodge_schema (version) VALUES (0)")?;
        }
        for (to, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > version) {
            conn.batch(sql)
                .with_context(|| format!("migration to schema {to} failed"))?;
            tx.execute("UPDATE lodge_schema SET version = ?1", args![*to])?;
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => Ok(conn.batch("COMMIT")?),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}
