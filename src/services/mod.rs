//! Use cases: one module each. A service validates with domain types, runs its reads and
//! writes (and the mails they cause) in one transaction through `db`, and returns its own
//! error enum. Services know nothing of HTTP.

pub mod health;
