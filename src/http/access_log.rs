//! `log.requests`: one line for each request, at the `access` target: method, path, status,
//! duration, and for GraphQL the operation and the caller's user. Never a query string, a
//! header or a body, which may hold secrets.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};

/// What a handler knows that the log line wants: left in the response's extensions.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub operation: Option<String>,
    pub user: Option<String>,
}

pub async fn log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = crate::text::bounded(req.path(), 200);
    let response = next.call(req).await?;
    let note = response.response().extensions().get::<Note>().cloned();
    let note = note.unwrap_or_default();
    tracing::info!(
        target: "access",
        method = %method,
        path,
        status = response.status().as_u16(),
        ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0).to_string(),
        operation = note.operation.as_deref(),
        user = note.user.as_deref(),
        "request"
    );
    Ok(response)
}

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

#[cfg(test)]
mod tests {
    use super::operation_label;

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
}
