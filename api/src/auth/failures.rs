//! Failure limits: how many costly authentication attempts may fail per principal and per peer
//! address in a window.
//!
//! An attempt is charged when it starts (before its argon2 hash or its catch-up), so concurrent
//! attempts cannot overrun the limit, and forgiven when it succeeds. Only costly attempts are
//! charged: a malformed credential costs nothing, and a secret this node verified before is
//! answered from the cache, so an attacker flooding an agent's name does not lock out the agent
//! on the nodes that know its secret. Unknown and known principals are counted alike, so the
//! limits say nothing about which exist.

use std::{
    borrow::Borrow,
    collections::BTreeMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
    time::{Duration, Instant},
};

use tonic::Code;

use crate::error::{ApiError, Reason};

/// The limits, per window.
#[derive(Clone, Copy, Debug)]
pub struct FailureLimits {
    pub per_principal_max: u32,
    pub per_address_max: u32,
    pub window: Duration,
    /// Keys tracked per table.
    pub keys_max: usize,
}

pub struct Failures {
    limits: FailureLimits,
    principals: Mutex<Windows<String>>,
    addresses: Mutex<Windows<IpAddr>>,
}

/// What one attempt was charged to, so that success can forgive exactly that.
#[derive(Debug)]
pub struct Charge {
    principal: Option<(String, Instant)>,
    address: Option<(IpAddr, Instant)>,
}

impl Failures {
    pub fn new(limits: FailureLimits) -> Failures {
        Failures {
            limits,
            principals: Mutex::new(Windows::default()),
            addresses: Mutex::new(Windows::default()),
        }
    }

    /// Charges one attempt to `principal` and to `peer`'s address, or refuses it (charging
    /// nothing) when either has used up its window: RESOURCE_EXHAUSTED, `AUTH_RATE_LIMITED`.
    pub fn charge(
        &self,
        principal: Option<&str>,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<Charge, ApiError> {
        let address = peer.map(address_key);
        let limits = self.limits;
        let mut principals = lock(&self.principals);
        let mut addresses = lock(&self.addresses);
        if let Some(principal) = principal
            && let Some(retry_after) =
                principals.exhausted(principal, limits.per_principal_max, limits.window, now)
        {
            return Err(limited(
                &format!("for principal {principal}"),
                limits.per_principal_max,
                limits.window,
                retry_after,
            ));
        }
        if let Some(address) = address
            && let Some(retry_after) =
                addresses.exhausted(&address, limits.per_address_max, limits.window, now)
        {
            return Err(limited(
                &format!("from address {address}"),
                limits.per_address_max,
                limits.window,
                retry_after,
            ));
        }
        let principal = principal.map(|principal| {
            let start = principals.add(principal.to_string(), &limits, now);
            (principal.to_string(), start)
        });
        let address = address.map(|address| (address, addresses.add(address, &limits, now)));
        Ok(Charge { principal, address })
    }

    /// Takes back a charge whose attempt succeeded, if its window is still the current one.
    pub fn forgive(&self, charge: Charge) {
        if let Some((principal, start)) = charge.principal {
            lock(&self.principals).remove(&principal, start);
        }
        if let Some((address, start)) = charge.address {
            lock(&self.addresses).remove(&address, start);
        }
    }
}

/// One table of windows: per key, when its window started and how many attempts it counts.
struct Windows<K> {
    windows: BTreeMap<K, (Instant, u32)>,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Windows {
            windows: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Windows<K> {
    /// How long until `key` may try again, if its window's attempts are used up.
    fn exhausted<Q>(&self, key: &Q, max: u32, window: Duration, now: Instant) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (start, count) = self.windows.get(key)?;
        let ends = *start + window;
        (now < ends && max <= *count).then(|| ends - now)
    }

    /// Counts one attempt for `key`; returns the start of the window it was counted in.
    fn add(&mut self, key: K, limits: &FailureLimits, now: Instant) -> Instant {
        if limits.keys_max <= self.windows.len() && !self.windows.contains_key(&key) {
            self.windows
                .retain(|_, (start, _)| now < *start + limits.window);
            if limits.keys_max <= self.windows.len() {
                // Failing open on old counts beats refusing every new name: the other table
                // (addresses for principals, principals for addresses) still holds.
                tracing::warn!(
                    keys = self.windows.len(),
                    "failure table full; starting afresh"
                );
                self.windows.clear();
            }
        }
        let entry = self.windows.entry(key).or_insert((now, 0));
        if entry.0 + limits.window <= now {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.0
    }

    /// Uncounts one attempt for `key` made in the window that started at `start`.
    fn remove(&mut self, key: &K, start: Instant) {
        if let Some(entry) = self.windows.get_mut(key)
            && entry.0 == start
        {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                self.windows.remove(key);
            }
        }
    }
}

/// An IPv6 host usually holds a whole /64, so that is what counts as one address.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

fn limited(who: &str, max: u32, window: Duration, retry_after: Duration) -> ApiError {
    let retry_after_s = retry_after.as_secs().max(1);
    ApiError::new(
        Code::ResourceExhausted,
        Reason::AuthRateLimited,
        format!(
            "too many failed authentication attempts {who}; allowed: {max} per {} s; retry in \
             {retry_after_s} s",
            window.as_secs()
        ),
    )
    .with("retry_after_s", retry_after_s.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FailureLimits = FailureLimits {
        per_principal_max: 3,
        per_address_max: 5,
        window: Duration::from_secs(60),
        keys_max: 4,
    };

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("an address"))
    }

