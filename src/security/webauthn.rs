//! WebAuthn ceremonies through webauthn-rs: the relying party built once from the
//! configuration, and the four steps (registration options and finish, login options and
//! finish) with their inputs and outputs as JSON and stored strings. No CBOR, COSE or signature
//! code lives in this crate: webauthn-rs checks origins, RP id hashes, challenges, flags,
//! counters and signatures.
//!
//! Policy (API.md, issue 16): attestation `none`, user verification `preferred`, resident keys
//! allowed but not required. webauthn-rs's security-key flow is exactly that (its passkey flow
//! requires user verification); its `security-key` UI hint is left out of the options, so
//! browsers offer platform passkeys as readily as roaming keys.
//!
//! Stored forms: a credential is webauthn-rs's serialised `SecurityKey` (credential id, public
//! key, counter, flags, transports: nothing secret), a ceremony state its serialised
//! registration or authentication state (`danger-allow-state-serialisation`: the state is kept
//! server-side, in the database, single use, never sent to the client).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use webauthn_rs::prelude::{
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, Url, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// The relying party: shared, cheap to clone.
#[derive(Clone)]
pub struct RelyingParty {
    inner: Arc<Webauthn>,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelyingParty(..)")
    }
}

/// Why an authenticator's answer was refused (the client's fault, or an attacker's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not the JSON shape of a WebAuthn response.
    Malformed,
    /// The signature counter did not move forward (a cloned authenticator, or a replay).
    CounterRegressed,
    /// Anything else: origin, RP id, challenge, flags, signature, unknown credential.
    Invalid(String),
}

/// A ceremony problem that is not the client's: a stored state that does not read back, or
/// options that could not be made.
#[derive(Debug, thiserror::Error)]
#[error("webauthn: {0}")]
pub struct WebauthnFailure(String);

/// What a finished registration stores.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Credential id, base64url without padding.
    pub credential_id: String,
    /// The stored credential.
    pub credential: String,
    /// Signature counter at registration.
    pub sign_count: u32,
    /// Backup eligible.
    pub backup_eligible: bool,
    /// Backed up.
    pub backed_up: bool,
    /// Transports as a JSON list, if the client named any.
    pub transports: Option<String>,
}

/// What a finished login changes on its credential.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// Credential id, base64url without padding.
    pub credential_id: String,
    /// The authenticator's new counter.
    pub sign_count: u32,
    /// Backup eligible.
    pub backup_eligible: bool,
    /// Backed up.
    pub backed_up: bool,
    /// The stored credential, updated (counter and flags).
    pub credential: String,
}

/// The fields of a stored credential that the service keeps beside it.
#[derive(Deserialize)]
struct CredentialView {
    cred: CredentialFields,
}

#[derive(Deserialize)]
struct CredentialFields {
    counter: u32,
    backup_eligible: bool,
    backup_state: bool,
    #[serde(default)]
    transports: Option<serde_json::Value>,
}

fn failure(what: &str, e: impl std::fmt::Display) -> WebauthnFailure {
    WebauthnFailure(format!("{what}: {e}"))
}

fn refusal(e: WebauthnError) -> Refusal {
    match e {
        WebauthnError::CredentialPossibleCompromise => Refusal::CounterRegressed,
        other => Refusal::Invalid(other.to_string()),
    }
}

/// Drops the options' UI hints (see the module docs) from `{"publicKey": {..}}`.
fn without_hints(mut options: serde_json::Value) -> serde_json::Value {
    if let Some(pk) = options
        .get_mut("publicKey")
        .and_then(serde_json::Value::as_object_mut)
    {
        pk.remove("hints");
    }
    options
}

fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<String, WebauthnFailure> {
    serde_json::to_string(v).map_err(|e| failure(what, e))
}

fn stored_key(credential: &str) -> Result<SecurityKey, WebauthnFailure> {
    serde_json::from_str(credential).map_err(|e| failure("stored credential", e))
}

