//! What every framework's test code shares: the runtime, the latency bound, the
//! RSS probe, a stop latch and the median.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::stream::StreamExt;
use tokio::sync::Notify;

use super::{Framework, LocalError, SpawnSample, Test};

/// Worker threads of the tokio runtime in this process (set once by the child
/// process from `--workers`; 2 when unset, one per core of the reference machine).
static WORKERS: OnceLock<usize> = OnceLock::new();

/// Whether the tokio runtime of this process is a current-thread one (set once by
/// the child process from `--setup current-thread`; multi-thread when unset).
static CURRENT_THREAD: OnceLock<bool> = OnceLock::new();

/// Sets the number of tokio worker threads for this process; the first call wins.
pub(crate) fn set_workers(workers: usize) {
    let _ = WORKERS.set(workers);
}

/// Makes [`runtime`] build a current-thread runtime in this process; the first
/// call wins.
pub(crate) fn set_current_thread(current_thread: bool) {
    let _ = CURRENT_THREAD.set(current_thread);
}

/// The runtime the tokio-based frameworks (granary, ractor, kameo) run on: multi
/// thread, with all drivers enabled as `#[tokio::main]` does; or, with
/// [`set_current_thread`], everything on the calling thread, as
/// `#[tokio::main(flavor = "current_thread")]` does.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, LocalError> {
    let mut builder = if *CURRENT_THREAD.get().unwrap_or(&false) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(*WORKERS.get().unwrap_or(&2));
        builder
    };
    builder.enable_all().build().map_err(LocalError::Runtime)
}

/// The runtime of the actors in granary's `actor-runtime` setup: one worker thread of
/// its own, beside the senders' runtime (the actor system is built with
/// `SystemBuilder::runtime`).
pub(crate) fn actor_runtime() -> Result<tokio::runtime::Runtime, LocalError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("granary-actors")
        .enable_all()
        .build()
        .map_err(LocalError::Runtime)
}

/// Runs `body` as a task on a fresh runtime, so the whole test (senders
/// included) runs on the two workers and not on the calling thread (on a
/// current-thread runtime, the task runs on the calling thread inside `block_on`).
pub(crate) fn on_runtime<T, F>(body: F) -> Result<T, LocalError>
where
    F: std::future::Future<Output = Result<T, LocalError>> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let result = rt.block_on(async move {
        tokio::spawn(body)
            .await
            .unwrap_or_else(|join| Err(LocalError::Task(join.to_string())))
    });
    // Don't wait for stray tasks of a framework that ignores stop requests.
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Awaits `work`, failing with [`LocalError::Timeout`] after `limit`: a lost
/// message or a dead actor must fail the run, never hang it.
pub(crate) async fn within<T>(
    framework: Framework,
    test: Test,
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, LocalError>>,
) -> Result<T, LocalError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(LocalError::Timeout {
            framework,
            test,
            after: limit,
        }))
}

/// Splits `total` messages over `senders` senders (the first ones get the rest).
pub(crate) fn share(total: u64, senders: u64, index: u64) -> u64 {
    total / senders + u64::from(index < total % senders)
}

/// Checks the sum a counter reports against the sum of what `senders` senders
/// sent, each sending `0..share` (so a lost, duplicated or corrupted message
/// that still left the count right shows up).
pub(crate) fn check_sum(
    framework: Framework,
    sum: u64,
    total: u64,
    senders: u64,
) -> Result<(), LocalError> {
    let expected = (0..senders)
        .map(|index| {
            let n = share(total, senders, index);
            n * n.saturating_sub(1) / 2
        })
        .sum();
    if sum == expected {
        Ok(())
    } else {
        Err(LocalError::WrongSum {
            framework,
            sum,
            expected,
        })
    }
}

/// How many asks `spawn` keeps in flight at once. One huge `FuturesUnordered`
/// of 100,000 asks spends most of its time re-polling futures that tokio's
/// cooperative budget forced to yield (measured with perf: >50 % of the run in
/// `FuturesUnordered` wake-ups), which would measure the harness, not the
/// framework; a window keeps that overhead constant and small for everyone.
const ASK_WINDOW: usize = 1024;

/// Awaits every ask, at most [`ASK_WINDOW`] at a time, failing on the first error.
pub(crate) async fn ask_all<F>(asks: impl IntoIterator<Item = F>) -> Result<(), LocalError>
where
    F: std::future::Future<Output = Result<(), LocalError>>,
{
    let mut answers = futures::stream::iter(asks).buffer_unordered(ASK_WINDOW);
    while let Some(answer) = answers.next().await {
        answer?;
    }
    Ok(())
}

