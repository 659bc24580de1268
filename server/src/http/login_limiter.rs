//! The password login's limiter (`POST /login`): failed attempts counted per client address and
//! per username, in bounded memory that an attacker cannot flush.
//!
//! * Per client address (IPv6 by /64, [`client_bucket`]): [`LoginLimiter::MAX_FAILURES`] per
//!   [`LoginLimiter::WINDOW`], then 429 until the window ends. The table holds at most
//!   [`LoginLimiter::MAX_ADDRESSES`] addresses; to make room the least recently failed address
//!   that is *not* locked out is forgotten, never a locked-out one. When none of the few oldest
//!   can go (the table is full of locked-out addresses), the newcomer shares one overflow
//!   counter with every other address that found no room, so more addresses than the table
//!   holds gain an attacker nothing.
//! * Per username, whatever the address: only one username can sign in (`UI_USERNAME`), so only
//!   it has a counter of its own; every other username counts in one "unknown user" counter.
//!   After [`LoginLimiter::MAX_FAILURES`] failures within [`LoginLimiter::USER_MEMORY`], each
//!   further failure locks the username (or all unknown ones) for twice as long as the last
//!   (1 s, 2 s, 4 s … up to [`LoginLimiter::MAX_BACKOFF`]): guessing from many addresses gains
//!   nothing, while the right password is held back for seconds, not for good. Failures with
//!   made-up usernames never touch the real username's counter.
//!
//! Every operation is a hash lookup plus a bounded number of ordered-map steps under one mutex;
//! nothing scans the tables.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::client::client_bucket;

/// Whether the username tried is the one that can sign in (`UI_USERNAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Username {
    /// `UI_USERNAME`.
    Known,
    /// Any other.
    Unknown,
}

/// Failed password attempts; see the module documentation.
pub(super) struct LoginLimiter {
    state: Mutex<State>,
}

struct State {
    addresses: AddressTable,
    /// The addresses that found no room in the table, counted together.
    overflow: Window,
    known_user: Backoff,
    unknown_users: Backoff,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::with_capacity(Self::MAX_ADDRESSES)
    }
}

impl LoginLimiter {
    /// Failures allowed per address per [`Self::WINDOW`], and per username before it backs off.
    pub(super) const MAX_FAILURES: u32 = 5;
    /// The per-address window.
    pub(super) const WINDOW: Duration = Duration::from_secs(60);
    /// A username's failures are forgotten after this long without one.
    pub(super) const USER_MEMORY: Duration = Duration::from_secs(15 * 60);
    /// The longest a username is locked after one failure.
    pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
    /// The most client addresses remembered.
    pub(super) const MAX_ADDRESSES: usize = 10_000;

    fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                addresses: AddressTable::new(capacity),
                overflow: Window::default(),
                known_user: Backoff::default(),
                unknown_users: Backoff::default(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// `Err(seconds to wait)` when the address or the username is locked out.
    pub(super) fn check(&self, ip: IpAddr, username: Username) -> Result<(), u64> {
        self.check_at(ip, username, Instant::now())
    }

    fn check_at(&self, ip: IpAddr, username: Username, now: Instant) -> Result<(), u64> {
        let state = self.state();
        let window = match state.addresses.get(&client_bucket(ip)) {
            Some(window) => Some(window),
            // Not in the table: if the table had no room lately, it shares the overflow's count.
            None => Some(&state.overflow),
        };
        if let Some(wait) = window.and_then(|window| window.locked_for(now)) {
            return Err(whole_seconds(wait));
        }
        let user = match username {
            Username::Known => &state.known_user,
            Username::Unknown => &state.unknown_users,
        };
        match user.locked_for(now) {
            Some(wait) => Err(whole_seconds(wait)),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt.
    pub(super) fn failed(&self, ip: IpAddr, username: Username) {
        self.failed_at(ip, username, Instant::now());
    }

    fn failed_at(&self, ip: IpAddr, username: Username, now: Instant) {
        let mut state = self.state();
        let state = &mut *state;
        match state.addresses.entry(client_bucket(ip), now) {
            Some(window) => window.fail(now),
            None => state.overflow.fail(now),
        }
        match username {
            Username::Known => state.known_user.fail(now),
            Username::Unknown => state.unknown_users.fail(now),
        }
    }

    /// Forgets the address's and the username's failures after a successful sign-in.
    pub(super) fn succeeded(&self, ip: IpAddr, username: Username) {
        let mut state = self.state();
        state.addresses.remove(&client_bucket(ip));
        if username == Username::Known {
            state.known_user = Backoff::default();
        }
    }
}

fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// One address's failures in its current window.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    failures: u32,
    /// When the window started; `None` before the first failure.
    since: Option<Instant>,
}

impl Window {
    /// How long the address is still locked out, if it is.
    fn locked_for(&self, now: Instant) -> Option<Duration> {
        let since = self.since?;
        let elapsed = now.saturating_duration_since(since);
        (self.failures >= LoginLimiter::MAX_FAILURES && elapsed < LoginLimiter::WINDOW)
            .then(|| LoginLimiter::WINDOW - elapsed)
    }

    fn fail(&mut self, now: Instant) {
        match self.since {
            Some(since) if now.saturating_duration_since(since) < LoginLimiter::WINDOW => {}
            _ => *self = Window { failures: 0, since: Some(now) },
        }
        self.failures = self.failures.saturating_add(1);
    }
}

/// One username's (or all unknown usernames') failures and lock.
#[derive(Debug, Clone, Copy, Default)]
struct Backoff {
    failures: u32,
    last: Option<Instant>,
    locked_until: Option<Instant>,
}

impl Backoff {
    fn locked_for(&self, now: Instant) -> Option<Duration> {
        self.locked_until.filter(|until| *until > now).map(|until| until - now)
    }

    fn fail(&mut self, now: Instant) {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) >= LoginLimiter::USER_MEMORY)
        {
            *self = Backoff::default();
        }
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        if self.failures >= LoginLimiter::MAX_FAILURES {
            let doublings = (self.failures - LoginLimiter::MAX_FAILURES).min(16);
            let backoff = Duration::from_secs(1u64 << doublings).min(LoginLimiter::MAX_BACKOFF);
            self.locked_until = Some(now + backoff);
        }
    }
}

/// The per-address windows, least recently failed first, at most `capacity` of them.
struct AddressTable {
    capacity: usize,
    /// Each address's window and its position in `order`.
    windows: HashMap<IpAddr, (Window, u64)>,
    /// Position → address; the smallest position is the least recently failed.
    order: BTreeMap<u64, IpAddr>,
    next_position: u64,
}

impl AddressTable {
    /// How many of the oldest addresses one insertion looks at for one it may forget.
    const EVICTION_PROBES: usize = 16;

    fn new(capacity: usize) -> Self {
        Self { capacity, windows: HashMap::new(), order: BTreeMap::new(), next_position: 0 }
    }

    fn get(&self, ip: &IpAddr) -> Option<&Window> {
        self.windows.get(ip).map(|(window, _)| window)
    }

    fn remove(&mut self, ip: &IpAddr) {
        if let Some((_, position)) = self.windows.remove(ip) {
            self.order.remove(&position);
        }
    }

    /// The address's window, now the most recently used; `None` when the table is full and none
    /// of the oldest [`Self::EVICTION_PROBES`] addresses can be forgotten (each is locked out).
    fn entry(&mut self, ip: IpAddr, now: Instant) -> Option<&mut Window> {
        if !self.windows.contains_key(&ip)
            && self.windows.len() >= self.capacity
            && !self.evict(now)
        {
            return None;
        }
        let position = self.take_position();
        let (window, old_position) =
            self.windows.entry(ip).or_insert((Window::default(), position));
        if *old_position != position {
            self.order.remove(old_position);
            *old_position = position;
        }
        self.order.insert(position, ip);
        Some(window)
    }

    fn take_position(&mut self) -> u64 {
        let position = self.next_position;
        self.next_position += 1;
        position
    }

