//! Prometheus metrics (prometheus-client): sign-ins by method and outcome, hook, sign-in and
//! database-transaction durations, and the live sessions counted at scrape time.
//!
//! Every series is made once, at startup, and sharded by thread ([`sharded`]), so recording is
//! an atomic add or three on a cache line of the recording thread's own: no lock, no label
//! lookup, no allocation. `GET /metrics` (LiteLLM's `callbacks: ["prometheus"]`) serves them in
//! Prometheus' text format.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::prometheus_text,
    metrics::{family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

mod sharded;

use sharded::{Counter, Histogram};

use crate::signin::LoginMethod;

/// The `Content-Type` of [`Metrics::encode`]'s text (Prometheus' text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The prefix of every metric name.
const PREFIX: &str = "hookgate";

/// The sign-in methods, in [`LoginMethod`] order (the `method` label).
const METHODS: [LoginMethod; 3] = [LoginMethod::Header, LoginMethod::Oidc, LoginMethod::Password];
/// The outcomes of a sign-in, as its event records them (the `outcome` label).
const OUTCOMES: [&str; 3] = ["allowed", "refused", "failed"];

/// A hook, by its setting (the `hook` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `general_settings.custom_ui_sso_sign_in_handler`.
    SignInHandler,
    /// `general_settings.custom_sso`.
    CustomSso,
}

impl Hook {
    const ALL: [Hook; 2] = [Hook::SignInHandler, Hook::CustomSso];

    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::SignInHandler => "custom_ui_sso_sign_in_handler",
            Hook::CustomSso => "custom_sso",
        }
    }
}

type Labels = Vec<(&'static str, &'static str)>;

/// The server's metrics; clones share them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    /// `[method][outcome]`, in [`METHODS`] and [`OUTCOMES`] order.
    sign_ins: [[Counter; 3]; 3],
    sign_in_duration: Histogram,
    hooks: [Histogram; 2],
    db_transactions: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);

        let sign_ins = Family::<Labels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-in attempts by method (header, oidc, password) and outcome (allowed, \
             refused, failed), as the sign-in events record them",
            sign_ins.clone(),
        );
        let sign_ins = METHODS.map(|method| {
            OUTCOMES.map(|outcome| {
                sign_ins
                    .get_or_create_owned(&vec![("method", method.as_str()), ("outcome", outcome)])
            })
        });

        let hooks = Family::<Labels, Histogram>::default();
        registry.register_with_unit(
            "hook_duration",
            "Time a hook call took, by the setting that names the hook",
            Unit::Seconds,
            hooks.clone(),
        );
        let hooks = Hook::ALL.map(|hook| hooks.get_or_create_owned(&vec![("hook", hook.as_str())]));

        let sign_in_duration = Histogram::default();
        registry.register_with_unit(
            "sign_in_duration",
            "Time from a sign-in request to its answer, whatever the outcome",
            Unit::Seconds,
            sign_in_duration.clone(),
        );
        let db_transactions = Histogram::default();
        registry.register_with_unit(
            "db_transaction_duration",
            "Time a transaction of the sign-in writer took (a batch of sign-ins, committed or \
             rolled back)",
            Unit::Seconds,
            db_transactions.clone(),
        );

        Metrics {
            inner: Arc::new(Inner { registry, sign_ins, sign_in_duration, hooks, db_transactions }),
        }
    }

    /// A sign-in ended with `outcome` (`allowed`, or a refused or failed event's outcome) after
    /// `took`.
    pub fn sign_in(&self, method: LoginMethod, outcome: &str, took: Duration) {
        let method = METHODS.iter().position(|m| *m == method).unwrap_or(0);
        let outcome = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(2);
        self.inner.sign_ins[method][outcome].inc();
        self.inner.sign_in_duration.observe(took);
    }

    /// A call of `hook` returned after `took`.
    pub fn hook(&self, hook: Hook, took: Duration) {
        let index = match hook {
            Hook::SignInHandler => 0,
            Hook::CustomSso => 1,
        };
        self.inner.hooks[index].observe(took);
    }

    /// Runs `call` as a call of `hook`, timed; returns its value and how long it took.
    pub fn time_hook<T>(&self, hook: Hook, call: impl FnOnce() -> T) -> (T, Duration) {
        let started = std::time::Instant::now();
        let value = call();
        let took = started.elapsed();
        self.hook(hook, took);
        (value, took)
    }

    /// A writer transaction ended after `took`.
    pub fn db_transaction(&self, took: Duration) {
        self.inner.db_transactions.observe(took);
    }

    /// The metrics in Prometheus' text format ([`CONTENT_TYPE`]), with `live_sessions` (counted
    /// by the caller at scrape time) when it could be counted.
    pub fn encode(&self, live_sessions: Option<i64>) -> String {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_text::encode(&mut text, &self.inner.registry)
            .expect("writing to a String cannot fail");
        if let Some(count) = live_sessions {
            // A registry of its own, made per scrape: a count that could not be made is left
            // out rather than shown stale.
            let mut registry = Registry::with_prefix(PREFIX);
            let gauge = Gauge::<i64>::default();
            gauge.set(count);
            registry.register(
                "live_sessions",
                "Sessions that are neither expired nor revoked, counted in the database at \
                 scrape time",
                gauge,
            );
            prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn every_series_exists_from_the_start_and_counts() {
        let metrics = Metrics::new();
        let text = metrics.encode(None);
        assert_eq!(
            line(&text, r#"hookgate_sign_ins_total{method="oidc",outcome="failed"}"#),
            Some("0"),
            "{text}"
        );
        assert_eq!(
            line(&text, r#"hookgate_hook_duration_seconds_count{hook="custom_sso"}"#),
            Some("0")
        );
        assert!(!text.contains("hookgate_live_sessions"), "{text}");

        metrics.sign_in(LoginMethod::Header, "allowed", Duration::from_millis(3));
        metrics.sign_in(LoginMethod::Header, "allowed", Duration::from_millis(3));
        metrics.sign_in(LoginMethod::Password, "refused", Duration::from_millis(1));
        metrics.hook(Hook::SignInHandler, Duration::from_micros(20));
        metrics.db_transaction(Duration::from_micros(300));
        let text = metrics.encode(Some(7));
        assert_eq!(
            line(&text, r#"hookgate_sign_ins_total{method="header",outcome="allowed"}"#),
            Some("2")
        );
        assert_eq!(
            line(&text, r#"hookgate_sign_ins_total{method="password",outcome="refused"}"#),
            Some("1")
        );
        assert_eq!(line(&text, "hookgate_sign_in_duration_seconds_count"), Some("3"));
        assert_eq!(
            line(
                &text,
                r#"hookgate_hook_duration_seconds_count{hook="custom_ui_sso_sign_in_handler"}"#
            ),
            Some("1")
        );
        assert_eq!(
            line(&text, r#"hookgate_db_transaction_duration_seconds_bucket{le="0.0005"}"#),
            Some("1")
        );
        assert_eq!(line(&text, "hookgate_live_sessions"), Some("7"));
        assert!(text.contains("# TYPE hookgate_sign_in_duration_seconds histogram"), "{text}");
    }
}
