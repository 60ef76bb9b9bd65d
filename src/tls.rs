//! https of Lodge's own (`server.tls_cert`, `server.tls_key`): rustls with TLS 1.2 and 1.3 only,
//! and a certificate read again when its files change or on SIGHUP, so that a renewal (certbot's,
//! for one) takes effect without a restart. Connections already open keep the certificate they
//! began with; new ones get the new one.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// How often the files are looked at for a change.
pub const LOOK_EVERY: Duration = Duration::from_secs(5);

/// The certificate in use, and the files it came from.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when last read.
    read_as: Mutex<Option<Stamp>>,
}

type Stamp = [(SystemTime, u64); 2];

/// rustls' *ring* provider, as ureq's webhook deliveries use it (and TLS to PostgreSQL). rustls 0.23.48 marks it
/// deprecated because *ring* has no post-quantum key exchange; its other provider, aws-lc-rs,
/// builds a C library (with cmake) into the binary. Lodge keeps *ring* until that trade is made
/// on purpose: the key exchanges it offers (X25519, P-256, P-384) are today's standard ones.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The two files' modification times and sizes, when both can be read.
fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    let of = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([of(cert)?, of(key)?])
}

/// Reads a certificate chain and its private key from PEM files, and checks they belong together.
fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the certificate {} (server.tls_cert): {e}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "{} (server.tls_cert) holds no PEM certificate",
            cert.display()
        );
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the private key {} (server.tls_key): {e}",
            key.display()
        )
    })?;
    CertifiedKey::from_der(chain, private, &provider()).with_context(|| {
        format!(
            "the key {} (server.tls_key) does not fit the certificate {} (server.tls_cert)",
            key.display(),
            cert.display()
        )
    })
}

impl Certificates {
    /// Reads the files; an error says which file and what is wrong with it.
    pub fn open(cert: &Path, key: &Path) -> anyhow::Result<Arc<Self>> {
        let read_as = stamp(cert, key);
        let current = load(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(current)),
            read_as: Mutex::new(read_as),
        }))
    }

    /// rustls' configuration serving these certificates: TLS 1.3 and 1.2, HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS 1.2 and 1.3 with ring")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Reads the files again; a failure keeps the certificate in use and says why.
    pub fn reload(&self) -> anyhow::Result<()> {
        let read_as = stamp(&self.cert, &self.key);
        let fresh = load(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        *self.read_as.lock().unwrap_or_else(|p| p.into_inner()) = read_as;
        Ok(())
    }

    /// Reads the files again when they changed since they were last read.
    pub fn reload_if_changed(&self) -> Option<anyhow::Result<()>> {
        let now = stamp(&self.cert, &self.key);
        let before = *self.read_as.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_none() || now == before {
            return None;
        }
        let result = self.reload();
        if result.is_err() {
            // Said once for these files; looked at again when they change again.
            *self.read_as.lock().unwrap_or_else(|p| p.into_inner()) = now;
        }
        Some(result)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// SIGHUP, registered when the server is built: one that comes right after the `listening on`
/// line reloads the certificate instead of ending the process (the signal's default).
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    pub fn register() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }
}

/// Reloads the certificate when its files change (looked at every [`LOOK_EVERY`]) and on each
/// SIGHUP, saying so in the log; runs until dropped.
pub async fn watch(certificates: Arc<Certificates>, hangups: Hangups) {
    #[cfg(unix)]
    let mut hangups = hangups.signal;
    #[cfg(not(unix))]
    let _ = hangups;
    let mut every = tokio::time::interval(LOOK_EVERY);
    every.tick().await;
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hangups.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        let result = tokio::select! {
            _ = every.tick() => certificates.reload_if_changed(),
            _ = hangup => Some(certificates.reload()),
        };
        match result {
            Some(Ok(())) => tracing::info!("read the TLS certificate again"),
            Some(Err(e)) => tracing::error!(
                "kept the TLS certificate in use: the new one cannot be used: {e:#}"
            ),
            None => {}
        }
    }
}
