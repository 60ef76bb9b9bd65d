//! Entry points for the fuzz targets in `fuzz/`, also replayed over the committed corpus by
//! `tests/fuzz_corpus.rs`: each must never panic, whatever the input.

use std::sync::{Arc, OnceLock};

use crate::{
    Clock, Settings,
    auth::{Auth, Caller, secret::ApiTokenSecret},
    config::GraphqlSettings,
    graphql::{self, Context, RequestInfo, Schema},
    store::Store,
};

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| graphql::schema(&GraphqlSettings::default()))
}

/// The handler's cache: validation, then for `authLogin` documents the direct path's plan.
fn operations() -> &'static graphql::OperationCache {
    static OPERATIONS: OnceLock<graphql::OperationCache> = OnceLock::new();
    OPERATIONS.get_or_init(|| {
        graphql::OperationCache::new(Arc::new(graphql::schema(&GraphqlSettings::default())))
    })
}

/// The token parser: anything it accepts has the token's shape and parses again to the same.
pub fn token_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = ApiTokenSecret::parse(text) {
        let shown = token.expose();
        assert_eq!(shown.len(), crate::auth::secret::TOKEN_LEN);
        assert!(shown.starts_with(crate::auth::secret::TOKEN_PREFIX));
        let again = ApiTokenSecret::parse(shown).expect("an accepted token parses again");
        assert_eq!(again.digest(), token.digest());
    }
}

/// The request body: parsed as the `/api/gql` handler does, then validated against the schema
/// and planned, through the handler's operation cache.
pub fn request_body(data: &[u8]) {
    if let Ok(mut request) = crate::http::parse_request(data) {
        let _ = operations().get(&request.query, request.operation_name.as_deref());
        let _ = crate::http::take_variables(&mut request);
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime for fuzzing")
    })
}

/// A context whose provider check fails before any login or database work.
fn context() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        // Nothing here reaches the database: a scratch one is opened and its folder removed at
        // once (the open files live on), so nothing is left behind.
        let dir = std::env::temp_dir().join(format!("lodge-fuzz-{}", std::process::id()));
        let store = Store::open(&dir.join("scratch.db")).expect("a scratch database");
        let _ = std::fs::remove_dir_all(&dir);
        let auth = Auth::new(store, Clock::system(), Arc::new(Settings::default()));
        Context::new(auth, Caller::Anonymous, RequestInfo::default())
    })
}

/// `credentials`, CloudBeaver's `Object`: as a literal inside `authLogin`, and as a JSON variable
/// coerced by a real execution (with an unknown provider, so it stops before any login), by
/// juniper and by the direct path.
pub fn credentials(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let query =
        format!("{{ authLogin(provider: \"token\", credentials: {text}) {{ authStatus }} }}");
    let _ = graphql::validate(schema(), &query, None);
    let Ok(value) = serde_json::from_str::<juniper::InputValue>(text) else {
        return;
    };
    let with_variable =
        "query($c: Object) { authLogin(provider: \"fuzz\", credentials: $c) { authStatus } }";
    let operation = juniper::ValidatedOperation::new(with_variable, None, schema())
        .expect("the fixed operation is valid");
    let mut variables = juniper::Variables::new();
    variables.insert("c".to_owned(), value);
    let _ = runtime().block_on(operation.execute(&variables, context()));
    if let Ok(Ok(direct)) = operations().get(with_variable, None) {
        let _ = runtime().block_on(direct.execute(&variables, context()));
    }
}
