//! Pieces several resources share: the answer of an accepted request, the error of a bad email
//! link, and list paging.

use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::problem::{ApiError, Code};

/// Pagination of lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1 (default 1).
    #[serde(default, deserialize_with = "page_number")]
    #[param(schema_with = crate::api::rules::page)]
    pub page: Option<i128>,
    /// Items per page, 1 to 100 (default 50).
    #[serde(default, deserialize_with = "page_number")]
    #[param(schema_with = crate::api::rules::per_page)]
    pub per_page: Option<i128>,
}

/// Reads a page number from the query: empty is unset; a whole number of any size is read
/// (beyond 128 bits it saturates), so that one too large or too small is out of range like any
/// other (a 422 naming the field, as API.md says), never unreadable or silently capped;
/// anything else that is not a whole number is a 400.
pub fn page_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i128>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    let Some(text) = raw.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(n) = text.parse::<i128>() {
        return Ok(Some(n));
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Some(if negative { i128::MIN } else { i128::MAX }));
    }
    Err(serde::de::Error::custom(format!(
        "`{}` is not a whole number",
        text.chars().take(40).collect::<String>()
    )))
}

/// The answer of an accepted asynchronous request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "accepted"}))]
pub struct Accepted {
    /// Always `accepted`.
    pub status: &'static str,
}

impl Accepted {
    /// `{"status": "accepted"}`.
    pub fn new() -> Self {
        Self { status: "accepted" }
    }
}

impl Default for Accepted {
    fn default() -> Self {
        Self::new()
    }
}

/// The 400 of an email link that is unknown, used or expired.
pub fn invalid_token() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        Code::InvalidToken,
        "This link is invalid, already used or expired. Ask for a new one.",
    )
}
