//! A counter and a duration histogram that many threads record into without a lock and
//! without sharing a cache line: each thread records into a shard of its own (picked once per
//! thread), and a scrape adds the shards up. prometheus-client's own `Histogram` takes a mutex
//! on every observation, one mutex per series shared by every thread that records (three per
//! sign-in: the sign-in's and each hook's), and its `Counter` is one atomic that every core
//! writes; both are fine on one core and a shared line that bounces between cores on many.
//!
//! A scrape reads the shards one by one while recording goes on, so it may see an observation's
//! count and not yet its bucket: each series is exact once recording stops, as Prometheus'
//! own clients are.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric},
};

/// How many shards each series has: the machine's threads, rounded up to a power of two (at
/// least 4, at most 64). Threads beyond that share shards, still correctly.
fn shards() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism().map_or(4, usize::from).next_power_of_two().clamp(4, 64)
    })
}

/// This thread's shard, out of [`shards`]: threads take them in turn as they first record.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed);
    }
    SHARD.with(|shard| *shard) & (shards() - 1)
}

/// A fresh shard for each of [`shards`].
fn per_shard<T: Default>() -> Arc<[T]> {
    (0..shards()).map(|_| T::default()).collect()
}

/// One shard's count, on a cache line of its own (two: some CPUs fetch lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct CounterShard(AtomicU64);

/// A monotonic counter (Prometheus' `counter`); clones share it.
#[derive(Debug, Clone)]
pub(super) struct Counter(Arc<[CounterShard]>);

impl Default for Counter {
    fn default() -> Self {
        Counter(per_shard())
    }
}

impl Counter {
    /// Adds one.
    pub(super) fn inc(&self) {
        self.0[shard()].0.fetch_add(1, Relaxed);
    }

    /// The count, all threads' together.
    pub(super) fn get(&self) -> u64 {
        self.0.iter().map(|shard| shard.0.load(Relaxed)).sum()
    }
}

impl TypedMetric for Counter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Counter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The histograms' bucket bounds in seconds, 10 µs to 10 s: an in-process hook takes
/// microseconds, a hook that calls out or a sign-in through an identity provider takes up to
/// seconds. Above the last is `+Inf`.
pub(super) const BOUNDS: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`BOUNDS`] in nanoseconds, which is what an observation is compared with.
const BOUNDS_NANOS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// One shard of a histogram: its count, the sum of its observations in nanoseconds (exact,
/// where a sum of floating-point seconds loses the small ones), and a count per bucket, the
/// last `+Inf`.
#[derive(Debug, Default)]
#[repr(align(128))]
struct HistogramShard {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    buckets: [AtomicU64; BOUNDS.len() + 1],
}

/// A histogram of durations over [`BOUNDS`] (Prometheus' `histogram`, in seconds); clones
/// share it.
#[derive(Debug, Clone)]
pub(super) struct Histogram(Arc<[HistogramShard]>);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(per_shard())
    }
}

impl Histogram {
    /// Records one duration.
    pub(super) fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS.partition_point(|bound| *bound < nanos);
        let shard = &self.0[shard()];
        shard.count.fetch_add(1, Relaxed);
        shard.sum_nanos.fetch_add(nanos, Relaxed);
        shard.buckets[bucket].fetch_add(1, Relaxed);
    }

    /// The count, the sum in seconds, and each bucket's own count (not cumulative) with its
    /// upper bound, all threads' together.
    fn totals(&self) -> (u64, f64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> =
            BOUNDS.iter().copied().chain([f64::INFINITY]).map(|bound| (bound, 0)).collect();
        let (mut count, mut sum_nanos) = (0u64, 0u64);
        for shard in self.0.iter() {
            count += shard.count.load(Relaxed);
            sum_nanos = sum_nanos.wrapping_add(shard.sum_nanos.load(Relaxed));
            for (total, bucket) in buckets.iter_mut().zip(&shard.buckets) {
                total.1 += bucket.load(Relaxed);
            }
        }
        // Nanoseconds to seconds: exact up to 2^53 ns (104 days of summed durations).
        #[allow(clippy::cast_precision_loss)]
        let sum = sum_nanos as f64 / 1e9;
        (count, sum, buckets)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (count, sum, buckets) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_in_nanoseconds_are_the_bounds_in_seconds() {
        for (seconds, nanos) in BOUNDS.iter().zip(BOUNDS_NANOS) {
            assert_eq!(Duration::from_secs_f64(*seconds), Duration::from_nanos(nanos));
        }
    }

    #[test]
    fn an_observation_lands_in_the_first_bucket_whose_bound_holds_it() {
        let histogram = Histogram::default();
        for took in [
            Duration::ZERO,
            Duration::from_micros(10), // on the first bound: in it (`le`)
            Duration::from_nanos(10_001),
            Duration::from_secs(10),
            Duration::from_secs(11), // above the last bound: +Inf
            Duration::MAX,
        ] {
            histogram.observe(took);
        }
        let (count, _, buckets) = histogram.totals();
        assert_eq!(count, 6);
        let counts: Vec<u64> = buckets.iter().map(|(_, count)| *count).collect();
        let mut expected = [0u64; BOUNDS.len() + 1];
        expected[0] = 2;
        expected[1] = 1;
        expected[BOUNDS.len() - 1] = 1;
        expected[BOUNDS.len()] = 2;
        assert_eq!(counts, expected);
        assert_eq!(buckets.last().map(|(bound, _)| *bound), Some(f64::INFINITY));
    }

    /// What sixteen threads record, each into its own shard or a shared one, adds up exactly.
    #[test]
    fn what_every_thread_records_adds_up() {
        let counter = Counter::default();
        let histogram = Histogram::default();
        std::thread::scope(|scope| {
            for thread in 0..16u64 {
                let (counter, histogram) = (&counter, &histogram);
                scope.spawn(move || {
                    for i in 0..1_000u64 {
                        counter.inc();
                        histogram.observe(Duration::from_micros(thread * 1_000 + i));
                    }
                });
            }
        });
        assert_eq!(counter.get(), 16_000);
        let (count, sum, buckets) = histogram.totals();
        assert_eq!(count, 16_000);
        assert_eq!(buckets.iter().map(|(_, count)| count).sum::<u64>(), 16_000);
        // Σ over threads t and i < 1000 of (1000 t + i) µs.
        let micros: u64 =
            (0..16u64).map(|t| (0..1_000u64).map(|i| t * 1_000 + i).sum::<u64>()).sum();
        #[allow(clippy::cast_precision_loss)]
        let expected = micros as f64 / 1e6;
        assert!((sum - expected).abs() < 1e-9, "{sum} != {expected}");
        // The first 10 µs of thread 0 (0..=10 µs) are in the first bucket.
        assert_eq!(buckets[0].1, 11);
    }
}
