//! The batch stamp: the leader's wall clock, never below the last stamp applied, and never
//! further ahead of the time this node can vouch for than [`STAMP_LEAD_MAX_MS`].
//!
//! Apply reads no clock: every expiry in the cluster is judged against batch stamps, and stamps
//! never go backwards. So a leader whose wall clock is far ahead would, with one batch, move
//! cluster time forward for good (tokens issued "in the future", delegations and sessions ending
//! early), and every later leader would keep it there. A node's monotonic clock cannot jump, so
//! the stamper anchors cluster time once, at its first stamp, and from then on stamps at most
//! what the monotonic clock says has passed since, plus [`STAMP_LEAD_MAX_MS`]. A wall clock
//! beyond that is reported (a warning when it starts, a counter for every bounded batch), and
//! the batch carries the bound instead. A wall clock behind only makes stamps wait at the last
//! applied one, as before.
//!
//! A later stamp applied from another leader moves the anchor up to it, less the bound (that
//! leader may have used its bound), so a node that anchored on a slow clock follows the cluster,
//! and two nodes never ratchet each other forward by the bound at each leader change.
//!
//! The first stamp after a start trusts the wall clock: after the whole cluster was down, the
//! last applied stamp is older than now by the outage, and nothing on the node can tell an
//! outage from a clock that is ahead. A node that is alone, anchored on a wall clock that was
//! then stepped forward, stamps behind until it restarts; its warning and counter say so.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// How far a stamp may run ahead of the time this node vouches for (its anchor plus the
/// monotonic time since), in milliseconds: room for NTP slewing the wall clock, not for a jump.
pub const STAMP_LEAD_MAX_MS: u64 = 1_000;

/// Chooses batch stamps for one proposer.
pub(crate) struct Stamper {
    /// The first stamp, and when it was chosen: cluster time as this node vouches for it.
    anchor: Option<(u64, Instant)>,
    last_stamp_ms: u64,
    /// Whether the last stamp was bounded, so a run of bounded batches warns once.
    bounding: bool,
    /// Batches whose stamp was bounded because the wall clock was too far ahead.
    bounded: Arc<AtomicU64>,
}

impl Stamper {
    pub(crate) fn new(bounded: Arc<AtomicU64>) -> Self {
        Stamper {
            anchor: None,
            last_stamp_ms: 0,
            bounding: false,
            bounded,
        }
    }

    /// The stamp of a batch built at wall time `wall_ms` and monotonic time `now`, after the
    /// state machine applied a batch stamped `applied_ms`.
    pub(crate) fn next(&mut self, wall_ms: u64, now: Instant, applied_ms: u64) -> u64 {
        let floor_ms = self.last_stamp_ms.max(applied_ms);
        let vouched_ms = self.vouched_ms(wall_ms.max(floor_ms), now, applied_ms);
        let ceiling_ms = vouched_ms.saturating_add(STAMP_LEAD_MAX_MS);
        let stamp_ms = if ceiling_ms < wall_ms {
            self.bounded.fetch_add(1, Ordering::Relaxed);
            if !self.bounding {
                tracing::warn!(
                    wall_ms,
                    stamp_ms = ceiling_ms,
                    ahead_ms = wall_ms - vouched_ms,
                    "the wall clock jumped ahead of the time this node vouches for; batch \
                     stamps are bounded until it is back (check NTP)"
                );
            }
            self.bounding = true;
            ceiling_ms.max(floor_ms)
        } else {
            self.bounding = false;
            wall_ms.max(floor_ms)
        };
        self.last_stamp_ms = stamp_ms;
        stamp_ms
    }

