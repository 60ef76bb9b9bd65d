//! The GraphQL schema: thin resolvers that check the caller and call `auth`.

mod answer;
mod cache;
pub mod context;
mod direct;
pub mod document;
mod mutation;
mod query;
pub mod scalars;
pub mod types;

use juniper::{EmptySubscription, GraphQLError, RootNode, ValidatedOperation};

use crate::config::GraphqlSettings;

pub use cache::{OperationCache, Prepared};
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

/// An operation of this schema that passed parsing and validation.
pub type Operation<'a> = ValidatedOperation<'a, Query, Mutation, EmptySubscription<Context>>;

/// A document juniper could not validate without panicking.
#[derive(Debug)]
pub struct ValidatorPanicked;

/// Parses and validates `query`, turning a panic inside juniper into an error.
///
/// juniper 0.18 panics ("Type not found in schema") on a variable of an unknown type that has a
/// default value, such as `query($c: Nope = 1) { __typename }`; found by the `request_body` fuzz
/// target. A panic must not take a worker down, so validation is guarded here.
pub fn validate<'a>(
    schema: &'a Schema,
    query: &'a str,
    operation_name: Option<&str>,
) -> Result<Result<Operation<'a>, GraphQLError>, ValidatorPanicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ValidatedOperation::new(query, operation_name, schema)
    }))
    .map_err(|_| ValidatorPanicked)
}

#[cfg(test)]
mod tests {
    /// CloudBeaver's API puts some calls that change things under `Query`: the documentation
    /// explorer must say so before a person runs one, and every root field says what it does.
    #[test]
    fn every_root_field_is_described_and_queries_that_change_things_say_so() {
        let sdl = super::schema(&Default::default()).as_sdl();
        let changing = [
            "authLogin",
            "authLogout",
            "authLogoutExtended",
            "authChangeLocalPassword",
            "createUser",
            "deleteUser",
            "setUserCredentials",
            "enableUser",
            "adminUnlockUser",
            "setUserAuthRole",
        ];
        let mut description = String::new();
        let mut inside = false;
        let mut seen = 0;
        for line in sdl.lines() {
            if line.starts_with("type Query {") || line.starts_with("type Mutation {") {
                inside = true;
                continue;
            }
            if line.starts_with('}') {
                inside = false;
            }
            if !inside {
                continue;
            }
            let field = line
                .strip_prefix("  ")
                .filter(|f| f.starts_with(|c: char| c.is_ascii_alphabetic()));
            match field {
                Some(field) => {
                    let name = field.split(['(', ':']).next().unwrap();
                    assert!(
                        !description.trim().is_empty(),
                        "`{name}` has no description"
                    );
                    if changing.contains(&name) {
                        seen += 1;
                        assert!(
                            description.contains("Changes:"),
                            "`{name}` changes things and must say so: {description}"
                        );
                    }
                    description.clear();
                }
                None => description.push_str(line),
            }
        }
        assert_eq!(seen, changing.len(), "each listed query was found");
    }
}
