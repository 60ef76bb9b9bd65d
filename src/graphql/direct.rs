//! `authLogin` without juniper's executor.
//!
//! Login scripts send one document thousands of times: a single `authLogin` asking for a few
//! plain fields (the reference page's `{ authId userTokens { userId } authStatus }`). juniper's
//! asynchronous execution of it cost a sixth to a quarter of a token login's CPU (BENCHMARKS.md),
//! most of it in boxed futures and maps for five fields. A document of that shape gets a [`Plan`]
//! when it is first validated: the plan takes the arguments as juniper would, calls the
//! resolver's own function ([`query::login`]) and builds the answer juniper would build. Anything
//! else (other fields, fragments, directives, variables of other kinds, variables it cannot
//! tell juniper would take, escapes in strings) runs through juniper as before.
//!
//! Only juniper's public API is used: the document is parsed again for the plan with
//! `graphql-parser` (already in the build as juniper's schema printer), the input objects are
//! read from the printed schema (`RootNode::as_document`), and a failed login's error is
//! written as juniper writes it ([`super::answer`]). The API test that sends each login document both ways
//! and compares the answers byte for byte shows whether a juniper upgrade changed any of that.

use std::{borrow::Cow, collections::HashMap};

use graphql_parser::{
    Pos,
    query::{self as ast, Definition, OperationDefinition, Selection},
    schema::{self as sdl, TypeDefinition},
};
use juniper::{
    DefaultScalarValue, FromInputValue, ID, InputValue, IntoFieldError as _, Object, Spanning,
    ToInputValue, Value, Variables,
};

use super::{
    Context, Schema,
    answer::{Direct, Location},
    query,
    scalars::Credentials,
    types::AuthInfo,
};

type Document<'a> = ast::Document<'a, &'a str>;
type Field<'a> = ast::Field<'a, &'a str>;
type AstValue<'a> = ast::Value<'a, &'a str>;
type AstType<'a> = ast::Type<'a, &'a str>;

/// The schema's input objects whose fields are all nullable `String`s, by name: the kinds of
/// variable whose values a plan checks itself. Read once, from the schema juniper prints.
pub struct Inputs(HashMap<String, Vec<String>>);

impl Inputs {
    pub fn of(schema: &Schema) -> Self {
        let document = schema.as_document();
        fn text<'a>(ty: &sdl::Type<'a, &'a str>) -> bool {
            matches!(ty, sdl::Type::NamedType("String"))
        }
        Self(
            document
                .definitions
                .iter()
                .filter_map(|definition| match definition {
                    sdl::Definition::TypeDefinition(TypeDefinition::InputObject(object))
                        if object.directives.is_empty()
                            && object.fields.iter().all(|f| text(&f.value_type)) =>
                    {
                        Some((
                            object.name.to_owned(),
                            object.fields.iter().map(|f| f.name.to_owned()).collect(),
                        ))
                    }
                    _ => None,
                })
                .collect(),
        )
    }
}

/// How to run one validated `authLogin` document directly.
pub struct Plan<'a> {
    variables: Vec<VariableDefinition<'a>>,
    /// The field's name in the answer (its alias or `authLogin`) and where it starts, for errors.
    key: &'a str,
    at: Location,
    arguments: Vec<(&'a str, InputValue)>,
    fields: Vec<(&'a str, AuthField<'a>)>,
}

