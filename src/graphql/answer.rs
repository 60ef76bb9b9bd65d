//! The answer to a `/api/gql` request: juniper's, or a login run by a [`super::direct::Plan`],
//! which is serialized here as juniper serializes its own.

use juniper::{
    DefaultScalarValue, ExecutionError, FieldError, GraphQLError, Value, http::GraphQLResponse,
};
use serde::{Serialize, Serializer, ser::SerializeMap as _};

/// The answer to a request, serialized as juniper serializes its own.
pub enum Answer {
    Juniper(GraphQLResponse),
    /// A login run by a [`super::direct::Plan`].
    Direct(Direct),
}

pub enum Direct {
    /// `{"data": {key: ...}}`
    Data(Value),
    /// A failed login: `AuthInfo!` cannot be null, so its error leaves no data at all.
    Failed {
        error: FieldError,
        key: String,
        at: Location,
    },
}

/// Where a field starts, as juniper says it: its line and column counted from 1, a column a
/// character (a tab too), a line ending at each `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// What juniper's execution gives.
type Executed = Result<(Value, Vec<ExecutionError<DefaultScalarValue>>), GraphQLError>;

impl From<Executed> for Answer {
    fn from(result: Executed) -> Self {
        Answer::Juniper(GraphQLResponse::from_result(result))
    }
}

impl From<GraphQLError> for Answer {
    fn from(refused: GraphQLError) -> Self {
        Answer::from(Executed::Err(refused))
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Juniper(response) => response.serialize(ser),
            Answer::Direct(Direct::Data(data)) => {
                let mut map = ser.serialize_map(None)?;
                map.serialize_entry("data", data)?;
                map.end()
            }
            Answer::Direct(Direct::Failed { error, key, at }) => {
                let mut map = ser.serialize_map(None)?;
                map.serialize_entry("data", &Value::<DefaultScalarValue>::Null)?;
                map.serialize_entry("errors", &[FieldErrorAt { error, key, at }])?;
                map.end()
            }
        }
    }
}

/// One error of juniper's `errors` list: message, locations, path, and extensions when it has
/// any.
struct FieldErrorAt<'e> {
    error: &'e FieldError,
    key: &'e str,
    at: &'e Location,
}

impl Serialize for FieldErrorAt<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("message", self.error.message())?;
        map.serialize_entry("locations", &[self.at])?;
        map.serialize_entry("path", &[self.key])?;
        if !self.error.extensions().is_null() {
            map.serialize_entry("extensions", self.error.extensions())?;
        }
        map.end()
    }
}
