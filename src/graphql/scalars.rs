//! `Object` (credentials) and `JSON`: CloudBeaver's free-form types as juniper can carry them.

use std::collections::BTreeMap;

use juniper::{
    ArcStr, ExecutionResult, Executor, FieldError, FromInputValue, GraphQLInputObject, GraphQLType,
    GraphQLValue, GraphQLValueAsync, InputValue, ParseError, ParseScalarResult, ParseScalarValue,
    Registry, ScalarToken, ScalarValue, Selection, Value, arcstr, macros::reflect,
    marker::IsOutputType, meta::MetaType,
};

// CloudBeaver declares `Object` as a scalar of any JSON; juniper takes no object value for a
// scalar, so here it is an input object with the fields the providers read (see API.md).
/// Credentials: `{token}` for provider `token`, `{user, password}` for provider `local`.
#[derive(Debug, Default, GraphQLInputObject)]
#[graphql(name = "Object")]
pub struct Credentials {
    /// An API token, for the `token` provider.
    pub token: Option<String>,
    /// A user id, for the `local` provider.
    pub user: Option<String>,
    /// A password or its upper-case hex MD5, for the `local` provider.
    pub password: Option<String>,
}

/// A JSON object of strings; an output only, where CloudBeaver returns `Object`.
#[derive(Debug, Clone, Default)]
pub struct Json(pub BTreeMap<String, String>);

impl<S: ScalarValue> GraphQLType<S> for Json {
    fn name(_: &()) -> Option<ArcStr> {
        Some(arcstr::literal!("JSON"))
    }

    fn meta(info: &(), registry: &mut Registry<S>) -> MetaType<S> {
        registry
            .build_scalar_type::<Self>(info)
            .description("Any JSON value; returned where CloudBeaver returns `Object`.")
            .into_meta()
    }
}

impl<S: ScalarValue> GraphQLValue<S> for Json {
    type Context = ();
    type TypeInfo = ();

    fn type_name(&self, info: &()) -> Option<ArcStr> {
        <Self as GraphQLType<S>>::name(info)
    }

    fn resolve(
        &self,
        _: &(),
        _: Option<&[Selection<S>]>,
        _: &Executor<(), S>,
    ) -> ExecutionResult<S> {
        let mut object = juniper::Object::with_capacity(self.0.len());
        for (key, value) in &self.0 {
            object.add_field(key.as_str(), Value::scalar(value.clone()));
        }
        Ok(Value::Object(object))
    }
}

impl<S: ScalarValue + Send + Sync> GraphQLValueAsync<S> for Json {
    fn resolve_async<'a>(
        &'a self,
        info: &'a (),
        selection_set: Option<&'a [Selection<S>]>,
        executor: &'a Executor<(), S>,
    ) -> juniper::BoxFuture<'a, ExecutionResult<S>> {
        let value = self.resolve(info, selection_set, executor);
        Box::pin(async move { value })
    }
}

impl<S: ScalarValue> IsOutputType<S> for Json {}

impl<S: ScalarValue> FromInputValue<S> for Json {
    type Error = FieldError<S>;

    fn from_input_value(_: &InputValue<S>) -> Result<Self, Self::Error> {
        Err(FieldError::from("JSON is an output type here"))
    }
}

impl<S: ScalarValue> ParseScalarValue<S> for Json {
    fn from_str(_: ScalarToken<'_>) -> ParseScalarResult<S> {
        Err(ParseError::ExpectedScalarError(
            "JSON is an output type here",
        ))
    }
}

impl<S> reflect::BaseType<S> for Json {
    const NAME: reflect::Type = "JSON";
}

impl<S> reflect::BaseSubTypes<S> for Json {
    const NAMES: reflect::Types = &[<Self as reflect::BaseType<S>>::NAME];
}

impl<S> reflect::WrappedType<S> for Json {
    const VALUE: reflect::WrappedValue = 1;
}
