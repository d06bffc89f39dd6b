//! The clock-skew nemesis: the environment that makes one process (a node) see its wall clock
//! offset by a fixed number of seconds, through libfaketime's LD_PRELOAD interposition.
//!
//! Only the wall clock moves: `CLOCK_MONOTONIC` (Rust's `Instant`, tokio's timers, hence Raft's
//! election timeouts and heartbeats) is left alone, so the skew tests exactly the code that
//! reads `SystemTime` (token expiry, audit timestamps).

use std::path::Path;

/// Where Debian and Ubuntu (package `libfaketime`) and a source install put the library.
pub const LIBFAKETIME_PATHS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error(
        "libfaketime.so.1 is not at any of {searched:?}: install the Debian package `libfaketime` \
         (`apt-get install -y faketime` pulls it in)"
    )]
    LibraryMissing { searched: Vec<String> },
}

/// The first of [`LIBFAKETIME_PATHS`] that exists.
pub fn libfaketime_path() -> Result<&'static str, ClockError> {
    LIBFAKETIME_PATHS
        .into_iter()
        .find(|path| Path::new(path).is_file())
        .ok_or_else(|| ClockError::LibraryMissing {
            searched: LIBFAKETIME_PATHS.map(str::to_owned).to_vec(),
        })
}

/// Environment variables that offset a process's wall clock by `offset_s` seconds (negative:
/// behind). Set them on the node's `Command` (`.envs(skew_env(30)?)`); they also apply to
/// `ip netns exec` on the way, which is harmless.
///
/// `FAKETIME` is libfaketime's relative format: a sign, then seconds (README section 4d:
/// "+30", "-30"). The offset is fixed for the process's life, so `FAKETIME_NO_CACHE` is not
/// set: the cache only delays noticing a changed spec, and re-reading it on every clock call
/// would slow the node for nothing. `LD_PRELOAD` replaces any inherited value.
pub fn skew_env(offset_s: i64) -> Result<Vec<(String, String)>, ClockError> {
    let library = libfaketime_path()?;
    Ok(vec![
        ("LD_PRELOAD".to_owned(), library.to_owned()),
        ("FAKETIME".to_owned(), faketime_spec(offset_s)),
        // Without it libfaketime also shifts CLOCK_MONOTONIC (to the faked wall time).
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
    ])
}

/// libfaketime wants the sign even for a positive offset: "+30" is relative, "30" is not.
fn faketime_spec(offset_s: i64) -> String {
    format!("{offset_s:+}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_signed_seconds() {
        assert_eq!(faketime_spec(30), "+30");
        assert_eq!(faketime_spec(-30), "-30");
        assert_eq!(faketime_spec(0), "+0");
    }
}
