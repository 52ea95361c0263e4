//! HTTP only: routes, thin handlers, the problem+json renderer and the OpenAPI document.
//!
//! A handler parses and authorises, calls one service function and maps its result. No SQL and
//! no business rule lives here.

pub mod accounts;
pub mod admin;
pub mod common;
pub mod devices;
pub mod edge;
pub mod email_changes;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod passkeys;
pub mod password_resets;
pub mod problem;
pub mod recovery_requests;
pub mod rules;
pub mod session_cookies;
pub mod sessions;
pub mod slow_clients;
pub mod two_factor;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::problem::ApiError;

/// Registers every documented route; the OpenAPI document is collected from this function.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health::get_liveness)
        .service(health::get_readiness)
        .service(utoipa_actix_web::scope("/api/v1").configure(v1_routes));
}

fn v1_routes(cfg: &mut ServiceConfig) {
    cfg.service(accounts::register_account)
        .service(accounts::verify_account_email)
        .service(accounts::resend_verification_email)
        .service(accounts::get_account)
        .service(accounts::change_password)
        .service(accounts::list_sessions)
        .service(accounts::revoke_session)
        .service(devices::list_devices)
        .service(devices::forget_device)
        .service(accounts::list_account_events)
        .service(email_changes::request_email_change)
        .service(email_changes::confirm_email_change)
        .service(email_changes::lock_account)
        .service(sessions::create_session)
        .service(sessions::refresh_session)
        .service(sessions::delete_current_session)
        .service(sessions::confirm_session)
        .service(two_factor::create_session_with_totp)
        .service(two_factor::create_session_with_recovery_code)
        .service(two_factor::start_totp_enrollment)
        .service(two_factor::confirm_totp_enrollment)
        .service(two_factor::disable_two_factor)
        .service(two_factor::get_recovery_codes_status)
        .service(two_factor::regenerate_recovery_codes)
        .service(passkeys::start_passkey_registration)
        .service(passkeys::register_passkey)
        .service(passkeys::list_passkeys)
        .service(passkeys::rename_passkey)
        .service(passkeys::remove_passkey)
        .service(passkeys::start_webauthn_session)
        .service(passkeys::create_session_with_webauthn)
        .service(password_resets::start_password_reset)
        .service(password_resets::confirm_password_reset)
        .service(recovery_requests::submit_recovery_request)
        .service(recovery_requests::resend_tracking_links)
        .service(recovery_requests::answer_recovery_ownership)
        .service(recovery_requests::get_recovery_request)
        .service(recovery_requests::reply_to_recovery_request)
        .service(recovery_requests::withdraw_recovery_request)
        .service(recovery_requests::attachments::attach_to_recovery_request)
        .service(recovery_requests::complete_account_recovery)
        .service(admin::list_recovery_requests)
        .service(admin::get_recovery_request_detail)
        .service(admin::add_recovery_request_note)
        .service(admin::message_recovery_requester)
        .service(admin::approve_recovery_request)
        .service(admin::deny_recovery_request)
        .service(admin::download_recovery_request_attachment)
        .service(admin::list_audit_events);
}

/// Paths that exist with the methods they accept, built once from the OpenAPI document, so
/// that a known path with another method answers 405 with `Allow`, not 404.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<(actix_web::dev::ResourceDef, Vec<Method>)>,
}

impl RouteTable {
    /// Builds the table from the document's paths, plus the documentation's own.
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut routes: Vec<(actix_web::dev::ResourceDef, Vec<Method>)> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                for (op, method) in [
                    (&item.get, Method::GET),
                    (&item.post, Method::POST),
                    (&item.put, Method::PUT),
                    (&item.patch, Method::PATCH),
                    (&item.delete, Method::DELETE),
                ] {
                    if op.is_some() {
                        methods.push(method);
                    }
                }
                (actix_web::dev::ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        for path in [
            openapi::OPENAPI_JSON_PATH,
            "/swagger-ui",
            "/swagger-ui/{tail}*",
        ] {
            routes.push((actix_web::dev::ResourceDef::new(path), vec![Method::GET]));
        }
        Self { routes }
    }

    fn allowed(&self, path: &str) -> Option<&[Method]> {
        self.routes
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, m)| m.as_slice())
    }
}

/// The default service: 405 with `Allow` for a known path, 404 otherwise.
pub async fn fallback(req: HttpRequest, table: web::Data<RouteTable>) -> HttpResponse {
    let error = match table.allowed(req.path()) {
        Some(methods) if !methods.contains(req.method()) => {
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            ApiError::method_not_allowed(allow.join(", "))
        }
        _ => ApiError::not_found("There is nothing at this address."),
    };
    error.error_response()
}
