//! Mail: the outbox writer, the dispatcher, transports and templates.