    fn reason(result: Result<Charge, ApiError>) -> Result<(), (Code, &'static str, String)> {
        result
            .map(|_| ())
            .map_err(|e| (e.code, e.reason.as_str(), e.message))
    }

    #[test]
    fn a_principal_gets_its_allowance_per_window_then_is_refused_until_it_ends() {
        let failures = Failures::new(LIMITS);
        let t0 = Instant::now();
        for _ in 0..3 {
            failures
                .charge(Some("bot"), ip("10.0.0.1"), t0)
                .expect("within the allowance");
        }
        let refused = reason(failures.charge(Some("bot"), ip("10.0.0.2"), t0 + LIMITS.window / 2));
        assert_eq!(
            refused,
            Err((
                Code::ResourceExhausted,
                "AUTH_RATE_LIMITED",
                "too many failed authentication attempts for principal bot; allowed: 3 per 60 s; \
                 retry in 30 s"
                    .to_owned()
            ))
        );
        // Other principals are unaffected, and the refused attempt charged nothing.
        failures
            .charge(Some("other"), ip("10.0.0.2"), t0)
            .expect("another principal");
        let counted = |address: &str| {
            lock(&failures.addresses)
                .windows
                .get(&ip(address).expect("an address"))
                .map(|(_, count)| *count)
        };
        assert_eq!(
            (counted("10.0.0.1"), counted("10.0.0.2")),
            (Some(3), Some(1))
        );
        // A new window.
        failures
            .charge(Some("bot"), ip("10.0.0.3"), t0 + LIMITS.window)
            .expect("the window ended");
    }

    #[test]
    fn an_address_is_limited_across_principals_and_ipv6_counts_by_its_64() {
        let failures = Failures::new(LIMITS);
        let t0 = Instant::now();
        for idx in 0..5 {
            let principal = format!("p{idx}");
            failures
                .charge(Some(&principal), ip(&format!("2001:db8::{idx}")), t0)
                .expect("within the allowance");
        }
        let refused = reason(failures.charge(Some("p9"), ip("2001:db8::ffff"), t0));
        assert_eq!(
            refused.map_err(|(_, code, message)| (code, message)),
            Err((
                "AUTH_RATE_LIMITED",
                "too many failed authentication attempts from address 2001:db8::; allowed: 5 per \
                 60 s; retry in 60 s"
                    .to_owned()
            ))
        );
        failures
            .charge(Some("p9"), ip("2001:db9::1"), t0)
            .expect("another /64");
        failures
            .charge(Some("p9"), None, t0)
            .expect("no address, only the principal counts");
    }

    #[test]
    fn success_is_forgiven_and_only_in_its_own_window() {
        let failures = Failures::new(LIMITS);
        let t0 = Instant::now();
        for _ in 0..10 {
            let charge = failures
                .charge(Some("bot"), ip("10.0.0.1"), t0)
                .expect("successes never use up the allowance");
            failures.forgive(charge);
        }
        let old = failures.charge(Some("bot"), None, t0).expect("charged");
        let t1 = t0 + LIMITS.window;
        for _ in 0..3 {
            failures
                .charge(Some("bot"), None, t1)
                .expect("a new window");
        }
        // Forgiving an attempt of the window before does not free a place in this one.
        failures.forgive(old);
        assert!(failures.charge(Some("bot"), None, t1).is_err());
    }

    #[test]
    fn a_full_table_drops_ended_windows_first() {
        let failures = Failures::new(LIMITS);
        let t0 = Instant::now();
        for _ in 0..3 {
            failures.charge(Some("bot"), None, t0).expect("charged");
        }
        for idx in 0..3 {
            failures
                .charge(Some(&format!("p{idx}")), None, t0 + LIMITS.window)
                .expect("charged");
        }
        // The table is full (4 keys); bot's window ended, so it goes and the newcomer fits.
        failures
            .charge(Some("p3"), None, t0 + LIMITS.window)
            .expect("charged");
        assert_eq!(lock(&failures.principals).windows.len(), 4);
        assert!(!lock(&failures.principals).windows.contains_key("bot"));
    }
}
