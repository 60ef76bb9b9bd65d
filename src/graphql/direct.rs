//! `authLogin` without juniper's executor.
//!
//! Login scripts send one document thousands of times: a single `authLogin` asking for a few
//! plain fields (the reference page's `{ authId userTokens { userId } authStatus }`). juniper's
//! asynchronous execution of it cost about a quarter of a token login's CPU (BENCHMARKS.md), most
//! of it in boxed futures and maps for five fields. A document of that shape gets a [`Plan`] when
//! it is first validated: the plan takes the arguments as juniper would, calls the resolver's own
//! function ([`query::login`]) and builds the `Value` juniper would build. Anything else (other
//! fields, fragments, directives, variables juniper refuses) runs through juniper as before.
//!
//! Three items this module uses are public in juniper 0.18.0 but marked `#[doc(hidden)]`, so
//! juniper does not promise to keep them:
//! - `juniper::parser::parse_document_source`: the document parsed once, for the plan;
//! - `juniper::validation::validate_input_values`: the variables checked as juniper checks them;
//! - `juniper::ExecutionError::new`: a field error placed where juniper would place it.
//!
//! `Cargo.toml` pins juniper to `=0.18.0` for that reason, and the API test that sends each
//! login document both ways and compares the answers byte for byte shows whether an upgrade
//! changed what they do. Upgrade juniper on purpose, with that test.

use std::borrow::Cow;

use juniper::{
    DefaultScalarValue, Definition, ExecutionError, FromInputValue, GraphQLError, ID, InputValue,
    IntoFieldError as _, Object, OperationType, Selection, Spanning, ToInputValue, Value,
    Variables,
    meta::MetaType,
    parser::{SourcePosition, parse_document_source},
    validation::validate_input_values,
};

use super::{Context, Schema, query, scalars::Credentials, types::AuthInfo};

type Operation<'a> = juniper::Operation<'a, DefaultScalarValue>;

/// What an execution gives, as juniper's `ValidatedOperation::execute` gives it.
pub type Outcome = Result<(Value, Vec<ExecutionError<DefaultScalarValue>>), GraphQLError>;

/// How to run one validated `authLogin` document directly.
pub struct Plan<'a> {
    /// The operation, for its variables: their types and default values.
    operation: Spanning<Operation<'a>>,
    /// The field's name in the answer (its alias or `authLogin`) and where it starts, for errors.
    key: &'a str,
    at: SourcePosition,
    arguments: Vec<(&'a str, InputValue)>,
    fields: Vec<(&'a str, AuthField<'a>)>,
    /// The operation's variables, when each is of a kind whose values the plan can check
    /// itself (see [`Plan::surely_valid`]).
    quick: Option<Vec<QuickVariable<'a>>>,
}

/// A variable of a named type (not a list) that values can be checked against without juniper.
struct QuickVariable<'a> {
    name: &'a str,
    non_null: bool,
    /// Non-null and without a default value: it must be sent.
    required: bool,
    kind: QuickKind,
}

enum QuickKind {
    /// `String` or `ID`: a string is surely right (`ID` also takes an integer, left to juniper).
    Text,
    Boolean,
    /// An input object whose fields are all nullable `String`s, by name.
    TextFields(Vec<String>),
}

