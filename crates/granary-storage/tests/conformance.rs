//! The one conformance suite, run against every provider.
//!
//! Each provider module instantiates the same test functions from
//! `granary_storage::conformance`; only the fixture differs.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::future::Future;
use std::sync::Arc;

use granary_storage::conformance::{self, Check};
use granary_storage::StateStore;

async fn check<F, Fut>(fixture: Option<fixtures::Fixture>, run: F)
where
    F: FnOnce(Arc<dyn StateStore>) -> Fut,
    Fut: Future<Output = Check>,
{
    let Some(fixture) = fixture else { return };
    let result = run(Arc::clone(&fixture.store)).await;
    let url = fixture.url.clone();
    fixture.cleanup().await;
    if let Err(violation) = result {
        panic!("{url}: {violation}");
    }
}

macro_rules! conformance_suite {
    ($provider:ident) => {
        mod $provider {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn round_trip_returns_the_bytes_and_version_written() {
                check(fixtures::$provider().await, |s| async move {
                    conformance::round_trip(&*s).await
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn stale_version_is_refused_with_the_current_one() {
                check(fixtures::$provider().await, |s| async move {
                    conformance::stale_version_conflicts(&*s).await
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn of_32_concurrent_writers_exactly_one_wins_each_round() {
                check(fixtures::$provider().await, |s| async move {
                    conformance::concurrent_writers_one_wins_each_round(s, 32, 5).await
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn empty_and_8_mib_values_round_trip() {
                check(fixtures::$provider().await, |s| async move {
                    conformance::empty_and_large_values(&*s).await
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn clear_removes_state_and_versions_never_repeat() {
                check(fixtures::$provider().await, |s| async move {
                    conformance::clear_removes_state_and_keeps_versions_moving(&*s).await
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn reminders_are_listed_by_partition_and_due_time() {
                check(fixtures::$provider().await, |s| async move {
                    conformance::reminders_due_by_partition_and_time(&*s).await
                })
                .await;
            }
        }
    };
}

conformance_suite!(memory);
conformance_suite!(file);
conformance_suite!(postgres);
conformance_suite!(redis);
