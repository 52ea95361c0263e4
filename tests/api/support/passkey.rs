//! A software authenticator for driving real WebAuthn ceremonies without a browser: an ES256
//! (P-256) key pair that answers creation options with a `none` attestation and request options
//! with signed assertions, in the JSON shapes browsers send (`toJSON()`, base64url fields).
//!
//! The CBOR here is the few fixed shapes an attestation object and a COSE key need; it lives in
//! the tests only (the service reads WebAuthn through webauthn-rs). Knobs let a test play an
//! attacker: another origin or RP id, a counter set back, a flipped signature bit.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{PASSWORD, TestApp, Tokens, json};

/// The origin and RP id of the test app (`FRONTEND_URL=https://frontend.test`).
pub const ORIGIN: &str = "https://frontend.test";
/// The RP id of the test app.
pub const RP_ID: &str = "frontend.test";

/// A software authenticator holding one credential.
pub struct SoftAuthenticator {
    key: SigningKey,
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The signature counter (incremented before each assertion).
    pub counter: u32,
    /// The origin written into client data.
    pub origin: String,
    /// The RP id whose hash starts the authenticator data.
    pub rp_id: String,
    /// Set the backup-eligible and backed-up flags (a synced passkey).
    pub synced: bool,
    /// A synced passkey not backed up (yet): backup-eligible without the backed-up flag.
    pub not_backed_up: bool,
    /// Flip a bit of the next signatures.
    pub tamper_signature: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

/// CBOR byte string header + bytes.
fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 24 {
        out.push(0x40 | len as u8);
    } else if len < 256 {
        out.extend([0x58, len as u8]);
    } else {
        out.extend([0x59, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(bytes);
}

/// CBOR text string (short).
fn cbor_text(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() < 24);
    out.push(0x60 | text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftAuthenticator {
    /// A new authenticator with a fresh key and credential id, for the test app's origin.
    pub fn new() -> Self {
        let mut seed = Vec::with_capacity(32);
        seed.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        let key = SigningKey::from_slice(&seed).expect("a P-256 scalar");
        let mut credential_id = uuid::Uuid::new_v4().as_bytes().to_vec();
        credential_id.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            key,
            credential_id,
            counter: 0,
            origin: ORIGIN.into(),
            rp_id: RP_ID.into(),
            synced: false,
            not_backed_up: false,
            tamper_signature: false,
        }
    }

    /// The credential id, base64url.
    pub fn id(&self) -> String {
        b64(&self.credential_id)
    }

    fn flags(&self, attested: bool) -> u8 {
        // UP | UV, BE | BS when synced, AT when attested credential data follows.
        let mut flags = 0x01 | 0x04;
        if self.synced {
            flags |= 0x08;
            if !self.not_backed_up {
                flags |= 0x10;
            }
        }
        if attested {
            flags |= 0x40;
        }
        flags
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut out = vec![0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&mut out, point.x().expect("x"));
        out.push(0x22);
        cbor_bytes(&mut out, point.y().expect("y"));
        out
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options["publicKey"]["challenge"]
            .as_str()
            .expect("options carry a challenge");
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .expect("client data")
    }

    /// Answers creation options: a `RegistrationResponseJSON` with a `none` attestation.
    pub fn register(&self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.create", options);
        let mut auth_data = sha256(self.rp_id.as_bytes());
        auth_data.push(self.flags(true));
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = vec![0xA3];
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        attestation.push(0xA0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        })
    }

    /// Answers request options: an `AuthenticationResponseJSON`, counter moved on by one.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert_with_counter(options, self.counter)
    }

    /// Answers request options with this exact counter.
    pub fn assert_with_counter(&self, options: &Value, counter: u32) -> Value {
        let client_data = self.client_data("webauthn.get", options);
        let mut auth_data = sha256(self.rp_id.as_bytes());
        auth_data.push(self.flags(false));
        auth_data.extend(counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature: Signature = self.key.sign(&signed);
        let mut der = signature.to_der().as_bytes().to_vec();
        if self.tamper_signature {
            let last = der.len() - 1;
            der[last] ^= 0x01;
        }
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&der),
                "userHandle": null,
            },
            "clientExtensionResults": {},
        })
    }
}

impl TestApp {
    /// Starts a passkey registration; answers the registration id and the options.
    pub async fn passkey_options(&self, tokens: &Tokens) -> (String, Value) {
        let body = json(
            self.post_auth(
                "/api/v1/account/passkeys/registration-options",
                &tokens.access,
                json!({"password": PASSWORD}),
            )
            .await,
            200,
        )
        .await;
        (
            body["registration_id"].as_str().expect("id").to_string(),
            body["options"].clone(),
        )
    }

    /// Finishes a registration with `credential`; answers the raw response.
    pub async fn finish_passkey(
        &self,
        tokens: &Tokens,
        registration_id: &str,
        name: &str,
        credential: Value,
    ) -> reqwest::Response {
        self.post_auth(
            "/api/v1/account/passkeys",
            &tokens.access,
            json!({"registration_id": registration_id, "name": name, "credential": credential}),
        )
        .await
    }

    /// Registers `auth`'s credential on the account; answers the 201 body.
    pub async fn add_passkey(
        &self,
        tokens: &Tokens,
        auth: &SoftAuthenticator,
        name: &str,
    ) -> Value {
        let (id, options) = self.passkey_options(tokens).await;
        json(
            self.finish_passkey(tokens, &id, name, auth.register(&options))
                .await,
            201,
        )
        .await
    }

    /// The password step of a login that needs a second factor: the whole `mfa_required` body.
    pub async fn mfa_required(&self, login: &str) -> Value {
        let body = json(
            self.post(
                "/api/v1/sessions",
                json!({"login": login, "password": PASSWORD}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(body["status"], "mfa_required", "{body}");
        body
    }

    /// The request options of a passkey login for `mfa_token`.
    pub async fn webauthn_options(&self, mfa_token: &str) -> Value {
        let body = json(
            self.post(
                "/api/v1/sessions/webauthn/options",
                json!({"mfa_token": mfa_token}),
            )
            .await,
            200,
        )
        .await;
        body["options"].clone()
    }

    /// Finishes a passkey login; answers the raw response.
    pub async fn webauthn_login(&self, mfa_token: &str, credential: Value) -> reqwest::Response {
        self.post(
            "/api/v1/sessions/webauthn",
            json!({"mfa_token": mfa_token, "credential": credential}),
        )
        .await
    }

    /// A whole passkey login with `auth`: password step, options, assertion; the raw answer.
    pub async fn login_with_passkey(
        &self,
        login: &str,
        auth: &mut SoftAuthenticator,
    ) -> reqwest::Response {
        let mfa = self.mfa_required(login).await;
        let token = mfa["mfa_token"].as_str().expect("mfa token").to_string();
        let options = self.webauthn_options(&token).await;
        let assertion = auth.assert(&options);
        self.webauthn_login(&token, assertion).await
    }
}