enum AuthField<'a> {
    Typename,
    RedirectLink,
    AuthId,
    AuthStatus,
    UserTokens(Vec<(&'a str, TokenField)>),
}

enum TokenField {
    Typename,
    AuthProvider,
    AuthConfiguration,
    LoginTime,
    UserId,
    DisplayName,
    Message,
}

impl<'a> Plan<'a> {
    /// A plan for operation `name` of `document`, which juniper has validated, when it is a single
    /// `authLogin` whose answer holds only plain fields.
    pub fn new(schema: &Schema, document: &'a str, name: Option<&str>) -> Option<Self> {
        if !document.contains("authLogin") {
            return None;
        }
        let parsed = parse_document_source(document, &schema.schema).ok()?;
        let mut operations = parsed.into_iter().filter_map(|d| match d {
            Definition::Operation(operation) => Some(operation),
            Definition::Fragment(_) => None,
        });
        let operation = match name {
            Some(name) => operations.find(|o| o.item.name.is_some_and(|n| n.item == name))?,
            None => operations.next().filter(|_| operations.next().is_none())?,
        };
        let op = &operation.item;
        if op.operation_type != OperationType::Query || has_directives(&op.directives) {
            return None;
        }
        let [Selection::Field(field)] = op.selection_set.as_slice() else {
            return None;
        };
        let f = &field.item;
        if f.name.item != "authLogin" || has_directives(&f.directives) {
            return None;
        }
        let arguments = f.arguments.as_ref().map_or_else(Vec::new, |a| {
            a.item
                .items
                .iter()
                .map(|(name, value)| (name.item, value.item.clone()))
                .collect()
        });
        let fields = plain_fields(f.selection_set.as_deref()?, |name, selection| {
            Some(match name {
                "__typename" => AuthField::Typename,
                "redirectLink" => AuthField::RedirectLink,
                "authId" => AuthField::AuthId,
                "authStatus" => AuthField::AuthStatus,
                "userTokens" => {
                    AuthField::UserTokens(plain_fields(selection?, |name, _| token_field(name))?)
                }
                _ => return None,
            })
        })?;
        let key = f.alias.as_ref().unwrap_or(&f.name).item;
        let at = field.span.start;
        let quick = quick_variables(schema, &operation.item);
        Some(Self {
            operation,
            key,
            at,
            arguments,
            fields,
            quick,
        })
    }

    /// Whether juniper's check of the variables against the operation (`validate_input_values`)
    /// would surely find nothing wrong: each is of a kind [`QuickKind`] covers and its value (or
    /// its absence) is one such a variable takes. `false` says nothing: juniper then checks.
    /// That check took 2 % of a token login's CPU under load (BENCHMARKS.md).
    fn surely_valid(&self, variables: &Variables) -> bool {
        self.quick.as_ref().is_some_and(|quick| {
            quick.iter().all(|v| match variables.get(v.name) {
                None => !v.required,
                Some(InputValue::Null) => !v.non_null,
                Some(value) => v.kind.takes(value),
            })
        })
    }

    /// Runs the login, or gives `None` before doing anything when juniper must run the document:
    /// variables it refuses, or arguments it would not convert.
    pub async fn execute(
        &self,
        schema: &Schema,
        variables: &Variables,
        ctx: &Context,
    ) -> Option<Outcome> {
        if !self.surely_valid(variables)
            && !validate_input_values(variables, &self.operation, &schema.schema).is_empty()
        {
            return None;
        }
        let variables = self.with_default_values(variables);
        let mut provider = None;
        let mut credentials = None;
        let mut force_sessions_logout = None;
        for (name, value) in &self.arguments {
            // An argument given a variable that was not sent is left out, as juniper leaves it.
            let Some(value) = value.clone().into_const(&variables) else {
                continue;
            };
            match *name {
                "provider" => provider = Some(ID::from_input_value(&value).ok()?),
                "credentials" => {
                    credentials = Option::<Credentials>::from_input_value(&value).ok()?
                }
                "forceSessionsLogout" => {
                    force_sessions_logout = Option::<bool>::from_input_value(&value).ok()?;
                }
                "configuration" => drop(Option::<ID>::from_input_value(&value).ok()?),
                "linkUser" => drop(Option::<bool>::from_input_value(&value).ok()?),
                _ => return None,
            }
        }
        let provider = provider?;
        let outcome = match query::login(ctx, &provider, credentials, force_sessions_logout).await {
            Ok(info) => {
                let mut data = Object::with_capacity(1);
                data.add_field(self.key, self.auth_info(&info));
                (Value::Object(data), Vec::new())
            }
            // `AuthInfo!` cannot be null, so its error leaves no data at all.
            Err(e) => (
                Value::Null,
                vec![ExecutionError::new(
                    self.at,
                    &[self.key],
                    e.into_field_error(),
                )],
            ),
        };
        Some(Ok(outcome))
    }

    /// The variables with the operation's default values for those not sent, as juniper does.
    fn with_default_values<'v>(&self, variables: &'v Variables) -> Cow<'v, Variables> {
        let mut variables = Cow::Borrowed(variables);
        let Some(definitions) = &self.operation.item.variables_definition else {
            return variables;
        };
        for (name, definition) in &definitions.item.items {
            if let Some(default) = &definition.default_value
                && !variables.contains_key(name.item)
            {
                variables
                    .to_mut()
                    .insert(name.item.into(), default.item.clone());
            }
        }
        variables
    }

    fn auth_info(&self, info: &AuthInfo) -> Value {
        let mut object = Object::with_capacity(self.fields.len());
        for (key, field) in &self.fields {
            let value = match field {
                AuthField::Typename => Value::scalar("AuthInfo".to_owned()),
                AuthField::RedirectLink => output(&info.redirect_link),
                AuthField::AuthId => output(&info.auth_id),
                AuthField::AuthStatus => output(&info.auth_status),
                AuthField::UserTokens(fields) => match &info.user_tokens {
                    None => Value::Null,
                    Some(tokens) => Value::list(
                        tokens
                            .iter()
                            .map(|token| {
                                let mut object = Object::with_capacity(fields.len());
                                for (key, field) in fields {
                                    object.add_field(*key, token_value(token, field));
                                }
                                Value::Object(object)
                            })
                            .collect(),
                    ),
                },
            };
            object.add_field(*key, value);
        }
        Value::Object(object)
    }
}

