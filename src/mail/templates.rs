//! Mail templates (minijinja): each mail is `<name>.txt` (blocks `subject` and `body`) and
//! `<name>.html` (extends `layout.html`, auto-escaped). They are compiled into the binary.

use minijinja::{Environment, context};
use serde::Serialize;

/// A rendered mail.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        /// Every mail template name.
        pub const NAMES: &[&str] = &[$($name),*];

        fn add_all(env: &mut Environment<'static>) -> Result<(), minijinja::Error> {
            env.add_template("layout.html", include_str!("templates/layout.html"))?;
            env.add_template("macros.html", include_str!("templates/macros.html"))?;
            $(
                env.add_template(concat!($name, ".txt"), include_str!(concat!("templates/", $name, ".txt")))?;
                env.add_template(concat!($name, ".html"), include_str!(concat!("templates/", $name, ".html")))?;
            )*
            Ok(())
        }
    };
}

templates![
    "verify_email",
    "password_changed",
    "totp_enabled",
    "totp_disabled",
    "passkey_added",
    "passkey_removed",
    "recovery_code_used",
    "recovery_codes_regenerated",
    "password_reset",
    "password_reset_unverified",
    "recovery_tracking",
    "recovery_ownership",
    "recovery_message",
    "recovery_denied",
    "recovery_link",
    "recovery_pending",
    "recovery_completed",
    "recovery_reminder",
    "recovery_abandoned",
    "confirm_login",
    "email_change_confirm",
    "email_change_requested",
    "email_changed",
    "account_locked",
    "account_unlocked",
];

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// Compiles every template; a broken one is reported when rendered (and by the unit test
    /// that renders them all).
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        if let Err(e) = add_all(&mut env) {
            tracing::error!(error = %e, "mail templates failed to compile");
        }
        Self { env }
    }

    /// Renders the mail `name` with `values` (and `service`).
    pub fn render<C: Serialize>(
        &self,
        name: &str,
        service: &str,
        values: &C,
    ) -> Result<Rendered, minijinja::Error> {
        let ctx = context! { service => service, ..minijinja::Value::from_serialize(values) };
        let txt = self.env.get_template(&format!("{name}.txt"))?;
        let mut captured = txt.render_captured(&ctx)?;
        let subject = captured
            .with_state_mut(|state| state.render_block("subject"))?
            .trim()
            .to_owned();
        let text = captured
            .with_state_mut(|state| state.render_block("body"))?
            .trim()
            .to_owned()
            + "\n";
        let html = self
            .env
            .get_template(&format!("{name}.html"))?
            .render(&ctx)?;
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_email_renders_with_escaping() {
        let t = Templates::new();
        let r = t
            .render(
                "verify_email",
                "PyPI-like",
                &serde_json::json!({
                    "username": "<b>jb</b>", "email": "jb@example.com",
                    "link": "https://f.test/verify-email?token=abc", "ttl": "48 hours"
                }),
            )
            .expect("renders");
        assert_eq!(r.subject, "Confirm your email address for PyPI-like");
        assert!(r.text.contains("https://f.test/verify-email?token=abc"));
        assert!(r.html.contains("&lt;b&gt;jb"));
        assert!(!r.html.contains("<b>jb</b>"));
    }

    #[test]
    fn a_missing_value_is_an_error_not_a_blank() {
        let t = Templates::new();
        assert!(
            t.render("verify_email", "s", &serde_json::json!({}))
                .is_err()
        );
    }
}