impl RelyingParty {
    /// Builds the relying party; `timeout` is what the options ask the authenticator for.
    pub fn new(
        rp_id: &str,
        origins: &[Url],
        rp_name: &str,
        timeout: Duration,
    ) -> Result<Self, WebauthnFailure> {
        let (first, more) = origins
            .split_first()
            .ok_or_else(|| failure("relying party", "no origin"))?;
        let mut builder = WebauthnBuilder::new(rp_id, first)
            .map_err(|e| failure("relying party", e))?
            .rp_name(rp_name)
            .timeout(timeout);
        for origin in more {
            builder = builder.append_allowed_origin(origin);
        }
        let inner = builder.build().map_err(|e| failure("relying party", e))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Registration options for an account (its user handle is the account's UUID) that
    /// exclude its existing credentials; answers the options JSON and the state to keep.
    pub fn start_registration(
        &self,
        user: Uuid,
        username: &str,
        existing: &[String],
    ) -> Result<(serde_json::Value, String), WebauthnFailure> {
        let exclude = existing
            .iter()
            .map(|c| stored_key(c).map(|k| k.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .inner
            .start_securitykey_registration(user, username, username, Some(exclude), None, None)
            .map_err(|e| failure("registration options", e))?;
        let options = serde_json::to_value(&options).map_err(|e| failure("options", e))?;
        Ok((without_hints(options), to_json("state", &state)?))
    }

    /// Checks an authenticator's registration response against the kept state.
    pub fn finish_registration(
        &self,
        response: &serde_json::Value,
        state: &str,
    ) -> Result<Result<Registered, Refusal>, WebauthnFailure> {
        let state: SecurityKeyRegistration =
            serde_json::from_str(state).map_err(|e| failure("registration state", e))?;
        let Ok(response) = serde_json::from_value::<RegisterPublicKeyCredential>(response.clone())
        else {
            return Ok(Err(Refusal::Malformed));
        };
        let key = match self
            .inner
            .finish_securitykey_registration(&response, &state)
        {
            Ok(key) => key,
            Err(e) => return Ok(Err(refusal(e))),
        };
        let credential = to_json("credential", &key)?;
        let view: CredentialView =
            serde_json::from_str(&credential).map_err(|e| failure("credential", e))?;
        Ok(Ok(Registered {
            credential_id: URL_SAFE_NO_PAD.encode(key.cred_id()),
            credential,
            sign_count: view.cred.counter,
            backup_eligible: view.cred.backup_eligible,
            backed_up: view.cred.backup_state,
            transports: view
                .cred
                .transports
                .filter(|t| !t.is_null())
                .map(|t| t.to_string()),
        }))
    }

    /// Login options for these stored credentials; answers the options JSON and the state.
    pub fn start_login(
        &self,
        credentials: &[String],
    ) -> Result<(serde_json::Value, String), WebauthnFailure> {
        let keys = credentials
            .iter()
            .map(|c| stored_key(c))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .inner
            .start_securitykey_authentication(&keys)
            .map_err(|e| failure("login options", e))?;
        let options = serde_json::to_value(&options).map_err(|e| failure("options", e))?;
        Ok((without_hints(options), to_json("state", &state)?))
    }

    /// The credential id (base64url) a login response names, if it has the shape of one.
    pub fn asserted_credential_id(response: &serde_json::Value) -> Option<String> {
        serde_json::from_value::<PublicKeyCredential>(response.clone())
            .ok()
            .map(|r| URL_SAFE_NO_PAD.encode(&r.raw_id))
    }

    /// Checks an authenticator's login response against the kept state and the stored
    /// credential it names (whose counter is the one stored now, not when the options were
    /// made).
    pub fn finish_login(
        &self,
        response: &serde_json::Value,
        state: &str,
        stored: &str,
    ) -> Result<Result<Asserted, Refusal>, WebauthnFailure> {
        let state: SecurityKeyAuthentication =
            serde_json::from_str(state).map_err(|e| failure("login state", e))?;
        let Ok(response) = serde_json::from_value::<PublicKeyCredential>(response.clone()) else {
            return Ok(Err(Refusal::Malformed));
        };
        let result = match self
            .inner
            .finish_securitykey_authentication(&response, &state)
        {
            Ok(result) => result,
            Err(e) => return Ok(Err(refusal(e))),
        };
        let mut key = stored_key(stored)?;
        if key.cred_id() != result.cred_id() {
            return Ok(Err(Refusal::Invalid("another credential".into())));
        }
        key.update_credential(&result);
        Ok(Ok(Asserted {
            credential_id: URL_SAFE_NO_PAD.encode(result.cred_id()),
            sign_count: result.counter(),
            backup_eligible: result.backup_eligible(),
            backed_up: result.backup_state(),
            credential: to_json("credential", &key)?,
        }))
    }
}
