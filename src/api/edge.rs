//! The edge of the API: every JSON body, query string and path id a handler reads passes the
//! control-character rule of API.md (Conventions, [`crate::domain::text`]) here, before any
//! service sees it. A body or query value that breaks it is a 422 naming the field; a path id,
//! a 404 (it names nothing). Handlers take [`Body`], [`Query`] and [`PathId`] instead of
//! actix's `Json`, `Query` and `Path`.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::PartialSchema;
use utoipa::openapi::{RefOr, Schema};
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::api::problem::{ApiError, FieldError, deserialize_error};
use crate::api::rules;
use crate::domain::text::{self, TextKind};

/// The field code of a value with a control character.
pub const CONTROL_CHARACTER: &str = "control_character";

/// What a body declares about its text: which fields are free text, where tab and line breaks
/// are allowed. Every other string in it, at any depth, is one line.
pub trait TextFields {
    /// Top-level fields that hold free text (a reason, a message, a comment).
    const FREE_TEXT: &'static [&'static str] = &[];
}

/// A JSON body of type `T` whose every string passed the control-character rule.
///
/// It reads the body as JSON (the shared `JsonConfig`: 64 KiB, problem+json errors), checks
/// every string, then builds `T`; a missing field is a 422 `required` and a wrong shape a 400,
/// as with `web::Json`.
///
/// The body is only reachable through [`Body::validated`]: the field is private and there is
/// no `Deref` or `into_inner`, and the extractor needs `T: Validate`. So a new body cannot skip
/// its `validator` rules (issue 15: seven bodies once did, with `into_inner()`); one without
/// rules still derives `Validate` and calls `validated()`, which then always passes.
#[derive(Debug)]
pub struct Body<T>(T);

impl<T: Validate + PartialSchema> Body<T> {
    /// The body once its `validator` rules hold (the `#[validate(…)]` derive, whose custom
    /// rules call the domain parsers: `api/rules.rs`); otherwise the 422 of API.md, one entry
    /// per failing field in the order the body declares them. A handler calls it where the
    /// service would check the same fields, so the order of answers does not change.
    pub fn validated(self) -> Result<T, ApiError> {
        match self.0.validate() {
            Ok(()) => Ok(self.0),
            Err(errors) => Err(ApiError::validation(field_errors(
                &errors,
                &declared_fields::<T>(),
            ))),
        }
    }
}

/// The top-level field names of a body, in declaration order (from its schema).
fn declared_fields<T: PartialSchema>() -> Vec<String> {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The one mapping of `validator`'s errors to API.md's 422 field list: each error's field
/// (for struct-level rules, the field they name with [`rules::FIELD_PARAM`]), its code and its
/// message, ordered as the body declares its fields.
pub fn field_errors(errors: &ValidationErrors, order: &[String]) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = Vec::new();
    for (field, kind) in errors.errors() {
        let ValidationErrorsKind::Field(list) = kind else {
            continue;
        };
        for error in list {
            let named = error
                .params
                .get(rules::FIELD_PARAM)
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let field = named.unwrap_or_else(|| field.to_string());
            let message = error
                .message
                .as_deref()
                .map(str::to_owned)
                .unwrap_or_else(|| "is not valid".to_owned());
            out.push(FieldError::new(&field, &error.code, message));
        }
    }
    let position = |f: &str| order.iter().position(|o| o == f).unwrap_or(usize::MAX);
    out.sort_by(|a, b| {
        position(&a.field)
            .cmp(&position(&b.field))
            .then(a.field.cmp(&b.field))
    });
    out
}

impl<T: DeserializeOwned + TextFields + Validate + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(value) = json.await?;
            let errors = control_characters(&value, T::FREE_TEXT);
            if !errors.is_empty() {
                return Err(ApiError::validation(errors).into());
            }
            serde_json::from_value::<T>(value)
                .map(Body)
                .map_err(|e| deserialize_error(&e).into())
        })
    }
}

