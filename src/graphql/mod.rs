//! The GraphQL schema: thin resolvers that check the caller and call `auth`.

pub mod context;
mod mutation;
mod query;
pub mod scalars;
pub mod types;

use juniper::{EmptySubscription, RootNode};

pub use context::{Context, CookieChange};
pub use mutation::Mutation;
pub use query::Query;

pub type Schema = RootNode<Query, Mutation, EmptySubscription<Context>>;

/// Builds the schema once; the server shares it between requests.
pub fn schema(introspection: bool) -> Schema {
    let schema = Schema::new(Query, Mutation, EmptySubscription::new());
    if introspection {
        schema
    } else {
        schema.disable_introspection()
    }
}
