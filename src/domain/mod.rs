//! Types that are valid by construction. No I/O, and nothing else from the crate.
