//! The audit log's event types: dotted, stable names (API.md). Never rename one once shipped.

macro_rules! event_types {
    ($($variant:ident => $text:literal,)*) => {
        /// A security event or support action.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum EventType { $(
            #[doc = $text]
            $variant,
        )* }

        impl EventType {
            /// Every type, for documentation and filters.
            pub const ALL: &'static [EventType] = &[$(Self::$variant,)*];

            /// The stored and shown name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }

            /// Reads a name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

event_types! {
    AccountRegistered => "account.registered",
    AccountEmailVerified => "account.email_verified",
    SessionLoginSucceeded => "session.login_succeeded",
    SessionLoginFailed => "session.login_failed",
    SessionLogout => "session.logout",
    SessionRevoked => "session.revoked",
    SessionRefreshReused => "session.refresh_token_reused",
    PasswordChanged => "password.changed",
    PasswordResetRequested => "password.reset_requested",
    PasswordReset => "password.reset",
    TotpEnabled => "totp.enabled",
    TotpDisabled => "totp.disabled",
    PasskeyAdded => "passkey.added",
    PasskeyRemoved => "passkey.removed",
    PasskeyRenamed => "passkey.renamed",
    PasskeyCounterRegressed => "passkey.counter_regressed",
    RecoveryCodesGenerated => "recovery_codes.generated",
    RecoveryCodeUsed => "recovery_code.used",
    SecondFactorRateLimited => "second_factor.rate_limited",
    ReauthFailed => "reauth.failed",
    RecoveryRequestSubmitted => "recovery_request.submitted",
    RecoveryRequestOwnershipProven => "recovery_request.ownership_proven",
    RecoveryRequestOwnershipDisputed => "recovery_request.ownership_disputed",
    RecoveryRequestNoteAdded => "recovery_request.note_added",
    RecoveryRequestMessageSent => "recovery_request.message_sent",
    RecoveryRequestReplyReceived => "recovery_request.reply_received",
    RecoveryRequestApproved => "recovery_request.approved",
    RecoveryRequestDenied => "recovery_request.denied",
    RecoveryRequestWithdrawn => "recovery_request.withdrawn",
    RecoveryRequestLinkSent => "recovery_request.link_sent",
    RecoveryRequestCompleted => "recovery_request.completed",
    RecoveryRequestExpired => "recovery_request.expired",
    RecoveryRequestFirstApproval => "recovery_request.first_approval",
    AccountEmailChangeRequested => "account.email_change_requested",
    AccountEmailChanged => "account.email_changed",
    AccountLocked => "account.locked",
    AccountUnlocked => "account.unlocked",
    RecoveryRequestReminderSent => "recovery_request.reminder_sent",
    RecoveryRequestAbandoned => "recovery_request.abandoned",
    RecoveryRequestErased => "recovery_request.erased",
    RecoveryRequestAttachmentUploaded => "recovery_request.attachment_uploaded",
    RecoveryRequestAttachmentViewed => "recovery_request.attachment_viewed",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            assert!(seen.insert(t.as_str()));
        }
        assert_eq!(EventType::parse("nope"), None);
    }
}