/// One field error per string field of a JSON object that breaks the rule (arrays and nested
/// objects are named `field[0]` and `field.inner`). A body that is not an object is left to
/// the deserializer.
fn control_characters(value: &Value, free_text: &[&str]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Value::Object(fields) = value {
        for (name, v) in fields {
            let kind = if free_text.contains(&name.as_str()) {
                TextKind::FreeText
            } else {
                TextKind::Line
            };
            walk(v, name.clone(), kind, &mut errors);
        }
    }
    errors
}

fn walk(value: &Value, path: String, kind: TextKind, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(s) if !text::is_clean(s, kind) => errors.push(control_error(&path)),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{path}[{i}]"), TextKind::Line, errors);
            }
        }
        Value::Object(fields) => {
            for (name, v) in fields {
                walk(v, format!("{path}.{name}"), TextKind::Line, errors);
            }
        }
        _ => {}
    }
}

fn control_error(field: &str) -> FieldError {
    FieldError::new(
        field,
        CONTROL_CHARACTER,
        "must not contain control characters",
    )
}

/// A query string of type `T` whose every value passed the control-character rule (one line);
/// otherwise a 422 naming each parameter. Parsing itself is `web::Query`'s.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Validate> Query<T> {
    /// The query once its `validator` rules hold (the filters' lengths and shapes); otherwise
    /// the 422 of API.md naming each parameter, in the order of the names.
    pub fn validated(self) -> Result<T, ApiError> {
        match self.0.validate() {
            Ok(()) => Ok(self.0),
            Err(errors) => Err(ApiError::validation(field_errors(&errors, &[]))),
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut errors: Vec<FieldError> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
            let name = text::strip_controls(&name);
            if !text::is_clean(&value, TextKind::Line) && !errors.iter().any(|e| e.field == name) {
                errors.push(control_error(&name));
            }
        }
        if !errors.is_empty() {
            return std::future::ready(Err(ApiError::validation(errors).into()));
        }
        let parsed = web::Query::<T>::from_request(req, payload).into_inner();
        std::future::ready(parsed.map(|q| Self(q.into_inner())))
    }
}

/// The `{id}` of a path: any text without control characters (a 404 otherwise, like an id that
/// names nothing; so is a path that does not decode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathId(pub String);

impl PathId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for PathId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl FromRequest for PathId {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let id = web::Path::<String>::from_request(req, payload)
            .into_inner()
            .and_then(|p| {
                let id = p.into_inner();
                if text::is_clean(&id, TextKind::Line) {
                    Ok(Self(id))
                } else {
                    Err(ApiError::not_found("There is nothing at this address.").into())
                }
            });
        std::future::ready(id)
    }
}

/// A header value as one clean line: `None` when absent, not visible ASCII, or carrying a
/// control character (a tab inside), so such a header counts as missing.
pub fn header_line<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && text::is_clean(v, TextKind::Line))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_string_at_any_depth_is_checked_and_named() {
        let body = json!({
            "login": "ana\u{0}", "password": "fine", "reason": "two\nlines\tok",
            "note": "bell\u{7}", "list": ["ok", "n\u{0}"], "inner": {"x": "\u{1b}[31m"},
            "count": 3, "flag": true
        });
        let mut fields: Vec<String> = control_characters(&body, &["reason", "note"])
            .into_iter()
            .map(|e| e.field)
            .collect();
        fields.sort();
        assert_eq!(fields, ["inner.x", "list[1]", "login", "note"]);
    }

    #[test]
    fn validator_errors_map_to_the_field_list_in_declaration_order() {
        use crate::api::accounts::RegisterBody;
        let body: RegisterBody = serde_json::from_value(json!({
            "username": "j", "email": "not-an-address", "password": "short"
        }))
        .expect("body");
        let Err(e) = Body(body).validated() else {
            panic!("refused")
        };
        let errors = e.field_errors_for_tests();
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("username", "too_short"),
                ("email", "invalid"),
                ("password", "too_short")
            ]
        );
        assert_eq!(errors[2].message, "must be at least 8 characters");
    }

    #[test]
    fn line_breaks_are_refused_outside_free_text() {
        let body = json!({"username": "jb\nber", "reason": "jb\nber"});
        let fields: Vec<String> = control_characters(&body, &["reason"])
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["username"]);
        assert!(control_characters(&json!("top\u{0}level"), &[]).is_empty());
    }
}
