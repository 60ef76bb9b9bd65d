//! Light scans of a GraphQL document, for the log and the metrics: which operation it runs and
//! its first root field. Not a parse: only ever shown, never acted on.

use std::{collections::HashSet, sync::OnceLock};

/// The operation a GraphQL request runs, for the log: its `operationName`, else the name in the
/// document's first operation, else its first field (`authLogin` for `{ authLogin(...) }`).
/// A light scan, not a parse: only ever shown.
pub fn operation_label(document: &str, operation_name: Option<&str>) -> Option<String> {
    if let Some(name) = operation_name {
        return Some(crate::text::bounded(name, 100));
    }
    let mut words = Words(document);
    let mut word = words.next()?;
    if matches!(word, "query" | "mutation" | "subscription") {
        word = words.next()?;
        if !matches!(word, "{" | "(" | "@") {
            return Some(crate::text::bounded(word, 100));
        }
    }
    while word != "{" {
        word = words.next()?;
    }
    let first = words.next()?;
    // `alias: field` names the field after the alias.
    let field = match words.next() {
        Some(":") => words.next()?,
        _ => first,
    };
    Some(crate::text::bounded(field, 100))
}

/// Names and single punctuation marks of a GraphQL document, skipping white space, commas and
/// comments.
struct Words<'a>(&'a str);

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let rest = self
                .0
                .trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if let Some(comment) = rest.strip_prefix('#') {
                self.0 = comment.split_once('\n').map_or("", |(_, after)| after);
                continue;
            }
            let name = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let end = match name {
                0 => rest.chars().next()?.len_utf8(),
                n => n,
            };
            let (word, after) = rest.split_at(end);
            self.0 = after;
            return Some(word);
        }
    }
}

/// The root fields of the schema (Query's and Mutation's, and introspection's), interned once:
/// the values a request's metric label may take, a set the schema bounds.
pub struct RootFields(HashSet<&'static str>);

impl RootFields {
    /// From the schema's SDL: the fields of `type Query` and `type Mutation`, one a line.
    pub fn from_sdl(sdl: &str) -> Self {
        let mut fields: HashSet<&'static str> = ["__schema", "__type", "__typename"].into();
        let mut inside = false;
        for line in sdl.lines() {
            if line.starts_with("type Query {") || line.starts_with("type Mutation {") {
                inside = true;
            } else if line.starts_with('}') {
                inside = false;
            } else if inside
                && let Some(field) = line.strip_prefix("  ")
                && field.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            {
                let end = field
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(field.len());
                // Leaked: a few hundred bytes for the life of the process.
                fields.insert(Box::leak(field[..end].to_owned().into_boxed_str()));
            }
        }
        Self(fields)
    }

    /// The schema's root fields, read once a process from `schema.graphql` (which a test keeps
    /// equal to the code's): nothing to build at start, and each name leaked once.
    pub fn of_schema() -> &'static Self {
        static FIELDS: OnceLock<RootFields> = OnceLock::new();
        FIELDS.get_or_init(|| Self::from_sdl(include_str!("../../schema.graphql")))
    }

    /// The document's first root field when it is one of the schema's, else `other`.
    pub fn label_of(&self, document: &str) -> &'static str {
        first_field(document)
            .and_then(|field| self.0.get(field).copied())
            .unwrap_or("other")
    }
}

/// The first field of the document's first selection set (after an alias, the field).
pub fn first_field(document: &str) -> Option<&str> {
    let mut words = Words(document);
    while words.next()? != "{" {}
    let first = words.next()?;
    match words.next() {
        Some(":") => words.next(),
        _ => Some(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_from_the_document() {
        let cases = [
            ("query Me { activeUser { userId } }", None, Some("Me")),
            (
                "{ authLogin(provider: \"token\") { authId } }",
                None,
                Some("authLogin"),
            ),
            (
                "# a comment\n mutation { tokenApiCreate(tokenName: \"x\") { token } }",
                None,
                Some("tokenApiCreate"),
            ),
            (
                "query($c: Object) { login: authLogin(credentials: $c) { authId } }",
                None,
                Some("authLogin"),
            ),
            ("query A { a } query B { b }", Some("B"), Some("B")),
            ("", None, None),
            ("query", None, None),
        ];
        for (document, name, expected) in cases {
            assert_eq!(
                operation_label(document, name).as_deref(),
                expected,
                "{document}"
            );
        }
    }

    #[test]
    fn metric_labels_are_root_fields_or_other() {
        let sdl = crate::graphql::schema(&Default::default()).as_sdl();
        let fields = RootFields::from_sdl(&sdl);
        assert!(fields.0.len() > 30, "{}", fields.0.len());
        assert_eq!(
            fields.0,
            RootFields::of_schema().0,
            "schema.graphql is the code's"
        );
        assert_eq!(
            fields.label_of("{ authLogin(provider: \"token\") { authId } }"),
            "authLogin"
        );
        assert_eq!(
            fields.label_of("mutation { a: tokenApiCreate(tokenName: \"x\") { token } }"),
            "tokenApiCreate"
        );
        assert_eq!(fields.label_of("{ __typename }"), "__typename");
        assert_eq!(
            fields.label_of("query($x: Object = {made_up: 1}) { activeUser { userId } }"),
            "other"
        );
        assert_eq!(fields.label_of("{ authId }"), "other", "not a root field");
        assert_eq!(fields.label_of(""), "other");
    }
}