/// A variable of the operation: a named type (not a list) whose values can be checked without
/// juniper.
struct VariableDefinition<'a> {
    name: &'a str,
    non_null: bool,
    default: Option<InputValue>,
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
    /// `authLogin` whose answer holds only plain fields and whose variables are of kinds
    /// [`QuickKind`] covers.
    pub fn new(inputs: &Inputs, document: &'a str, name: Option<&str>) -> Option<Self> {
        // Escapes and block strings are left to juniper, whose reading of them the plan would
        // have to match character for character.
        if !document.contains("authLogin") || document.contains('\\') || document.contains("\"\"\"")
        {
            return None;
        }
        let parsed: Document<'a> = graphql_parser::parse_query(document).ok()?;
        let mut operations = parsed.definitions.into_iter().filter_map(|d| match d {
            Definition::Operation(operation) => Some(operation),
            Definition::Fragment(_) => None,
        });
        let operation = match name {
            Some(name) => operations.find(|o| operation_name(o) == Some(name))?,
            None => operations.next().filter(|_| operations.next().is_none())?,
        };
        let (variables, selection) = match operation {
            OperationDefinition::SelectionSet(selection) => (Vec::new(), selection),
            OperationDefinition::Query(query) if query.directives.is_empty() => {
                (query.variable_definitions, query.selection_set)
            }
            _ => return None,
        };
        let [Selection::Field(field)] = selection.items.as_slice() else {
            return None;
        };
        if field.name != "authLogin" || !field.directives.is_empty() {
            return None;
        }
        let arguments = field
            .arguments
            .iter()
            .map(|(name, value)| Some((*name, input_value(value)?)))
            .collect::<Option<_>>()?;
        let fields = plain_fields(&field.selection_set.items, |name, selection| {
            Some(match name {
                "__typename" => AuthField::Typename,
                "redirectLink" => AuthField::RedirectLink,
                "authId" => AuthField::AuthId,
                "authStatus" => AuthField::AuthStatus,
                "userTokens" => {
                    AuthField::UserTokens(plain_fields(selection, |name, _| token_field(name))?)
                }
                _ => return None,
            })
        })?;
        let key = field.alias.unwrap_or(field.name);
        let at = location(document, field)?;
        let variables = variables
            .iter()
            .map(|definition| variable(inputs, definition))
            .collect::<Option<_>>()?;
        Some(Self {
            variables,
            key,
            at,
            arguments,
            fields,
        })
    }

    /// Whether juniper's check of the variables against the operation would surely find nothing
    /// wrong: each value (or its absence) is one its variable's kind takes. `false` says nothing:
    /// juniper then runs the document and checks.
    fn surely_valid(&self, variables: &Variables) -> bool {
        self.variables.iter().all(|v| match variables.get(v.name) {
            None => !v.non_null || v.default.is_some(),
            Some(InputValue::Null) => !v.non_null,
            Some(value) => v.kind.takes(value),
        })
    }

    /// Runs the login, or gives `None` before doing anything when juniper must run the document:
    /// variables it may refuse, or arguments it would not convert.
    pub async fn execute(&self, variables: &Variables, ctx: &Context) -> Option<Direct> {
        if !self.surely_valid(variables) {
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
        Some(
            match query::login(ctx, &provider, credentials, force_sessions_logout).await {
                Ok(info) => {
                    let mut data = Object::with_capacity(1);
                    data.add_field(self.key, self.auth_info(&info));
                    Direct::Data(Value::Object(data))
                }
                Err(e) => Direct::Failed {
                    error: e.into_field_error(),
                    key: self.key.to_owned(),
                    at: self.at,
                },
            },
        )
    }

    /// The variables with the operation's default values for those not sent, as juniper does.
    fn with_default_values<'v>(&self, variables: &'v Variables) -> Cow<'v, Variables> {
        let mut variables = Cow::Borrowed(variables);
        for definition in &self.variables {
            if let Some(default) = &definition.default
                && !variables.contains_key(definition.name)
            {
                variables
                    .to_mut()
                    .insert(definition.name.into(), default.clone());
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

fn operation_name<'a>(operation: &OperationDefinition<'a, &'a str>) -> Option<&'a str> {
    match operation {
        OperationDefinition::SelectionSet(_) => None,
        OperationDefinition::Query(o) => o.name,
        OperationDefinition::Mutation(o) => o.name,
        OperationDefinition::Subscription(o) => o.name,
    }
}

/// A variable's definition, when it is of a named type (not a list) of a kind [`QuickKind`]
/// covers.
fn variable<'a>(
    inputs: &Inputs,
    definition: &ast::VariableDefinition<'a, &'a str>,
) -> Option<VariableDefinition<'a>> {
    let (name, non_null) = match &definition.var_type {
        AstType::NamedType(name) => (*name, false),
        AstType::NonNullType(inner) => match inner.as_ref() {
            AstType::NamedType(name) => (*name, true),
            _ => return None,
        },
        AstType::ListType(_) => return None,
    };
    let kind = match name {
        "String" | "ID" => QuickKind::Text,
        "Boolean" => QuickKind::Boolean,
        other => QuickKind::TextFields(inputs.0.get(other)?.clone()),
    };
    let default = match &definition.default_value {
        Some(value) => Some(input_value(value)?),
        None => None,
    };
    Some(VariableDefinition {
        name: definition.name,
        non_null,
        default,
        kind,
    })
}

