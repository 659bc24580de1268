//! Refused or failed sign-in attempts, bounded but never dropped. Anyone can make a refused
//! attempt; without a bound, one client could grow the database or the log as fast as it can
//! send requests.
//!
//! Events ([`RefusalBudget`]): per minute, each client address (IPv6 by /64) has 20 events per
//! method written one by one, and each method 600 in all (so a flood of header or OIDC refusals
//! never hides a password guess). Attempts past that are counted per (client address, method,
//! reason class) and written as one summary row per count, every minute and at shutdown
//! ([`SignInService::write_refusal_summaries`]). At most [`MAX_SUMMARIES`] addresses are
//! counted apart; the rest share one count per method and class, with the address `*`.
//!
//! Log lines ([`LogSampler`]): a line anyone can cause is written at most 10 times a minute;
//! the next one written says how many were left out.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hookgate_core::records::SignInRecord;

use super::{Attempt, LoginMethod, SignInError, SignInService};
use crate::{
    db,
    untrusted::{MAX_SHOWN, printable},
};

/// How many (address, method, class) counts are kept apart before the rest share one.
pub(crate) const MAX_SUMMARIES: usize = 1000;

/// The bound on refusal events.
#[derive(Debug)]
pub(crate) struct RefusalBudget {
    per_client: u32,
    per_method: u32,
    window: Duration,
    max_summaries: usize,
    state: Mutex<State>,
    /// Samples the log lines of hook refusals (a client behind the proxy can cause them).
    hook_refusal_log: LogSampler,
}

#[derive(Debug)]
struct State {
    started: Instant,
    /// Events written one by one in this window, per (client bucket, method).
    by_client: HashMap<(IpAddr, &'static str), u32>,
    /// Events written one by one in this window, per method ([`method_index`]).
    by_method: [u32; 3],
    /// Whether this window's first attempt over the bound was logged.
    warned: bool,
    /// Attempts counted instead of written, until [`RefusalBudget::take_summaries`].
    counted: HashMap<SummaryKey, Tally>,
}

/// What a summary row counts: attempts from one client address (`None`: the shared count of
/// addresses past [`MAX_SUMMARIES`]), by one method, refused for one kind of reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SummaryKey {
    client: Option<IpAddr>,
    method: &'static str,
    class: &'static str,
}

#[derive(Debug)]
struct Tally {
    count: u64,
    outcome: &'static str,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    last_reason: String,
}

/// Whether to write a refusal event now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Write it.
    Record,
    /// Over the bound: it is counted into a summary row instead.
    Counted,
}

/// One summary row: attempts counted instead of written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The client address, or `*` for the shared count.
    pub(crate) client: String,
    pub(crate) method: &'static str,
    pub(crate) outcome: &'static str,
    pub(crate) reason: String,
}

impl Default for RefusalBudget {
    fn default() -> Self {
        Self::new(20, 600, Duration::from_secs(60), MAX_SUMMARIES)
    }
}

impl RefusalBudget {
    /// At most `per_client` events per client address and method, and `per_method` per method,
    /// written one by one per `window`; at most `max_summaries` counts kept apart.
    pub(crate) fn new(
        per_client: u32,
        per_method: u32,
        window: Duration,
        max_summaries: usize,
    ) -> Self {
        Self {
            per_client,
            per_method,
            window,
            max_summaries,
            state: Mutex::new(State {
                started: Instant::now(),
                by_client: HashMap::new(),
                by_method: [0; 3],
                warned: false,
                counted: HashMap::new(),
            }),
            hook_refusal_log: LogSampler::default(),
        }
    }

    /// Logs a hook's refusal (sampled; the hook's message may echo what the client sent).
    pub(crate) fn log_hook_refusal(&self, setting: &'static str, message: &str) {
        if let Some(left_out) = self.hook_refusal_log.admit() {
            let note = self.hook_refusal_log.note(left_out);
            let message = printable(message, MAX_SHOWN);
            tracing::warn!(setting, "hook refused the sign-in: {message}{note}");
        }
    }