    /// Forgets the least recently failed address that is not locked out. Locked-out ones met on
    /// the way move to the back of the line, so the next insertion does not look at them again.
    fn evict(&mut self, now: Instant) -> bool {
        for _ in 0..Self::EVICTION_PROBES {
            let Some((_, ip)) = self.order.pop_first() else { return false };
            let Some((window, position)) = self.windows.get_mut(&ip) else { continue };
            if window.locked_for(now).is_none() {
                self.windows.remove(&ip);
                return true;
            }
            let fresh = self.next_position;
            self.next_position += 1;
            *position = fresh;
            self.order.insert(fresh, ip);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn junk_usernames_never_reset_the_real_usernames_backoff() {
        let limiter = LoginLimiter::with_capacity(100);
        let now = Instant::now();
        for n in 0..5 {
            limiter.failed_at(v4(n), Username::Known, now);
        }
        assert!(limiter.check_at(v4(99), Username::Known, now).is_err());
        // Far more junk than the table holds, from far more addresses.
        for n in 0..10_000 {
            limiter.failed_at(v4(1000 + n), Username::Unknown, now);
        }
        let wait = limiter.check_at(v4(99), Username::Known, now).unwrap_err();
        assert_eq!(wait, 1);
        // After the lock, the next failure doubles it: the count was kept.
        let later = now + Duration::from_secs(2);
        assert!(limiter.check_at(v4(99), Username::Known, later).is_ok());
        limiter.failed_at(v4(99), Username::Known, later);
        assert_eq!(limiter.check_at(v4(98), Username::Known, later), Err(2));
    }

    /// The user name's lock doubles up to five minutes and no further, and its failures are
    /// forgotten after fifteen minutes without one (SECURITY.md).
    #[test]
    fn a_user_names_lock_stops_at_five_minutes_and_its_count_at_fifteen() {
        let limiter = LoginLimiter::with_capacity(100);
        let now = Instant::now();
        // From 30 addresses, so that no address window locks: only the user name's does.
        for n in 0..30 {
            limiter.failed_at(v4(n), Username::Known, now);
        }
        assert_eq!(limiter.check_at(v4(1000), Username::Known, now), Err(300));
        // Sixteen minutes on, one more failure starts the count over: no lock.
        let later = now + Duration::from_secs(16 * 60);
        assert!(limiter.check_at(v4(1000), Username::Known, later).is_ok());
        limiter.failed_at(v4(1001), Username::Known, later);
        assert!(limiter.check_at(v4(1000), Username::Known, later).is_ok());
    }

    #[test]
    fn locked_out_addresses_are_never_forgotten_to_make_room() {
        let limiter = LoginLimiter::with_capacity(4);
        let now = Instant::now();
        let attacker = v4(1);
        for _ in 0..5 {
            limiter.failed_at(attacker, Username::Unknown, now);
        }
        assert!(limiter.check_at(attacker, Username::Known, now).is_err());
        // Hundreds of other addresses, one failure each, through a table of four.
        for n in 0..500 {
            limiter.failed_at(v4(100 + n), Username::Unknown, now);
        }
        assert!(limiter.check_at(attacker, Username::Known, now).is_err());
        assert!(limiter.state().addresses.windows.len() <= 4);
        // Its window ends as any other does.
        let later = now + LoginLimiter::WINDOW;
        assert!(limiter.check_at(attacker, Username::Known, later).is_ok());
    }

    #[test]
    fn a_table_full_of_locked_out_addresses_sends_newcomers_to_one_shared_counter() {
        let limiter = LoginLimiter::with_capacity(2);
        let now = Instant::now();
        for n in 1..=2 {
            for _ in 0..5 {
                limiter.failed_at(v4(n), Username::Unknown, now);
            }
        }
        // No room: five newcomers fail once each, in one shared count.
        for n in 10..15 {
            assert!(limiter.check_at(v4(n), Username::Known, now).is_ok());
            limiter.failed_at(v4(n), Username::Unknown, now);
        }
        assert!(limiter.check_at(v4(20), Username::Known, now).is_err());
        // The locked-out ones are still locked out.
        assert!(limiter.check_at(v4(1), Username::Known, now).is_err());
        assert!(limiter.check_at(v4(2), Username::Known, now).is_err());
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for n in 1..=5 {
            limiter.failed_at(ip(&format!("2001:db8:7:7::{n:x}")), Username::Unknown, now);
        }
        assert!(limiter.check_at(ip("2001:db8:7:7:ffff::1"), Username::Unknown, now).is_err());
        // The unknown-user counter is locked too; another /64 with the real username is not.
        assert!(limiter.check_at(ip("2001:db8:7:8::1"), Username::Known, now).is_ok());
    }

    #[test]
    fn a_success_clears_the_address_and_the_username() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for _ in 0..4 {
            limiter.failed_at(v4(1), Username::Known, now);
        }
        limiter.succeeded(v4(1), Username::Known);
        limiter.failed_at(v4(1), Username::Known, now);
        assert!(limiter.check_at(v4(1), Username::Known, now).is_ok());
    }
}
