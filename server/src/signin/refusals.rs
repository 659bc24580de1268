//! How many refused or failed sign-in attempts are written to `sign_in_events`: a bounded number
//! per client address (IPv6 by /64) and in all, per minute. Anyone can make a refused attempt;
//! without a bound, one client could grow the database as fast as it can send requests.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The bound on refusal events.
#[derive(Debug)]
pub(crate) struct RefusalBudget {
    per_peer: u32,
    total: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    started: Instant,
    by_peer: HashMap<IpAddr, u32>,
    recorded: u32,
    /// Refusals not recorded since the last one that was.
    skipped: u64,
}

/// Whether to record a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Record it; `skipped` refusals before it were not recorded.
    Record { skipped: u64 },
    /// Over the bound: count it, write nothing.
    Skip,
}

impl Default for RefusalBudget {
    fn default() -> Self {
        Self::new(20, 600, Duration::from_secs(60))
    }
}

impl RefusalBudget {
    /// At most `per_peer` events per address and `total` in all per `window`.
    pub(crate) fn new(per_peer: u32, total: u32, window: Duration) -> Self {
        Self {
            per_peer,
            total,
            window,
            state: Mutex::new(State {
                started: Instant::now(),
                by_peer: HashMap::new(),
                recorded: 0,
                skipped: 0,
            }),
        }
    }

    /// Decides for one refusal from `peer`.
    pub(crate) fn admit(&self, peer: IpAddr) -> Admit {
        let mut state = self.state.lock().unwrap_or_else(|poison| poison.into_inner());
        if state.started.elapsed() >= self.window {
            state.started = Instant::now();
            state.by_peer.clear();
            state.recorded = 0;
        }
        let key = bucket(peer);
        let count = state.by_peer.get(&key).copied().unwrap_or(0);
        if count >= self.per_peer || state.recorded >= self.total {
            if state.skipped == 0 {
                tracing::warn!(
                    peer = %key,
                    "too many refused sign-in attempts: not recording further ones for now"
                );
            }
            state.skipped += 1;
            return Admit::Skip;
        }
        state.by_peer.insert(key, count + 1);
        state.recorded += 1;
        Admit::Record { skipped: std::mem::take(&mut state.skipped) }
    }
}

/// The address a bound applies to: IPv4 as is, IPv6 by its /64 (one host usually has a whole
/// /64 to choose from).
fn bucket(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_and_the_total_are_bounded() {
        let budget = RefusalBudget::new(3, 5, Duration::from_secs(3600));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(budget.admit(a), Admit::Record { skipped: 0 });
        }
        assert_eq!(budget.admit(a), Admit::Skip);
        assert_eq!(budget.admit(a), Admit::Skip);
        // The next recorded event says how many were not.
        assert_eq!(budget.admit(b), Admit::Record { skipped: 2 });
        assert_eq!(budget.admit(b), Admit::Record { skipped: 0 });
        // Five recorded in all: the total bound holds for a fresh address too.
        assert_eq!(budget.admit(c), Admit::Skip);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let budget = RefusalBudget::new(2, 100, Duration::from_secs(3600));
        for host in ["2001:db8::1", "2001:db8::2:3"] {
            assert!(matches!(budget.admit(host.parse().unwrap()), Admit::Record { .. }));
        }
        assert_eq!(budget.admit("2001:db8::ffff".parse().unwrap()), Admit::Skip);
        assert!(matches!(budget.admit("2001:db8:0:1::1".parse().unwrap()), Admit::Record { .. }));
    }

    #[test]
    fn the_window_starts_over() {
        let budget = RefusalBudget::new(1, 1, Duration::from_millis(50));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(budget.admit(a), Admit::Record { .. }));
        assert_eq!(budget.admit(a), Admit::Skip);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(budget.admit(a), Admit::Record { skipped: 1 });
    }
}
