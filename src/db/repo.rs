//! Repository functions, one module per table group.
