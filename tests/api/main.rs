//! The integration tests: the real server over HTTP, each with its own SQLite file.

mod admin;
mod audit;
mod binary;
mod cache;
mod commands;
mod crash;
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
mod notify;
mod proxy;
mod revoke;
mod rotation;
mod scopes;
mod session_list;
mod sessions;
mod store;
mod tokens;
mod users;
