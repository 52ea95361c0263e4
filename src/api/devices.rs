//! `/api/v1/account/devices`: the browsers and apps the caller's account knows.

use actix_web::{HttpResponse, delete, get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::edge::PathId;
use crate::api::extract::Authenticated;
use crate::api::problem::{ApiError, Problem};
use crate::context::Ctx;
use crate::services::devices::{self, DeviceView, ForgetError};

/// A device the account has signed in from.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "5b1f0c4e-8d2a-4c7e-9f3b-2a6d8e0c1b7f", "label": "Firefox on Linux",
    "first_seen_at": "2026-11-02T08:15:00Z", "last_seen_at": "2026-11-30T17:40:00Z", "current": true}))]
pub struct DeviceResponse {
    /// Id.
    pub id: String,
    /// A name from the user agent of its first sign-in, such as "Firefox on Linux".
    pub label: String,
    /// Its first sign-in.
    pub first_seen_at: DateTime<Utc>,
    /// Its latest sign-in.
    pub last_seen_at: DateTime<Utc>,
    /// Whether the caller's session came from it.
    pub current: bool,
}

impl From<DeviceView> for DeviceResponse {
    fn from(d: DeviceView) -> Self {
        Self {
            id: d.id.into_string(),
            label: d.label,
            first_seen_at: d.first_seen_at,
            last_seen_at: d.last_seen_at,
            current: d.current,
        }
    }
}

/// The account's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    /// Most recently seen first.
    pub items: Vec<DeviceResponse>,
}

impl From<ForgetError> for ApiError {
    fn from(e: ForgetError) -> Self {
        match e {
            ForgetError::NotFound => ApiError::not_found("No device of yours has that id."),
            ForgetError::Failure(f) => f.into(),
        }
    }
}

/// The browsers and apps the caller's account has signed in from.
///
/// Every completed login answers a `device_token` when the request did not send a valid
/// `X-Device-Token` for the account; the device it names is listed here. A known device keeps
/// its own failed-login budget (an attacker's failures elsewhere never lock it out) and skips
/// new-device confirmation.
#[utoipa::path(
    tag = "accounts",
    operation_id = "list_devices",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account's devices.", body = DeviceList),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/account/devices")]
pub async fn list_devices(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let items = devices::list(&ctx, &who.account_id, who.device_id.as_ref())
        .await?
        .into_iter()
        .map(DeviceResponse::from)
        .collect();
    Ok(HttpResponse::Ok().json(DeviceList { items }))
}

/// Forgets one of the caller's devices: on its next login it is a new device (a new failed-login
/// budget does not come with it: it shares the account's untrusted one).
///
/// The device's token stops being recognised at once; the device's sessions stay open (revoke
/// them with `DELETE /api/v1/account/sessions/{id}`). An id that is not one of the caller's
/// devices is a 404, whoever owns it.
#[utoipa::path(
    tag = "accounts",
    operation_id = "forget_device",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The device's id.")),
    responses(
        (status = 204, description = "Forgotten."),
        (status = 404, description = "No device of yours has that id.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/account/devices/{id}")]
pub async fn forget_device(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    id: PathId,
) -> Result<HttpResponse, ApiError> {
    devices::forget(&ctx, &who.account_id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