/// The operation's variables as [`QuickVariable`]s, or `None` when one is of another kind.
fn quick_variables<'a>(
    schema: &Schema,
    operation: &Operation<'a>,
) -> Option<Vec<QuickVariable<'a>>> {
    let Some(definitions) = &operation.variables_definition else {
        return Some(Vec::new());
    };
    definitions
        .item
        .iter()
        .map(|(name, definition)| {
            let ty = &definition.var_type.item;
            let non_null = match ty.modifiers().len() {
                0 => false,
                1 if ty.is_non_null() => true,
                _ => return None,
            };
            let kind = match ty.innermost_name() {
                "String" | "ID" => QuickKind::Text,
                "Boolean" => QuickKind::Boolean,
                other => match schema.schema.concrete_type_by_name(other)? {
                    MetaType::InputObject(object) if !object.is_one_of => QuickKind::TextFields(
                        object
                            .input_fields
                            .iter()
                            .map(|field| {
                                let ty = &field.arg_type;
                                (ty.modifiers().is_empty() && ty.innermost_name() == "String")
                                    .then(|| field.name.to_string())
                            })
                            .collect::<Option<_>>()?,
                    ),
                    _ => return None,
                },
            };
            Some(QuickVariable {
                name: name.item,
                non_null,
                required: non_null && definition.default_value.is_none(),
                kind,
            })
        })
        .collect()
}

impl QuickKind {
    /// Whether a value other than null is surely one of this kind.
    fn takes(&self, value: &InputValue) -> bool {
        let text = |v: &InputValue| matches!(v, InputValue::Scalar(DefaultScalarValue::String(_)));
        match self {
            Self::Text => text(value),
            Self::Boolean => matches!(value, InputValue::Scalar(DefaultScalarValue::Boolean(_))),
            Self::TextFields(names) => match value {
                InputValue::Object(fields) => fields.iter().all(|(name, value)| {
                    names.contains(&name.item)
                        && (matches!(value.item, InputValue::Null) || text(&value.item))
                }),
                _ => false,
            },
        }
    }
}

/// A field of `UserAuthToken` the plan answers: its leaves (validation has made sure they have
/// no selection of their own).
fn token_field(name: &str) -> Option<TokenField> {
    Some(match name {
        "__typename" => TokenField::Typename,
        "authProvider" => TokenField::AuthProvider,
        "authConfiguration" => TokenField::AuthConfiguration,
        "loginTime" => TokenField::LoginTime,
        "userId" => TokenField::UserId,
        "displayName" => TokenField::DisplayName,
        "message" => TokenField::Message,
        _ => return None,
    })
}

fn token_value(token: &super::types::UserAuthToken, field: &TokenField) -> Value {
    match field {
        TokenField::Typename => Value::scalar("UserAuthToken".to_owned()),
        TokenField::AuthProvider => output(&token.auth_provider),
        TokenField::AuthConfiguration => output(&token.auth_configuration),
        TokenField::LoginTime => output(&token.login_time),
        TokenField::UserId => output(&token.user_id),
        TokenField::DisplayName => output(&token.display_name),
        TokenField::Message => output(&token.message),
    }
}