    /// How often summary rows are written.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Decides for one refused or failed attempt, whose event would say `reason`.
    pub(crate) fn admit(&self, attempt: &Attempt, error: &SignInError, reason: &str) -> Admit {
        let mut state = self.state.lock().unwrap_or_else(|poison| poison.into_inner());
        if state.started.elapsed() >= self.window {
            state.started = Instant::now();
            state.by_client.clear();
            state.by_method = [0; 3];
            state.warned = false;
        }
        let client = client_bucket(attempt.client);
        let method = attempt.method.as_str();
        let method_idx = method_index(attempt.method);
        let count = state.by_client.get(&(client, method)).copied().unwrap_or(0);
        if count < self.per_client && state.by_method[method_idx] < self.per_method {
            state.by_client.insert((client, method), count + 1);
            state.by_method[method_idx] += 1;
            return Admit::Record;
        }
        if !state.warned {
            state.warned = true;
            tracing::warn!(
                client = %shown_bucket(client),
                method,
                "too many refused sign-in attempts: counting further ones per client address \
                 instead of recording each (a summary event per address follows within a minute)"
            );
        }
        let class = reason_class(error);
        let mut key = SummaryKey { client: Some(client), method, class };
        if !state.counted.contains_key(&key) && state.counted.len() >= self.max_summaries {
            key.client = None;
        }
        let now = Utc::now();
        let tally = state.counted.entry(key).or_insert_with(|| Tally {
            count: 0,
            outcome: error.outcome(),
            first: now,
            last: now,
            last_reason: String::new(),
        });
        tally.count += 1;
        tally.last = now;
        tally.last_reason = printable(reason, MAX_SHOWN);
        Admit::Counted
    }

    /// The summary rows of every attempt counted so far, which are then forgotten.
    pub(crate) fn take_summaries(&self) -> Vec<Summary> {
        let counted = {
            let mut state = self.state.lock().unwrap_or_else(|poison| poison.into_inner());
            std::mem::take(&mut state.counted)
        };
        let mut summaries: Vec<Summary> = counted
            .into_iter()
            .map(|(key, tally)| {
                let (client, from) = match key.client {
                    Some(ip) => (shown_bucket(ip), format!("from {}", shown_bucket(ip))),
                    None => ("*".to_owned(), "from other addresses".to_owned()),
                };
                let attempts = if tally.count == 1 { "attempt" } else { "attempts" };
                let reason = format!(
                    "{} {} {attempts} {from} (method {}, {}) between {} and {} UTC were not \
                     recorded one by one (over the limit of events per address or per \
                     method); the last: {}",
                    tally.count,
                    tally.outcome,
                    key.method,
                    key.class,
                    tally.first.format("%H:%M:%S"),
                    tally.last.format("%H:%M:%S"),
                    tally.last_reason,
                );
                Summary { client, method: key.method, outcome: tally.outcome, reason }
            })
            .collect();
        summaries.sort_by(|a, b| (&a.client, a.method).cmp(&(&b.client, b.method)));
        summaries
    }
}

impl SignInService {
    /// Writes a summary event for each count of attempts not recorded one by one (see the
    /// module's documentation). Called every minute and at shutdown.
    pub async fn write_refusal_summaries(&self) {
        let rows: Vec<SignInRecord> = self
            .refusals
            .take_summaries()
            .into_iter()
            .map(|summary| {
                let reason = Some(summary.reason.as_str());
                SignInRecord::new(
                    db::now(),
                    None,
                    summary.method,
                    summary.outcome,
                    reason,
                    summary.client,
                    "-",
                )
            })
            .collect();
        for row in rows {
            if let Err(error) = self.db.insert_event(&row).await {
                tracing::error!("could not record a summary of refused sign-in attempts: {error}");
            }
        }
    }

    /// Writes the summary events every minute, for ever (the task is aborted at shutdown, which
    /// then writes the last ones).
    pub async fn write_refusal_summaries_forever(self) {
        let mut ticks = tokio::time::interval(self.refusals.window());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.write_refusal_summaries().await;
        }
    }
}

