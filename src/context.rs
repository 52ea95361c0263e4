//! The state every handler and service shares: configuration, database, clock and the
//! security and mail components built from them once at start.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;

/// The app's shared state, handed to handlers as `web::Data<Ctx>`.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database pool.
    pub db: Db,
    /// The clock every service reads time from.
    pub clock: SharedClock,
}
