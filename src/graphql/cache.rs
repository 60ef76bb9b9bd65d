//! Validated operations kept for reuse: a script sends the same few documents over and over, and
//! parsing and validating one took most of the time GraphQL adds to a request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use juniper::{GraphQLError, Variables};

use super::{
    Context, Operation, Schema, ValidatorPanicked,
    answer::Answer,
    direct::{Inputs, Plan},
    document::RootFields,
    validate,
};

/// Documents kept at most; when full, the cache starts afresh (a flood of distinct documents
/// costs what no cache would, and memory stays bounded).
const MAX_ENTRIES: usize = 512;

/// Documents longer than this are validated every time: real clients send short ones.
const MAX_DOCUMENT: usize = 8 * 1024;

struct Document {
    schema: Arc<Schema>,
    text: Box<str>,
    /// Its first root field, the label of its requests' durations (`metrics`).
    label: &'static str,
}

/// An operation validated from a document, and how to run it without juniper when it can be.
struct Compiled<'a> {
    operation: Operation<'a>,
    direct: Option<Plan<'a>>,
}

self_cell::self_cell!(
    /// A document and the operation compiled from it, which borrows the document and the schema.
    struct Validated {
        owner: Document,
        #[covariant]
        dependent: Compiled,
    }
);

/// An operation that passed validation, shared by every request that sends the same document.
#[derive(Clone)]
pub struct Prepared(Arc<Validated>);

impl Prepared {
    /// Runs the operation: directly when it has a plan and the variables suit it, else with
    /// juniper.
    pub async fn execute(&self, variables: &Variables, ctx: &Context) -> Answer {
        let compiled = self.0.borrow_dependent();
        if let Some(plan) = &compiled.direct
            && let Some(answer) = plan.execute(variables, ctx).await
        {
            return Answer::Direct(answer);
        }
        compiled.operation.execute(variables, ctx).await.into()
    }

    /// The document's first root field, or `other`: the label of its requests' durations.
    pub fn label(&self) -> &'static str {
        self.0.borrow_owner().label
    }

    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.0.borrow_dependent().direct.is_some()
    }
}

pub struct OperationCache {
    schema: Arc<Schema>,
    root_fields: &'static RootFields,
    /// The schema's input objects, read at the first plan.
    inputs: OnceLock<Inputs>,
    entries: Mutex<HashMap<String, Prepared>>,
}

impl OperationCache {
    pub fn new(schema: Arc<Schema>) -> Self {
        Self {
            root_fields: RootFields::of_schema(),
            inputs: OnceLock::new(),
            schema,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The validated operation `name` of `document`, from the cache or validated now.
    pub fn get(
        &self,
        document: &str,
        name: Option<&str>,
    ) -> Result<Result<Prepared, GraphQLError>, ValidatorPanicked> {
        let key = (document.len() <= MAX_DOCUMENT).then(|| cache_key(document, name));
        if let Some(key) = &key
            && let Some(hit) = self.entries().get(key)
        {
            return Ok(Ok(hit.clone()));
        }
        let owner = Document {
            schema: self.schema.clone(),
            text: document.into(),
            label: self.root_fields.label_of(document),
        };
        // A document too long to keep is not worth a second parse for a plan.
        let plan = key.is_some();
        let validated =
            Validated::try_new(owner, |doc| match validate(&doc.schema, &doc.text, name) {
                Ok(Ok(operation)) => Ok(Compiled {
                    operation,
                    direct: plan
                        .then(|| Plan::new(self.inputs(), &doc.text, name))
                        .flatten(),
                }),
                Ok(Err(error)) => Err(Ok(error)),
                Err(panicked) => Err(Err(panicked)),
            });
        let validated = match validated {
            Ok(validated) => validated,
            Err(Ok(error)) => return Ok(Err(error)),
            Err(Err(panicked)) => return Err(panicked),
        };
        let prepared = Prepared(Arc::new(validated));
        if let Some(key) = key {
            let mut entries = self.entries();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, prepared.clone());
        }
        Ok(Ok(prepared))
    }

    fn inputs(&self) -> &Inputs {
        self.inputs.get_or_init(|| Inputs::of(&self.schema))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Prepared>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The operation name and the document, apart by a byte no name contains.
fn cache_key(document: &str, name: Option<&str>) -> String {
    let name = name.unwrap_or("");
    let mut key = String::with_capacity(name.len() + 1 + document.len());
    key.push_str(name);
    key.push('\n');
    key.push_str(document);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> OperationCache {
        OperationCache::new(Arc::new(super::super::schema(&Default::default())))
    }

    fn hit(cache: &OperationCache, document: &str, name: Option<&str>) -> Prepared {
        cache.get(document, name).unwrap().unwrap()
    }

    #[test]
    fn the_same_document_is_validated_once() {
        let cache = cache();
        let first = hit(&cache, "{ __typename }", None);
        let again = hit(&cache, "{ __typename }", None);
        assert!(Arc::ptr_eq(&first.0, &again.0));

        let two = "query A { __typename } query B { activeUser { userId } }";
        let a = hit(&cache, two, Some("A"));
        let b = hit(&cache, two, Some("B"));
        assert!(
            !Arc::ptr_eq(&a.0, &b.0),
            "the operation name is part of the key"
        );
    }

    #[test]
    fn a_kept_login_document_gets_a_plan_to_run_directly() {
        let cache = cache();
        let reference = "query authLogin($credentials: Object) { authLogin(provider: \"token\", credentials: $credentials) { authId userTokens { userId } authStatus } }";
        assert!(hit(&cache, reference, None).is_direct());
        assert!(!hit(&cache, "{ __typename }", None).is_direct());
        let long = format!("# {}\n{reference}", "x".repeat(MAX_DOCUMENT));
        assert!(!hit(&cache, &long, None).is_direct());
    }

    #[test]
    fn invalid_documents_are_not_kept_and_the_cache_stays_bounded() {
        let cache = cache();
        assert!(cache.get("{ nope }", None).unwrap().is_err());
        assert!(cache.entries().is_empty());
        for i in 0..MAX_ENTRIES * 3 {
            hit(&cache, &format!("query Q{i} {{ __typename }}"), None);
            assert!(cache.entries().len() <= MAX_ENTRIES);
        }
        let long = format!("# {}\n{{ __typename }}", "x".repeat(MAX_DOCUMENT));
        hit(&cache, &long, None);
        assert!(!cache.entries().keys().any(|k| k.len() > MAX_DOCUMENT));
    }
}
