//! account-recovery: gets locked-out people back into their accounts safely.
//!
//! Layers, dependencies pointing one way: [`api`] → [`services`] → ([`domain`], [`db`],
//! [`mail`], [`security`]). `main` and the black-box tests build the service through
//! [`startup::Application`].

pub mod api;
pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod domain;
pub mod mail;
pub mod metrics;
pub mod security;
pub mod services;
pub mod startup;
pub mod telemetry;
