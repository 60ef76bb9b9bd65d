//! The integration tests: the real server over HTTP, each with its own database: a SQLite
//! file (`api`), or a schema of a PostgreSQL cluster the run starts (`api_postgres`, the same
//! folder through a symbolic link).

mod admin;
mod audit;
mod binary;
mod cache;
mod commands;
mod crash;
mod deploy;
mod devices;
mod first_start;
mod floods;
mod forward_auth;
mod guesses;
mod hardening;
mod helpers;
mod http;
mod injection;
mod login;
mod logs;
mod metrics;
mod nodes;
mod notify;
mod postgres;
mod proxy;
mod revoke;
mod rotation;
mod scopes;
mod session_list;
mod sessions;
mod store;
mod tls;
mod tokens;
mod users;