/// The fields of a selection set, each by the name it has in the answer, when every selection is
/// a field without directives that `field` knows, and no two share a name in the answer (juniper
/// would merge those).
fn plain_fields<'a, T>(
    selection: &[Selection<'a>],
    field: impl Fn(&str, Option<&[Selection<'a>]>) -> Option<T>,
) -> Option<Vec<(&'a str, T)>> {
    let mut fields: Vec<(&'a str, T)> = Vec::with_capacity(selection.len());
    for selection in selection {
        let Selection::Field(f) = selection else {
            return None;
        };
        let f = &f.item;
        let key = f.alias.as_ref().unwrap_or(&f.name).item;
        if has_directives(&f.directives) || fields.iter().any(|(k, _)| *k == key) {
            return None;
        }
        fields.push((key, field(f.name.item, f.selection_set.as_deref())?));
    }
    Some(fields)
}

fn has_directives<T>(directives: &Option<Vec<T>>) -> bool {
    directives.as_ref().is_some_and(|d| !d.is_empty())
}

/// A leaf's value as juniper answers it: the scalar or enum name it gives as an input value.
fn output<T: ToInputValue>(value: &T) -> Value {
    match value.to_input_value() {
        InputValue::Scalar(scalar) => Value::Scalar(scalar),
        InputValue::Enum(name) => Value::scalar(name),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(document: &str, name: Option<&str>) -> bool {
        let schema = super::super::schema(&Default::default());
        super::super::validate(&schema, document, name)
            .unwrap()
            .unwrap_or_else(|e| panic!("{document} is not valid: {e}"));
        Plan::new(&schema, document, name).is_some()
    }

    #[test]
    fn login_documents_with_plain_fields_get_a_plan() {
        for document in [
            "query authLogin($credentials: Object) { authLogin(provider: \"token\", credentials: $credentials) { authId userTokens { userId } authStatus } }",
            "query ($token: String) { login: authLogin(provider: \"token\", credentials: {token: $token}) { __typename id: authId redirectLink userTokens { __typename authProvider authConfiguration loginTime userId displayName message } } }",
            "query ($p: ID! = \"local\", $c: Object, $f: Boolean) { authLogin(provider: $p, credentials: $c, forceSessionsLogout: $f, configuration: \"x\", linkUser: false) { authStatus } }",
        ] {
            assert!(planned(document, None), "{document}");
        }
        let two = "query A { authLogin(provider: \"token\") { authId } } query B { __typename }";
        assert!(planned(two, Some("A")));
        assert!(!planned(two, Some("B")));
    }

    fn variables(json: &str) -> Variables {
        crate::http::into_variables(Some(serde_json::from_str(json).unwrap()))
    }

    #[test]
    fn variables_taken_without_juniper_are_those_juniper_takes() {
        let schema = super::super::schema(&Default::default());
        let documents = [
            "query authLogin($credentials: Object) { authLogin(provider: \"token\", credentials: $credentials) { authId } }",
            "query ($p: ID! = \"local\", $c: Object!, $f: Boolean, $t: ID) { authLogin(provider: $p, credentials: $c, forceSessionsLogout: $f, configuration: $t) { authStatus } }",
            "query ($p: ID!, $c: Object = {token: \"x\"}, $f: Boolean!) { authLogin(provider: $p, credentials: $c, forceSessionsLogout: $f) { authStatus } }",
        ];
        let values = [
            r#"{}"#,
            r#"{"credentials": {"token": "abc"}}"#,
            r#"{"credentials": {"user": "ann", "password": "pw"}}"#,
            r#"{"credentials": {"user": "ann", "password": null}}"#,
            r#"{"credentials": {}}"#,
            r#"{"credentials": null}"#,
            r#"{"credentials": {"token": 7}}"#,
            r#"{"credentials": {"token": ["abc"]}}"#,
            r#"{"credentials": {"token": {"a": "b"}}}"#,
            r#"{"credentials": {"secret": "abc"}}"#,
            r#"{"credentials": "abc"}"#,
            r#"{"credentials": [{"token": "abc"}]}"#,
            r#"{"p": "local", "c": {"user": "ann"}}"#,
            r#"{"p": "local", "c": {"user": "ann"}, "f": true, "t": "x"}"#,
            r#"{"p": null, "c": {"user": "ann"}, "f": false}"#,
            r#"{"p": 1, "c": {"user": "ann"}, "f": false}"#,
            r#"{"p": "token", "c": null, "f": true}"#,
            r#"{"p": "token", "f": true}"#,
            r#"{"p": "token", "c": {"token": "abc"}}"#,
            r#"{"p": "token", "c": {"token": "abc"}, "f": "true"}"#,
            r#"{"p": "token", "c": {"token": "abc"}, "f": null}"#,
            r#"{"p": "token", "c": {"token": "abc"}, "f": true, "t": 2.5}"#,
            r#"{"p": "token", "c": {"token": "abc"}, "f": true, "unknown": [1]}"#,
        ];
        let mut quick = 0;
        for document in documents {
            super::super::validate(&schema, document, None)
                .unwrap()
                .unwrap();
            let plan = Plan::new(&schema, document, None).expect("a plan");
            for json in values {
                let variables = variables(json);
                let juniper_takes =
                    validate_input_values(&variables, &plan.operation, &schema.schema).is_empty();
                if plan.surely_valid(&variables) {
                    quick += 1;
                    assert!(juniper_takes, "{document} with {json}");
                }
            }
        }
        assert!(quick >= 15, "only {quick} taken without juniper");
        let reference = Plan::new(&schema, documents[0], None).unwrap();
        assert!(reference.surely_valid(&variables(values[1])));
    }

    #[test]
    fn other_shapes_are_left_to_juniper() {
        for document in [
            "{ authLogin(provider: \"token\") { authId } activeUser { userId } }",
            "{ authLogin(provider: \"token\") @include(if: true) { authId } }",
            "{ authLogin(provider: \"token\") { authId @skip(if: false) } }",
            "{ authLogin(provider: \"token\") { authId authId } }",
            "{ authLogin(provider: \"token\") { a: authId a: authId } }",
            "{ authLogin(provider: \"token\") { userTokens { origin { displayName } } } }",
            "{ authLogin(provider: \"token\") { ...F } } fragment F on AuthInfo { authId }",
            "{ authLogin(provider: \"token\") { ... on AuthInfo { authId } } }",
            "{ sessionState { valid } }",
        ] {
            assert!(!planned(document, None), "{document}");
        }
    }
}
