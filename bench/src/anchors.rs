//! Anchors measured in the same run as the cluster figures, so those compare across machines
//! as ratios: the in-process Ed25519 sign and verify rate of the library the nodes use
//! (aws-lc-rs), on one thread, and the fdatasync rate of the disk the nodes write to.

use std::{
    io::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey},
};
use serde::{Deserialize, Serialize};

use crate::report::stats::percentile;

/// How long each anchor runs.
pub const ANCHOR_DURATION: Duration = Duration::from_secs(1);
/// The signed message's length: about a JWT's signing input (header and seven claims).
const MESSAGE_BYTES: usize = 220;
/// The bytes written before each fdatasync: etcd's fio guidance (`--bs=2300`), about one WAL
/// entry of a small write.
const FSYNC_WRITE_BYTES: usize = 2300;
/// The file the fdatasync anchor writes is truncated back to empty at this size.
const FSYNC_FILE_BYTES_MAX: u64 = 64 << 20;

/// The anchors of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anchors {
    pub ed25519_sign_per_s: f64,
    pub ed25519_verify_per_s: f64,
    pub fsync: FsyncRate,
}

/// `write(2300 bytes)` + `fdatasync` in a loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FsyncRate {
    pub per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Measures every anchor, one after the other on the calling thread; `data_dir` is where the
/// nodes keep their data (the fdatasync file goes there and is removed after).
pub fn measure(data_dir: &Path) -> anyhow::Result<Anchors> {
    let (ed25519_sign_per_s, ed25519_verify_per_s) = ed25519(ANCHOR_DURATION)?;
    Ok(Anchors {
        ed25519_sign_per_s,
        ed25519_verify_per_s,
        fsync: fdatasync(data_dir, ANCHOR_DURATION)?,
    })
}

/// Ed25519 signatures and verifications per second over a [`MESSAGE_BYTES`] message, each
/// for `duration`, on this thread.
pub fn ed25519(duration: Duration) -> anyhow::Result<(f64, f64)> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| anyhow::format_err!("generate an Ed25519 key"))?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::format_err!("parse the generated key"))?;
    let message = [0x5a_u8; MESSAGE_BYTES];
    let signature = key.sign(&message);
    let public = UnparsedPublicKey::new(&ED25519, key.public_key().as_ref().to_vec());
    let sign_rate = rate(duration, || {
        std::hint::black_box(key.sign(std::hint::black_box(&message)));
    });
    let mut failures = 0_u64;
    let verify_rate = rate(duration, || {
        if public
            .verify(std::hint::black_box(&message), signature.as_ref())
            .is_err()
        {
            failures += 1;
        }
    });
    anyhow::ensure!(
        failures == 0,
        "{failures} verifications of a good signature failed"
    );
    Ok((sign_rate, verify_rate))
}

/// Calls `op` for `duration` and returns the calls per second.
fn rate(duration: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0_u64;
    while start.elapsed() < duration {
        // Check the clock once per 64 calls: a clock read costs about as much as a hash.
        for _ in 0..64 {
            op();
        }
        calls += 64;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

/// fdatasyncs per second (each after appending [`FSYNC_WRITE_BYTES`]) of a file in `dir`, for
/// `duration`, with the median and p99 of one write + fdatasync.
pub fn fdatasync(dir: &Path, duration: Duration) -> anyhow::Result<FsyncRate> {
    let path = dir.join("anchor-fdatasync.bin");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let block = [0xa5_u8; FSYNC_WRITE_BYTES];
    let mut latencies_us = Vec::new();
    let mut written = 0_u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        let one = Instant::now();
        file.write_all(&block).context("write")?;
        file.sync_data().context("fdatasync")?;
        latencies_us.push(one.elapsed().as_secs_f64() * 1e6);
        written += FSYNC_WRITE_BYTES as u64;
        if FSYNC_FILE_BYTES_MAX <= written {
            file.set_len(0).context("truncate")?;
            written = 0;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    latencies_us.sort_by(f64::total_cmp);
    Ok(FsyncRate {
        per_s: latencies_us.len() as f64 / seconds,
        p50_us: percentile(&latencies_us, 0.50),
        p99_us: percentile(&latencies_us, 0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_rates_are_measured() {
        let (sign, verify) = ed25519(Duration::from_millis(20)).expect("runs");
        assert!(sign.is_finite() && 0.0 < sign, "{sign}");
        assert!(verify.is_finite() && 0.0 < verify, "{verify}");
    }

    #[test]
    fn fdatasync_leaves_no_file_and_orders_its_percentiles() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rate = fdatasync(dir.path(), Duration::from_millis(30)).expect("runs");
        assert!(0.0 < rate.per_s && rate.p50_us <= rate.p99_us, "{rate:?}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