    /// The time this node vouches for at `now`: its anchor (set to `first_ms` at the first
    /// stamp) plus the monotonic time since, or a later stamp of another leader less the bound.
    fn vouched_ms(&mut self, first_ms: u64, now: Instant, applied_ms: u64) -> u64 {
        let (anchor_ms, anchored_at) = *self.anchor.get_or_insert((first_ms, now));
        let elapsed_ms = u64::try_from(now.saturating_duration_since(anchored_at).as_millis())
            .unwrap_or(u64::MAX);
        let vouched_ms = anchor_ms.saturating_add(elapsed_ms);
        // Applied beyond our own last stamp: another leader stamped it.
        let others_ms = applied_ms.saturating_sub(STAMP_LEAD_MAX_MS);
        if self.last_stamp_ms < applied_ms && vouched_ms < others_ms {
            self.anchor = Some((others_ms, now));
            return others_ms;
        }
        vouched_ms
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T0: u64 = 1_764_000_000_000;
    const HOUR_MS: u64 = 3_600_000;

    fn stamper() -> (Stamper, Arc<AtomicU64>) {
        let bounded = Arc::new(AtomicU64::new(0));
        (Stamper::new(bounded.clone()), bounded)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_wall_clock_that_jumps_ahead_moves_cluster_time_by_the_bound_only() {
        let (mut stamper, bounded) = stamper();
        let start = Instant::now();
        assert_eq!(stamper.next(T0, start, T0 - 50), T0);
        // The wall clock jumps an hour ahead 10 ms later: the stamp is what the node can vouch
        // for (10 ms later) plus the bound, and it stays bounded while the clock stays ahead.
        let later = start + ms(10);
        assert_eq!(
            stamper.next(T0 + HOUR_MS, later, T0),
            T0 + 10 + STAMP_LEAD_MAX_MS
        );
        let later = start + ms(20);
        assert_eq!(
            stamper.next(T0 + HOUR_MS + 10, later, T0 + 10 + STAMP_LEAD_MAX_MS),
            T0 + 20 + STAMP_LEAD_MAX_MS
        );
        assert_eq!(bounded.load(Ordering::Relaxed), 2);
        // A hundred batches later the jump has still gained at most the bound.
        let mut last = 0;
        for i in 0..100 {
            let now = start + ms(30 + i);
            last = stamper.next(T0 + HOUR_MS + 30 + i, now, last);
            assert!(last <= T0 + 30 + i + STAMP_LEAD_MAX_MS, "batch {i}: {last}");
        }
        assert_eq!(bounded.load(Ordering::Relaxed), 102);
        // The clock is set right again: stamps follow it, never going back.
        let now = start + ms(5_000);
        assert_eq!(stamper.next(T0 + 5_000, now, last), T0 + 5_000);
        assert_eq!(bounded.load(Ordering::Relaxed), 102);
    }

    #[test]
    fn stamps_follow_a_wall_clock_within_the_bound_and_never_go_back() {
        let (mut stamper, bounded) = stamper();
        let start = Instant::now();
        assert_eq!(stamper.next(T0, start, 0), T0);
        // NTP slewing a little ahead: within the bound, the wall clock is used.
        assert_eq!(stamper.next(T0 + 900, start + ms(100), T0), T0 + 900);
        // A wall clock behind the last stamp: the stamp waits there.
        assert_eq!(stamper.next(T0 + 500, start + ms(200), T0 + 900), T0 + 900);
        // An idle hour: the monotonic clock vouches for it.
        let idle = start + Duration::from_secs(3_600);
        assert_eq!(stamper.next(T0 + HOUR_MS, idle, T0 + 900), T0 + HOUR_MS);
        assert_eq!(bounded.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn another_leaders_later_stamp_moves_the_anchor_less_the_bound() {
        let (mut stamper, bounded) = stamper();
        let start = Instant::now();
        // This node started with its wall clock ten minutes slow.
        let slow_ms = 600_000;
        assert_eq!(stamper.next(T0 - slow_ms, start, 0), T0 - slow_ms);
        // While it followed, a leader with a right clock stamped T0 + 10.
        let applied = T0 + 10;
        // Never below it; and NTP has stepped this node's clock right meanwhile: the stamp
        // follows its wall clock, because the anchor moved up to the leader's time.
        assert_eq!(stamper.next(T0 + 5, start + ms(10), applied), applied);
        assert_eq!(stamper.next(T0 + 20, start + ms(20), applied), T0 + 20);
        assert_eq!(bounded.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn two_leaders_with_fast_clocks_do_not_ratchet_each_other_by_the_bound() {
        let start = Instant::now();
        let (mut a, _) = stamper();
        let (mut b, _) = stamper();
        assert_eq!(a.next(T0, start, 0), T0);
        assert_eq!(b.next(T0, start, T0), T0);
        // Both wall clocks jump an hour ahead; the leadership goes back and forth.
        let mut applied = T0;
        for i in 1..=20 {
            let now = start + ms(i);
            let leader = if i % 2 == 0 { &mut a } else { &mut b };
            applied = leader.next(T0 + HOUR_MS, now, applied);
            assert!(
                applied <= T0 + i + STAMP_LEAD_MAX_MS,
                "change {i}: {applied}"
            );
        }
    }

    #[test]
    fn the_first_stamp_after_a_start_trusts_the_wall_clock() {
        // After an outage of the whole cluster the last applied stamp is a day old.
        let (mut stamper, bounded) = stamper();
        let day_ms = 24 * HOUR_MS;
        assert_eq!(stamper.next(T0 + day_ms, Instant::now(), T0), T0 + day_ms);
        assert_eq!(bounded.load(Ordering::Relaxed), 0);
    }
}
