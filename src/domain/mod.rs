//! Types that are valid by construction. No I/O, and nothing else from the crate.

pub mod account;
pub mod attachment;
pub mod audit;
pub mod device;
pub mod email_token;
pub mod ids;
pub mod limits;
pub mod passkey;
pub mod password;
pub mod password_lists;
pub mod recovery_code;
pub mod recovery_request;
pub mod session;
pub mod text;
pub mod two_factor;

pub use account::{
    Account, EmailAddress, EmailError, Login, Role, SecondFactor, Username, UsernameError,
    username_key,
};
pub use audit::EventType;
pub use device::Device;
pub use email_token::{EmailToken, TokenPurpose};
pub use ids::{
    AccountId, CeremonyId, ChallengeId, DeviceId, MessageId, PasskeyId, RequestId, SessionId,
};
pub use passkey::{CeremonyKind, NewPasskey, Passkey, PasskeyName, PasskeyNameError};
pub use password::{NewPassword, PasswordError};
pub use recovery_code::{GeneratedCode, RecoveryCodeInput, RecoveryCodeInputError};
pub use recovery_request::{
    DeliverTo, InvalidTransition, MessageKind, NextStepHints, Ownership, RecoveryAction,
    RecoveryMessage, RecoveryRequest, RecoveryStatus, TEXT_MAX_CHARS,
};
pub use session::{LiveSession, RefreshToken, Session};
pub use text::TextKind;
pub use two_factor::{CodeSet, MfaChallenge, StoredCode, TotpCredential};