/// The clock of one `spawn` run: RSS before, then the time of each phase
/// (spawn all, ask each once, stop all) and RSS while all actors sit idle.
pub(crate) struct SpawnClock {
    rss_before: u64,
    rss_idle: u64,
    started: Instant,
    spawned: Duration,
    answered: Duration,
}

impl SpawnClock {
    /// Reads RSS and starts the clock.
    pub(crate) fn start() -> Result<Self, LocalError> {
        let rss_before = rss_bytes()?;
        Ok(Self {
            rss_before,
            rss_idle: rss_before,
            started: Instant::now(),
            spawned: Duration::ZERO,
            answered: Duration::ZERO,
        })
    }

    /// All actors are spawned.
    pub(crate) fn spawned(&mut self) {
        self.spawned = self.started.elapsed();
    }

    /// All actors have answered and sit idle: reads RSS.
    pub(crate) fn answered(&mut self) -> Result<(), LocalError> {
        self.answered = self.started.elapsed();
        self.rss_idle = rss_bytes()?;
        Ok(())
    }

    /// All actors have stopped: reads RSS, then again after trimming the heap.
    pub(crate) fn stopped(self) -> Result<SpawnSample, LocalError> {
        let total = self.started.elapsed();
        let rss_stopped = rss_bytes()?;
        trim_heap();
        let rss_trimmed = rss_bytes()?;
        Ok(SpawnSample {
            seconds: total.as_secs_f64(),
            spawn_seconds: self.spawned.as_secs_f64(),
            ask_seconds: (self.answered - self.spawned).as_secs_f64(),
            stop_seconds: (total - self.answered).as_secs_f64(),
            rss_growth_bytes: self.rss_idle as i64 - self.rss_before as i64,
            rss_before_bytes: self.rss_before,
            rss_stopped_bytes: rss_stopped,
            rss_trimmed_bytes: rss_trimmed,
        })
    }
}

/// The largest latency the `local` scenario records exactly (one hour); no round
/// trip takes that long within a run's time limit.
pub(crate) const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// Counts down from a number and wakes a waiter at zero; used where a framework
/// offers no handle to await an actor's end (actix) or to count answers.
#[derive(Debug)]
pub(crate) struct Latch {
    left: AtomicU64,
    zero: Notify,
}

impl Latch {
    /// A latch that opens after `count` calls of [`Latch::count_down`].
    pub(crate) fn new(count: u64) -> Arc<Self> {
        Arc::new(Self {
            left: AtomicU64::new(count),
            zero: Notify::new(),
        })
    }

    /// One event happened.
    pub(crate) fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.zero.notify_one();
        }
    }

    /// Waits until the count reaches zero.
    pub(crate) async fn wait(&self) {
        loop {
            // Register interest before checking, so a count_down in between
            // can't be missed (`notify_one` stores a permit for us anyway).
            let notified = self.zero.notified();
            if self.left.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Gives free heap pages back to the system (`granary::memory::return_free_heap`:
/// glibc's `malloc_trim(0)` and the calling thread's arena top), so RSS shows what is
/// still held rather than what the allocator keeps cached. The same call for every
/// framework's run.
pub(crate) fn trim_heap() {
    ::granary::memory::return_free_heap();
}

/// Resident set size of this process in bytes, from `VmRSS` in /proc/self/status
/// (the same figure as the second field of /proc/self/statm, already in bytes
/// instead of pages, so no page-size lookup is needed).
pub(crate) fn rss_bytes() -> Result<u64, LocalError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(LocalError::Rss)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or(LocalError::RssMissing)
}

/// The median (mean of the middle two for an even count; 0 for none).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn shares_add_up_to_the_total() {
        let total: u64 = (0..8).map(|i| share(2_000_003, 8, i)).sum();
        assert_eq!(total, 2_000_003);
        assert_eq!(share(16, 8, 7), 2);
    }

    #[test]
    fn check_sum_accepts_the_sent_values_and_rejects_others() {
        let sent: u64 = (0..4).flat_map(|i| 0..share(10, 4, i)).sum();
        assert!(check_sum(Framework::Ractor, sent, 10, 4).is_ok());
        assert!(matches!(
            check_sum(Framework::Ractor, sent + 1, 10, 4),
            Err(LocalError::WrongSum { .. })
        ));
    }

    #[test]
    fn rss_is_positive() {
        assert!(rss_bytes().expect("rss") > 0);
    }

    #[test]
    fn latch_opens_after_the_last_count_down() {
        let rt = runtime().expect("runtime");
        rt.block_on(async {
            let latch = Latch::new(3);
            for _ in 0..3 {
                let latch = latch.clone();
                tokio::spawn(async move { latch.count_down() });
            }
            tokio::time::timeout(Duration::from_secs(10), latch.wait())
                .await
                .expect("latch never opened");
        });
    }
}