/// A value of the document as juniper reads it, or `None` for one whose reading might differ
/// (an integer beyond juniper's `Int`).
fn input_value(value: &AstValue<'_>) -> Option<InputValue> {
    Some(match value {
        AstValue::Variable(name) => InputValue::variable(name),
        AstValue::Int(number) => InputValue::scalar(i32::try_from(number.as_i64()?).ok()?),
        AstValue::Float(number) => InputValue::scalar(*number),
        AstValue::String(text) => InputValue::scalar(text.clone()),
        AstValue::Boolean(b) => InputValue::scalar(*b),
        AstValue::Null => InputValue::null(),
        AstValue::Enum(name) => InputValue::enum_value(name),
        AstValue::List(items) => {
            InputValue::list(items.iter().map(input_value).collect::<Option<_>>()?)
        }
        // graphql-parser keeps an object's fields sorted, juniper in the document's order:
        // only the names matter to the arguments read here.
        AstValue::Object(fields) => InputValue::parsed_object(
            fields
                .iter()
                .map(|(name, value)| {
                    Some((
                        Spanning::unlocated((*name).to_owned()),
                        Spanning::unlocated(input_value(value)?),
                    ))
                })
                .collect::<Option<_>>()?,
        ),
    })
}

/// Where `field` starts as juniper counts it, from graphql-parser's position of it, which counts
/// a tab as eight columns and a byte-order mark as none: the field's line is walked to the
/// column graphql-parser gives, counting characters. `None` where the two might disagree: a
/// carriage return anywhere before the field's line ends (graphql-parser ends a comment at one
/// as at a line feed), or a tab after a quote on the field's line before it (inside a string,
/// graphql-parser counts a tab as one column).
fn location(document: &str, field: &Field<'_>) -> Option<Location> {
    let Pos { line, column } = field.position;
    let start = match line {
        1 => 0,
        n => document.match_indices('\n').nth(n - 2)?.0 + 1,
    };
    let end = document[start..]
        .find('\n')
        .map_or(document.len(), |at| start + at);
    let text = &document[start..end];
    if document[..end].contains('\r') {
        return None;
    }
    let (mut counted, mut characters, mut quoted) = (1, 0, false);
    for (at, c) in text.char_indices() {
        if counted == column {
            let name = field.alias.unwrap_or(field.name);
            return text[at..].starts_with(name).then_some(Location {
                line,
                column: characters + 1,
            });
        }
        quoted |= c == '"';
        counted += match c {
            '\t' if quoted => return None,
            '\t' => 8,
            '\u{feff}' => 0,
            _ => 1,
        };
        characters += 1;
    }
    None
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
    selection: &[Selection<'a, &'a str>],
    field: impl Fn(&str, &[Selection<'a, &'a str>]) -> Option<T>,
) -> Option<Vec<(&'a str, T)>> {
    let mut fields: Vec<(&'a str, T)> = Vec::with_capacity(selection.len());
    for selection in selection {
        let Selection::Field(f) = selection else {
            return None;
        };
        let key = f.alias.unwrap_or(f.name);
        if !f.directives.is_empty() || fields.iter().any(|(k, _)| *k == key) {
            return None;
        }
        fields.push((key, field(f.name, &f.selection_set.items)?));
    }
    Some(fields)
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
    use std::sync::Arc;

    use juniper::GraphQLError;

    use super::*;

    fn schema() -> Schema {
        super::super::schema(&Default::default())
    }

    fn plan<'a>(schema: &Schema, document: &'a str, name: Option<&str>) -> Option<Plan<'a>> {
        super::super::validate(schema, document, name)
            .unwrap()
            .unwrap_or_else(|e| panic!("{document} is not valid: {e}"));
        Plan::new(&Inputs::of(schema), document, name)
    }

    fn planned(document: &str, name: Option<&str>) -> bool {
        plan(&schema(), document, name).is_some()
    }

    #[test]
    fn login_documents_with_plain_fields_get_a_plan() {
        for document in [
            "query authLogin($credentials: Object) { authLogin(provider: \"token\", credentials: $credentials) { authId userTokens { userId } authStatus } }",
            "query ($token: String) { login: authLogin(provider: \"token\", credentials: {token: $token}) { __typename id: authId redirectLink userTokens { __typename authProvider authConfiguration loginTime userId displayName message } } }",
            "query ($p: ID! = \"local\", $c: Object, $f: Boolean) { authLogin(provider: $p, credentials: $c, forceSessionsLogout: $f, configuration: \"x\", linkUser: false) { authStatus } }",
            "# a login\n\tquery ($c: Object) {\n\t\tauthLogin(provider: \"token\", credentials: $c) { authId }\n}",
            "{ authLogin(provider: \"token\", credentials: {token: \"lodge_x\"}) { authId } }",
        ] {
            assert!(planned(document, None), "{document}");
        }
        let two = "query A { authLogin(provider: \"token\") { authId } } query B { __typename }";
        assert!(planned(two, Some("A")));
        assert!(!planned(two, Some("B")));
    }

    /// A failed login's error is placed where juniper places the field's errors: found here by
    /// renaming the field to one the schema lacks, of the same length, and reading where
    /// juniper's validation says it is (at its name, which is where the field starts when it has
    /// no alias; `tests/api/login.rs` sends aliased ones).
    #[test]
    fn a_field_is_located_where_juniper_locates_it() {
        let schema = schema();
        let documents = [
            "{ authLogin(provider: \"token\") { authId } }",
            "query ($c: Object) {\n    authLogin(provider: \"token\", credentials: $c) { authId }\n}",
            "\u{feff}# a comment with ü\n\n\tquery ($c: Object) {\n\t\t authLogin(provider: \"token\", credentials: $c) { authId }\n}",
            "query ($c: Object) { authLogin(provider: \"tokén\", credentials: $c) { authId } }",
            "{ __typename, authLogin(provider: \"ü\") { authId } }",
            "{ \"\"\"a\"\"\" authLogin(provider: \"token\") { authId } }",
            "{\r\n  authLogin(provider: \"token\") { authId }\r\n}",
            "{ \t authLogin(provider: \"a\tb\") { authId } }",
            "{\t\"x\" authLogin(provider: \"token\") { authId } }",
        ];
        let mut located = 0;
        for document in documents {
            let Ok(parsed) = graphql_parser::parse_query::<&str>(document) else {
                continue;
            };
            let Some(Definition::Operation(operation)) = parsed.definitions.first() else {
                panic!("{document}");
            };
            let selection = match operation {
                OperationDefinition::SelectionSet(s) => s,
                OperationDefinition::Query(q) => &q.selection_set,
                _ => panic!("{document}"),
            };
            let Some(Selection::Field(field)) = selection
                .items
                .iter()
                .find(|s| matches!(s, Selection::Field(f) if f.name == "authLogin"))
            else {
                panic!("{document}");
            };
            let Some(at) = location(document, field) else {
                continue;
            };
            located += 1;
            let renamed = document.replace("authLogin", "authLogix");
            let Err(GraphQLError::ValidationError(errors)) =
                juniper::ValidatedOperation::new(&renamed, None, &schema)
            else {
                panic!("{renamed} passed validation");
            };
            let unknown = errors
                .iter()
                .find(|e| e.message().contains("authLogix"))
                .expect("the unknown field's error");
            let juniper = unknown.locations()[0];
            assert_eq!(
                at,
                Location {
                    line: juniper.line() + 1,
                    column: juniper.column() + 1
                },
                "{document:?}"
            );
        }
        assert!(located >= 5, "only {located} located");
    }

    fn variables(json: &str) -> Variables {
        crate::http::into_variables(Some(serde_json::from_str(json).unwrap()))
    }

    /// A context that logs in against a scratch database, which is removed at once.
    fn context() -> Context {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("scratch.db")).unwrap();
        let auth = crate::auth::Auth::new(
            store,
            crate::Clock::system(),
            Arc::new(crate::Settings::default()),
        );
        Context::new(auth, crate::auth::Caller::Anonymous, Default::default())
    }

    #[test]
    fn variables_taken_without_juniper_are_those_juniper_takes() {
        let schema = schema();
        let ctx = context();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
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
        let (mut quick, mut refused) = (0, 0);
        for document in documents {
            let plan = plan(&schema, document, None).expect("a plan");
            let operation = juniper::ValidatedOperation::new(document, None, &schema).unwrap();
            for json in values {
                let variables = variables(json);
                // juniper checks the variables before it runs anything.
                let juniper_takes = !matches!(
                    runtime.block_on(operation.execute(&variables, &ctx)),
                    Err(GraphQLError::ValidationError(_))
                );
                refused += usize::from(!juniper_takes);
                if plan.surely_valid(&variables) {
                    quick += 1;
                    assert!(juniper_takes, "{document} with {json}");
                }
            }
        }
        assert!(quick >= 15, "only {quick} taken without juniper");
        assert!(refused >= 15, "only {refused} refused by juniper");
        let reference = plan(&schema, documents[0], None).unwrap();
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
            // What juniper reads character for character: escapes, block strings.
            "{ authLogin(provider: \"tok\\u0065n\") { authId } }",
            "{ authLogin(provider: \"\"\"token\"\"\") { authId } }",
            "{\r\n  authLogin(provider: \"token\") { authId }\r\n}",
        ] {
            assert!(!planned(document, None), "{document}");
        }
    }
}