/// The kind of reason a refusal had, for counting (the reason's text is the client's to vary).
fn reason_class(error: &SignInError) -> &'static str {
    match error {
        SignInError::BadRequest(_) => "bad request",
        SignInError::HeadersTooLarge(_) => "headers too large",
        SignInError::Unauthenticated(_) => "unauthenticated",
        SignInError::Forbidden(_) => "forbidden",
        SignInError::Conflict(_) => "conflict",
        SignInError::HookRefused { .. } => "hook refused",
        SignInError::HookPanicked { .. } => "hook panicked",
        SignInError::HookTimeout(_) => "hook timeout",
        SignInError::Busy => "busy",
        SignInError::InvalidHookOutput(_) => "invalid hook output",
        SignInError::Upstream(_) => "identity provider",
        SignInError::FrontDoor(_) => "litellm",
        SignInError::Database(_) => "database",
        SignInError::Internal(_) => "internal",
    }
}

fn method_index(method: LoginMethod) -> usize {
    match method {
        LoginMethod::Header => 0,
        LoginMethod::Oidc => 1,
        LoginMethod::Password => 2,
    }
}

/// The bucket a per-client limit counts `ip` in: IPv4 as is, IPv6 by its /64 (one host usually
/// has a whole /64 to choose its source address from). IPv4-mapped IPv6 addresses count as the
/// IPv4 address.
pub(crate) fn client_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

