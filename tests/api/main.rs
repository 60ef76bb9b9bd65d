//! The integration tests: the real server over HTTP, each with its own SQLite file.

mod binary;
mod helpers;
mod http;
mod login;
mod sessions;
mod store;
mod tokens;
mod users;
