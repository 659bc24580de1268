//! Runs hook calls on tokio's blocking pool, with a timeout and a bound on how many run at once;
//! or, for hooks their plugin declared non-blocking, on the calling thread.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::Semaphore;
use tracing::Instrument;

/// Why a hook call did not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// It ran longer than the timeout (it keeps its slot until it does return).
    Timeout,
    /// Every slot stayed busy for the whole timeout.
    Busy,
    /// The host side of the call panicked (a server bug; plugin panics are caught in the
    /// plugin and arrive as hook errors).
    Crashed(String),
}

/// Hook calls in flight, bounded.
#[derive(Debug, Clone)]
pub struct HookRunner {
    slots: Arc<Semaphore>,
    /// In nanoseconds; shared by the clones, so a reload's new timeout applies to every call
    /// that starts after it.
    timeout: Arc<AtomicU64>,
}

impl HookRunner {
    /// At most `concurrency` calls at once, each given `timeout`.
    pub fn new(concurrency: usize, timeout: Duration) -> Self {
        let runner = Self { slots: Arc::new(Semaphore::new(concurrency)), timeout: Arc::default() };
        runner.set_timeout(timeout);
        runner
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout.load(Ordering::Relaxed))
    }

    /// Gives calls that start from now on `timeout` (here and in every clone).
    pub fn set_timeout(&self, timeout: Duration) {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.timeout.store(nanos, Ordering::Relaxed);
    }

    /// Runs `call` (one hook) on a blocking thread, in the current tracing span.
    pub async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RunError> {
        self.run_hooks(1, call).await
    }

    /// Runs `call`, which calls `hooks` hooks one after the other, on one blocking thread: one
    /// slot, and a deadline of `hooks` timeouts.
    pub async fn run_hooks<T: Send + 'static>(
        &self,
        hooks: u32,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RunError> {
        let deadline = tokio::time::Instant::now() + self.timeout() * hooks;
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| RunError::Busy)?
            .expect("the semaphore is never closed");
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            // The slot is released when the hook returns, not when the caller gives up, so a
            // stuck hook keeps counting against the bound.
            let _slot = slot;
            span.in_scope(call)
        });
        match tokio::time::timeout_at(deadline, task).in_current_span().await {
            Err(_) => Err(RunError::Timeout),
            Ok(Err(join_error)) => Err(RunError::Crashed(join_error.to_string())),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// Runs `call`, which calls `hooks` hooks declared non-blocking, here, on the calling
    /// thread: no slot, no thread switch. Nothing can interrupt it, so its deadline (`hooks`
    /// timeouts) is checked when it returns: a late value is answered as a timeout all the
    /// same. A panic on the host's side is reported as on a blocking thread.
    pub fn run_here<T>(&self, hooks: u32, call: impl FnOnce() -> T) -> Result<T, RunError> {
        let started = std::time::Instant::now();
        let value = catch_unwind(AssertUnwindSafe(call)).map_err(|panic| {
            RunError::Crashed(plugin_api::abi::panic_message(panic.as_ref()).to_owned())
        })?;
        if started.elapsed() > self.timeout() * hooks {
            return Err(RunError::Timeout);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{HookRunner, RunError};

    #[test]
    fn a_host_side_panic_on_the_calling_thread_is_reported_not_propagated() {
        let runner = HookRunner::new(1, Duration::from_secs(5));
        let crashed = runner.run_here(1, || -> u32 { panic!("the host's side failed") });
        assert_eq!(crashed, Err(RunError::Crashed("the host's side failed".into())));
        let name = String::from("sam");
        let formatted = runner.run_here(1, || -> u32 { panic!("no user {name}") });
        assert_eq!(formatted, Err(RunError::Crashed("no user sam".into())));
        assert_eq!(runner.run_here(1, || 7), Ok(7), "the runner is still usable");
    }

    #[test]
    fn a_call_on_the_calling_thread_that_returns_after_its_deadline_is_a_timeout() {
        let runner = HookRunner::new(1, Duration::from_millis(10));
        let slow = || std::thread::sleep(Duration::from_millis(30));
        assert_eq!(runner.run_here(1, slow), Err(RunError::Timeout), "one hook: 10 ms");
        assert_eq!(runner.run_here(2, slow), Err(RunError::Timeout), "two hooks: 20 ms");
        runner.set_timeout(Duration::from_secs(5));
        assert_eq!(runner.run_here(1, slow), Ok(()), "a reload's longer timeout applies");
    }

    #[tokio::test]
    async fn a_host_side_panic_on_a_blocking_thread_is_reported_not_propagated() {
        let runner = HookRunner::new(1, Duration::from_secs(5));
        let crashed = runner.run(|| -> u32 { panic!("the host's side failed") }).await;
        assert!(
            matches!(&crashed, Err(RunError::Crashed(message)) if message.contains("panicked")),
            "{crashed:?}"
        );
        assert_eq!(runner.run(|| 7).await, Ok(7), "its slot was given back");
    }
}
