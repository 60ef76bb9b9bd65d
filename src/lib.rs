//! Lodge: a self-contained login and API-token server that speaks CloudBeaver's GraphQL API.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod graphql;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod scan;
pub mod store;
#[cfg(test)]
mod testing;
pub mod text;
pub mod tls;

pub use app::App;
pub use clock::Clock;
pub use config::Settings;