/// A bucket as written in events: `192.0.2.1`, `2001:db8::/64`.
fn shown_bucket(bucket: IpAddr) -> String {
    match bucket {
        IpAddr::V6(v6) => format!("{v6}/64"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// At most `per_window` lines of one kind per `window`; the first line written after some were
/// left out says how many.
#[derive(Debug)]
pub(crate) struct LogSampler {
    per_window: u32,
    window: Duration,
    state: Mutex<SamplerState>,
}

#[derive(Debug)]
struct SamplerState {
    started: Instant,
    written: u32,
    left_out: u64,
}

impl Default for LogSampler {
    fn default() -> Self {
        Self::new(10, Duration::from_secs(60))
    }
}

impl LogSampler {
    /// At most `per_window` lines per `window`.
    pub(crate) fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            state: Mutex::new(SamplerState { started: Instant::now(), written: 0, left_out: 0 }),
        }
    }

    /// `Some(n)`: write the line, and say that `n` lines were left out before it (when `n > 0`);
    /// `None`: leave it out.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poison| poison.into_inner());
        if state.started.elapsed() >= self.window {
            state.started = Instant::now();
            state.written = 0;
        }
        if state.written >= self.per_window {
            state.left_out += 1;
            return None;
        }
        state.written += 1;
        Some(std::mem::take(&mut state.left_out))
    }

    /// `" (N similar lines left out before this one: over the limit of M a minute)"`, or
    /// nothing when none were.
    pub(crate) fn note(&self, left_out: u64) -> String {
        if left_out == 0 {
            String::new()
        } else {
            format!(
                " ({left_out} similar lines left out before this one: at most {} per {} s)",
                self.per_window,
                self.window.as_secs()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(method: LoginMethod, client: &str) -> Attempt {
        Attempt::new(method, "127.0.0.1".parse().unwrap(), "-".into())
            .from_client(client.parse().unwrap())
    }

    fn refused() -> SignInError {
        SignInError::Forbidden("header sign-in is only accepted from the OAuth proxy".into())
    }

    fn admit_n(budget: &RefusalBudget, attempt: &Attempt, n: usize) -> Vec<Admit> {
        (0..n).map(|i| budget.admit(attempt, &refused(), &format!("refusal {i}"))).collect()
    }

    #[test]
    fn each_address_and_method_is_bounded_and_the_rest_is_counted() {
        let budget = RefusalBudget::new(3, 5, Duration::from_secs(3600), 100);
        let a = attempt(LoginMethod::Header, "192.0.2.1");
        let b = attempt(LoginMethod::Header, "192.0.2.2");
        let c = attempt(LoginMethod::Header, "192.0.2.3");
        assert_eq!(
            admit_n(&budget, &a, 5),
            [&[Admit::Record; 3][..], &[Admit::Counted; 2]].concat()
        );
        assert_eq!(admit_n(&budget, &b, 2), [Admit::Record; 2]);
        // Five recorded for the method: the bound holds for a fresh address too.
        assert_eq!(admit_n(&budget, &c, 1), [Admit::Counted]);
        // Password failures have their own bound: other refusals never hide them.
        let guesser = attempt(LoginMethod::Password, "192.0.2.99");
        assert_eq!(admit_n(&budget, &guesser, 3), [Admit::Record; 3]);
        // The client address, not the TCP peer (a trusted proxy), is what is bounded.
        let behind_proxy = attempt(LoginMethod::Password, "203.0.113.7");
        assert_eq!(
            admit_n(&budget, &behind_proxy, 3),
            [Admit::Record, Admit::Record, Admit::Counted],
            "5 password events in all"
        );

        let summaries = budget.take_summaries();
        let shown: Vec<(&str, &str, &str)> = summaries
            .iter()
            .map(|s| (s.client.as_str(), s.method, s.reason.split(" between ").next().unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "192.0.2.1",
                    "header",
                    "2 refused attempts from 192.0.2.1 (method header, forbidden)"
                ),
                (
                    "192.0.2.3",
                    "header",
                    "1 refused attempt from 192.0.2.3 (method header, forbidden)"
                ),
                (
                    "203.0.113.7",
                    "password",
                    "1 refused attempt from 203.0.113.7 (method password, forbidden)"
                ),
            ]
        );
        assert!(summaries[0].reason.ends_with("the last: refusal 4"), "{}", summaries[0].reason);
        assert!(budget.take_summaries().is_empty(), "written once");
    }

    #[test]
    fn counts_past_the_cap_share_one_row_per_method_and_class() {
        let budget = RefusalBudget::new(0, 0, Duration::from_secs(3600), 2);
        for host in 1..=10 {
            let client = attempt(LoginMethod::Oidc, &format!("192.0.2.{host}"));
            assert_eq!(admit_n(&budget, &client, 2), [Admit::Counted; 2]);
        }
        let summaries = budget.take_summaries();
        let counts: Vec<(&str, &str)> = summaries
            .iter()
            .map(|s| (s.client.as_str(), s.reason.split(" attempts").next().unwrap()))
            .collect();
        assert_eq!(
            counts,
            [("*", "16 refused"), ("192.0.2.1", "2 refused"), ("192.0.2.2", "2 refused")]
        );
        assert!(summaries[0].reason.contains("from other addresses"), "{}", summaries[0].reason);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let budget = RefusalBudget::new(2, 100, Duration::from_secs(3600), 100);
        for host in ["2001:db8::1", "2001:db8::2:3"] {
            assert_eq!(admit_n(&budget, &attempt(LoginMethod::Header, host), 1), [Admit::Record]);
        }
        let same_64 = attempt(LoginMethod::Header, "2001:db8::ffff");
        assert_eq!(admit_n(&budget, &same_64, 1), [Admit::Counted]);
        let next_64 = attempt(LoginMethod::Header, "2001:db8:0:1::1");
        assert_eq!(admit_n(&budget, &next_64, 1), [Admit::Record]);
        assert_eq!(budget.take_summaries()[0].client, "2001:db8::/64");
    }

    #[test]
    fn the_window_starts_over() {
        let budget = RefusalBudget::new(1, 1, Duration::from_millis(50), 100);
        let a = attempt(LoginMethod::Header, "192.0.2.1");
        assert_eq!(admit_n(&budget, &a, 2), [Admit::Record, Admit::Counted]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(admit_n(&budget, &a, 1), [Admit::Record]);
        assert_eq!(budget.take_summaries().len(), 1, "the count survives the new window");
    }

    #[test]
    fn log_lines_are_sampled_and_the_next_says_how_many_were_left_out() {
        let sampler = LogSampler::new(2, Duration::from_millis(50));
        assert_eq!((sampler.admit(), sampler.admit(), sampler.admit()), (Some(0), Some(0), None));
        assert_eq!(sampler.admit(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(sampler.admit(), Some(2));
        assert_eq!(sampler.admit(), Some(0));
        assert!(sampler.note(2).contains("2 similar lines left out"));
        assert_eq!(sampler.note(0), "");
    }
}
