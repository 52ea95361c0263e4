//! Types that are valid by construction. No I/O, and nothing else from the crate.

pub mod account;
pub mod audit;
pub mod password;

pub use account::{EmailAddress, EmailError, Login, Role, SecondFactor, Username, UsernameError};
pub use audit::EventType;
pub use password::{NewPassword, PasswordError};
