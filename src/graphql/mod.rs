//! The GraphQL schema: thin resolvers that check the caller and call `auth`.

pub mod context;
mod mutation;
mod query;
pub mod scalars;
pub mod types;

use juniper::{EmptySubscription, RootNode};

use crate::config::GraphqlSettings;

pub use context::{Context, CookieChange, RequestInfo};
pub use mutation::Mutation;
pub use query::Query;

pub type Schema = RootNode<Query, Mutation, EmptySubscription<Context>>;

/// Builds the schema once with the configured limits; the server shares it between requests.
pub fn schema(settings: &GraphqlSettings) -> Schema {
    let schema = Schema::new(Query, Mutation, EmptySubscription::new())
        .limit_depth(settings.max_depth)
        .limit_tokens(settings.max_tokens)
        .limit_fields(settings.max_fields);
    if settings.introspection {
        schema
    } else {
        schema.disable_introspection()
    }
}
