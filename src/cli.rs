//! The command line: serving, the schema, and user and token administration on the database.

use std::{
    borrow::Cow,
    io::{BufRead as _, IsTerminal as _},
    path::PathBuf,
    sync::Arc,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    App, Clock, Settings,
    auth::{
        Actor, AuditFilter, Auth, Expiry, Grants, NewPassword, Role, TokenName, UserFilter, UserId,
        password,
    },
    config::{Duration, Lifetime},
    graphql, scan,
    store::Store,
};

#[derive(Debug, Parser)]
#[command(
    name = "lodge",
    version,
    about = "A login and API-token server that speaks CloudBeaver's GraphQL API"
)]
pub struct Cli {
    /// The configuration file [default: config.toml, when present]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default); creates the database and the first administrator on the
    /// first start
    Serve,
    /// Create the database and the first administrator without serving (other commands need
    /// a database and never create one)
    Init,
    /// Print the GraphQL schema (SDL)
    Schema,
    /// Manage users in the configured database
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens in the configured database
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy the database to a new file while the server runs (SQLite's online backup)
    Backup {
        /// The new file; it must not exist
        path: PathBuf,
    },
    /// Copy a SQLite database into an empty PostgreSQL one (users, tokens, sessions, the audit
    /// log, waiting notifications), then count every table on both sides. Stop the server
    /// first: what it writes after the copy has read the file is not copied
    Migrate {
        /// The SQLite file
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The PostgreSQL database, postgres://user@host:port/database (database.ca_file, if
        /// set, is the CA its certificate is checked against)
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Find Lodge API tokens in files (by their checksum, not just their shape); exits 1 when
    /// it finds one, so it can run as a pre-commit hook. Needs no database
    Scan {
        /// Files or folders to read [default: the current folder]
        paths: Vec<PathBuf>,
    },
    /// Print the audit log, newest first
    Audit {
        /// How far back, such as 1h, 1d or 30d
        #[arg(long, default_value = "1d")]
        since: String,
        /// Only events of this user
        #[arg(long)]
        user: Option<String>,
        /// Only events of this kind (login, logout, token.create, ...)
        #[arg(long)]
        kind: Option<String>,
        /// At most this many events
        #[arg(long, default_value_t = 1000)]
        limit: i32,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input, or generated and printed
    Add {
        name: String,
        /// Make the user an administrator
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password (from standard input, or generated and printed); ends their sessions
    Passwd { name: String },
    /// List the users
    List,
    /// Disable a user: their sessions end and their tokens stop working at once
    Disable { name: String },
    /// Enable a disabled user again (ended sessions stay ended)
    Enable { name: String },
    /// Lift a failed-login lock on a user's account: a running server lifts it at the
    /// account's next login
    Unlock { name: String },
    /// Delete a user with their tokens and sessions
    Delete { name: String },
    /// Make a user an administrator (`admin`) or not (`user`)
    Role {
        name: String,
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret, shown this once
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        /// [default: tokens.default_lifetime]
        #[arg(long, value_enum)]
        lifetime: Option<CliLifetime>,
        /// What the token may do: api, read_api, proxy, read_proxy (repeat for more)
        /// [default: api and proxy]
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A service forward auth lets it reach: host, `*.` host, optional path prefix
        /// (repeat for more) [default: any]
        #[arg(long = "service")]
        services: Vec<String>,
        /// An address or CIDR range it may be used from (repeat for more) [default: any]
        #[arg(long = "allow-from")]
        allow_from: Vec<String>,
    },
    /// List a user's tokens, or with --expiring every user's that expire within
    /// tokens.warn_before (exit code 1 when there is any, for cron and monitoring)
    List {
        #[arg(long, required_unless_present = "expiring")]
        user: Option<String>,
        /// Every user's tokens that expire within tokens.warn_before
        #[arg(long, conflicts_with = "user")]
        expiring: bool,
    },
    /// Give a user's token a new secret and print it once; the previous one works for --grace
    Rotate {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        /// [default: tokens.default_lifetime]
        #[arg(long, value_enum)]
        lifetime: Option<CliLifetime>,
        /// How long the previous secret keeps working, such as 1h or 1d (at most
        /// tokens.max_rotation_grace); without it, the previous secret stops at once
        #[arg(long)]
        grace: Option<String>,
    },
    /// Delete a user's token by name
    Delete {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CliLifetime {
    Day,
    Week,
    Month,
    Year,
    Never,
}

impl From<CliLifetime> for Lifetime {
    fn from(l: CliLifetime) -> Self {
        match l {
            CliLifetime::Day => Lifetime::Day,
            CliLifetime::Week => Lifetime::Week,
            CliLifetime::Month => Lifetime::Month,
            CliLifetime::Year => Lifetime::Year,
            CliLifetime::Never => Lifetime::Never,
        }
    }
}

/// Runs one command with loaded settings.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Schema => {
            print!("{}", graphql::schema(&Default::default()).as_sdl());
            Ok(())
        }
        Command::Scan { paths } => {
            let scanned = scan::scan(&paths);
            let found = &scanned.found;
            for hit in found {
                println!("{}:{}: a Lodge API token", hit.path.display(), hit.line);
            }
            // Exit code 1, through the usual error path.
            if !found.is_empty() {
                bail!(
                    "{} Lodge API token(s) found: revoke them (POST /api/tokens/revoke) and remove them",
                    found.len()
                );
            }
            if !scanned.unreadable.is_empty() {
                bail!(
                    "no Lodge API token found, but {} file(s) or folder(s) could not be read \
                     (named above): scan them as a user who may read them",
                    scanned.unreadable.len()
                );
            }
            Ok(())
        }
        Command::Init => {
            let path = settings.database.path.clone();
            let existed = path.exists();
            let store = Store::from_settings(&settings.database)?;
            let on_server = store.file().is_none();
            let described = store.describe();
            let auth = Auth::new(store, Clock::system(), Arc::new(settings));
            // Made now, so that the server's first start has nothing to write.
            auth.devices().load_device_key().await?;
            let created = auth.users().ensure_first_admin().await?;
            let path = std::path::absolute(&path).unwrap_or(path);
            match (on_server, existed) {
                (true, _) => println!("the {described} is ready"),
                (false, true) => println!("the database at {} exists", path.display()),
                (false, false) => println!("created the database at {}", path.display()),
            }
            announce_first_admin(created.as_ref());
            Ok(())
        }
        Command::User(command) => {
            let reads = Access::of(matches!(command, UserCommand::List));
            user(command, open(settings, reads)?).await
        }
        Command::Token(command) => {
            let reads = Access::of(matches!(command, TokenCommand::List { .. }));
            token(command, open(settings, reads)?).await
        }
        Command::Backup { path } => {
            let store = open_existing(&settings.database, Access::Read)?;
            tokio::task::spawn_blocking(move || {
                store.backup_to(&path)?;
                println!("backed up to {}", path.display());
                anyhow::Ok(())
            })
            .await??;
            Ok(())
        }
        Command::Migrate { from, to } => {
            let to =
                crate::config::DatabaseUrl::parse(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            let Some(url) = to.0.clone() else {
                bail!("--to needs the PostgreSQL database's URL");
            };
            if !from.exists() {
                let shown = std::path::absolute(&from).unwrap_or_else(|_| from.clone());
                return Err(NoDatabase(shown).into());
            }
            // A server still writing to it would add rows the copy does not have.
            if crate::store::sqlite_in_use(&from) {
                return Err(Refused(format!(
                    "{} is open in a running Lodge (or another program): stop the server, then \
                     migrate, or migrate from a `lodge backup` of it; nothing was copied",
                    from.display()
                ))
                .into());
            }
            let source = Store::open(&from)?;
            let ca_file =
                Some(settings.database.ca_file.as_path()).filter(|p| !p.as_os_str().is_empty());
            let target = Store::connect(&url, ca_file)?;
            let counts = source.copy_into(&target).await?;
            println!("copied {} into the {}:", from.display(), target.describe());
            for (table, rows, _) in &counts {
                println!("  {table:<17} {rows:>9} rows, counted again there");
            }
            println!(
                "set database.url = \"{}\" (or LODGE_DATABASE__URL) and start Lodge; keep {} \
                 as a backup until you no longer need to go back",
                to.redacted(),
                from.display()
            );
            Ok(())
        }
        Command::Audit {
            since,
            user,
            kind,
            limit,
        } => {
            let since = Duration::parse(&since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let auth = open(settings, Access::Read)?;
            let events = auth
                .audit()
                .log(AuditFilter {
                    user_id: user,
                    kind,
                    since: Some(auth.now() - since.0),
                    limit: Some(limit),
                    offset: None,
                })
                .await?;
            for e in events {
                let mut line = format!(
                    "{} {:<15} {:<7}",
                    e.time.strftime("%Y-%m-%d %H:%M:%SZ"),
                    e.kind,
                    if e.success { "ok" } else { "FAILED" }
                );
                let fields = [
                    ("user", e.user_id),
                    ("provider", e.provider.map(Cow::into_owned)),
                    ("token", e.token_name),
                    ("address", e.address),
                ];
                for (name, value) in fields {
                    if let Some(value) = value {
                        line.push_str(&format!(" {name}={value}"));
                    }
                }
                if let Some(detail) = e.detail {
                    line.push_str(&format!(" ({detail})"));
                }
                println!("{line}");
            }
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = App::build(settings, Clock::system()).await?;
    announce_first_admin(app.created_admin.as_ref());
    println!("listening on {}", app.url());
    tracing::info!("listening on {}", app.url());
    app.run()
        .await
        .context("the server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

/// Says who the first administrator is when this start created one. A generated password goes
/// to the terminal: standard output when it is one, standard error otherwise, so that a script
/// or a file reading standard output never holds it.
fn announce_first_admin(created: Option<&(String, Option<String>)>) {
    let Some((user, generated)) = created else {
        return;
    };
    match generated {
        Some(password) => {
            let text = format!(
                "created the first administrator `{user}` with this password, shown only once:\n  \
                 {password}\nchange it after logging in (authChangeLocalPassword, or `lodge user \
                 passwd {user}`)"
            );
            if std::io::stdout().is_terminal() {
                println!("{text}");
            } else {
                eprintln!("{text}");
                println!(
                    "created the first administrator `{user}` with a generated password, printed \
                     on standard error"
                );
            }
        }
        None => println!(
            "created the first administrator `{user}` with the password of the configuration"
        ),
    }
}

/// A command that must not run now, and why. Exit code 2.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A command other than `serve` or `init` found no database where the settings say: it
/// creates none (an empty one would answer every question with nothing). Exit code 2.
#[derive(Debug)]
pub struct NoDatabase(pub PathBuf);

impl std::fmt::Display for NoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no database at {} (set database.path or run from the folder that holds it; \
             `lodge init` creates one)",
            self.0.display()
        )
    }
}

impl std::error::Error for NoDatabase {}

/// What a command does with the database.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// Only reads: it works on a SQLite file it may not write.
    Read,
    Write,
}

impl Access {
    fn of(reads_only: bool) -> Self {
        if reads_only { Self::Read } else { Self::Write }
    }
}

/// Opens the database a command works on: a SQLite file must exist; PostgreSQL's database is
/// the server's to create. A command that only reads opens a SQLite file it may not write (or
/// whose folder it may not write) read-only.
fn open_existing(
    settings: &crate::config::DatabaseSettings,
    access: Access,
) -> anyhow::Result<Store> {
    let path = &settings.path;
    if settings.url.0.is_none() {
        if !path.exists() {
            let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
            return Err(NoDatabase(shown).into());
        }
        if access == Access::Read && Store::sqlite_not_writable(path) {
            return Store::open_read_only(path);
        }
    }
    Store::from_settings(settings)
}

fn open(settings: Settings, access: Access) -> anyhow::Result<Auth> {
    let store = open_existing(&settings.database, access)?;
    Ok(Auth::new(store, Clock::system(), Arc::new(settings)))
}

async fn user(command: UserCommand, auth: Auth) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, admin } => {
            let id = UserId::parse(&name)?;
            let (password, shown) = new_password()?;
            let role = if admin { Role::Admin } else { Role::User };
            auth.users()
                .create_user(&Actor::command_line(), &id, role, true, Some(password))
                .await?;
            println!("added {} `{}`", role.as_str(), id.as_str());
            if let Some(shown) = shown {
                println!("password: {shown}");
            }
        }
        UserCommand::Passwd { name } => {
            let (password, shown) = new_password()?;
            auth.users()
                .set_password(&Actor::command_line(), &name, password, None)
                .await?;
            println!(
                "password of `{}` changed; their sessions ended",
                name.trim()
            );
            if let Some(shown) = shown {
                println!("password: {shown}");
            }
        }
        UserCommand::Disable { name } => {
            auth.users()
                .enable_user(&Actor::command_line(), &name, false)
                .await?;
            println!(
                "disabled `{}`; their sessions ended and their tokens stopped working",
                name.trim()
            );
        }
        UserCommand::Enable { name } => {
            auth.users()
                .enable_user(&Actor::command_line(), &name, true)
                .await?;
            println!("enabled `{}`", name.trim());
        }
        UserCommand::Unlock { name } => {
            auth.users()
                .unlock_user(&Actor::command_line(), &name)
                .await?;
            println!(
                "lifted the failed-login lock on `{}`: they can log in at once",
                name.trim()
            );
        }
        UserCommand::Delete { name } => {
            auth.users()
                .delete_user(&Actor::command_line(), &name)
                .await?;
            println!("deleted `{}` with their tokens and sessions", name.trim());
        }
        UserCommand::Role { name, role } => {
            let role = Role::parse(&role)?;
            auth.users()
                .set_role(&Actor::command_line(), &name, role)
                .await?;
            println!("`{}` is now {}", name.trim(), role.as_str());
        }
        UserCommand::List => {
            let users = auth
                .users()
                .list_users(UserFilter {
                    limit: Some(i32::MAX),
                    ..UserFilter::default()
                })
                .await?;
            println!(
                "{:<32} {:<6} {:<8} {:<21} {:<21} sessions",
                "user", "role", "enabled", "created", "last login"
            );
            let shown = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
            for u in users {
                // A running server writes last logins once a minute.
                let last_login = auth.last_login(&u).await?.map_or("never".to_owned(), shown);
                let sessions = auth.session_list().session_count(&u).await?;
                println!(
                    "{:<32} {:<6} {:<8} {:<21} {:<21} {sessions}",
                    u.user_id,
                    u.role.as_str(),
                    if u.enabled { "yes" } else { "no" },
                    shown(u.created_at),
                    last_login,
                );
            }
        }
    }
    Ok(())
}

async fn token(command: TokenCommand, auth: Auth) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            user,
            name,
            lifetime,
            scopes,
            services,
            allow_from,
        } => {
            let owner = auth.users().user(&user).await?;
            let name = TokenName::parse(&name)?;
            let expiry = lifetime.map_or(Expiry::Default, |l| Expiry::Lifetime(l.into()));
            let scopes = (!scopes.is_empty()).then_some(scopes.as_slice());
            let grants = Grants::from_request(scopes, Some(&services), Some(&allow_from))?;
            let created = auth
                .tokens()
                .create_token(&Actor::command_line(), &owner, &name, expiry, grants)
                .await?;
            println!("{}", created.secret.expose());
        }
        TokenCommand::List {
            user: None,
            expiring: true,
        } => {
            let expiring = auth.tokens().expiring_tokens().await?;
            let within = auth.settings().tokens.warn_before.0;
            if expiring.is_empty() {
                println!("no token expires within {within:#}");
                return Ok(());
            }
            println!("{:<32} {:<32} expires", "user", "name");
            for (owner, t) in &expiring {
                let at = t.expires_at.map(day).unwrap_or_default();
                println!("{owner:<32} {:<32} {at}", t.name);
            }
            // Exit code 1 through the usual error path, which closes the database first
            // (`process::exit` would leave its write-ahead log behind).
            bail!("{} token(s) expire within {within:#}", expiring.len());
        }
        TokenCommand::List { user, .. } => {
            let user = user.context("--user or --expiring")?;
            let owner = auth.users().user(&user).await?;
            let now = auth.now();
            println!(
                "{:<32} {:<20} {:<28} {:<20} access",
                "name", "created", "expires", "last used"
            );
            for t in auth.tokens().list_tokens(&owner).await? {
                let expires = match t.expires_at {
                    None => "never".to_owned(),
                    Some(at) if at <= now => format!("{} (expired)", day(at)),
                    Some(at) => day(at),
                };
                let used = t.last_used_at.map_or_else(|| "never".to_owned(), day);
                let access = t.grants.as_ref().map_or_else(
                    || "api proxy; any service; from anywhere".to_owned(),
                    |g| {
                        let or_any = |l: Vec<String>, any: &str| match l.is_empty() {
                            true => any.to_owned(),
                            false => l.join(" "),
                        };
                        format!(
                            "{}; {}; {}",
                            g.scopes().join(" "),
                            or_any(g.services(), "any service"),
                            or_any(
                                g.allow_from().iter().map(|a| format!("from {a}")).collect(),
                                "from anywhere"
                            )
                        )
                    },
                );
                println!(
                    "{:<32} {:<20} {:<28} {used:<20} {access}",
                    t.name,
                    day(t.created_at),
                    expires
                );
            }
        }
        TokenCommand::Rotate {
            user,
            name,
            lifetime,
            grace,
        } => {
            let owner = auth.users().user(&user).await?;
            let grace = match grace {
                Some(grace) => {
                    Duration::parse(&grace).map_err(|e| anyhow::anyhow!("--grace: {e}"))?
                }
                None => Duration(jiff::SignedDuration::ZERO),
            };
            let expiry = lifetime.map_or(Expiry::Default, |l| Expiry::Lifetime(l.into()));
            let rotated = auth
                .tokens()
                .rotate_token(&Actor::command_line(), &owner, &name, expiry, grace.0)
                .await?;
            println!("{}", rotated.secret.expose());
        }
        TokenCommand::Delete { user, name } => {
            let owner = auth.users().user(&user).await?;
            auth.tokens()
                .delete_token(&Actor::command_line(), &owner, &name)
                .await?;
            println!("deleted token `{}` of `{}`", name.trim(), owner.user_id);
        }
    }
    Ok(())
}

fn day(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%MZ").to_string()
}

/// A password piped on standard input, or a generated one to print when stdin is a terminal.
fn new_password() -> anyhow::Result<(NewPassword, Option<String>)> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let generated = password::generate();
        return Ok((NewPassword::parse_plain(&generated)?, Some(generated)));
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        bail!("no password on standard input: pipe one in, or run from a terminal to generate one");
    }
    Ok((NewPassword::parse_plain(line)?, None))
}
