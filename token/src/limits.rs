//! Bounds shared by every kind of JWT this crate reads: access tokens, client assertions and
//! upstream id_tokens. Bounds of one kind only live with it (`jwt::TOKEN_LEN_MAX`, …).

/// The longest `kid` looked up, in bytes.
pub const KEY_ID_LEN_MAX: usize = 128;
/// The latest time a claim may name: 9999-12-31T23:59:59Z.
pub const UNIX_TIME_MAX: u64 = 253_402_300_799;
