//! The node side of a run that `pingpong` and `big` share: a warm-up phase, then
//! the measured one ([`warm_then_measure`]); in the virtual mode each phase opens a
//! collector on the driving node, tells every participant to start and waits for
//! the collector's merged latencies ([`virtual_round`]).

use std::future::Future;
use std::time::Instant;

use futures::future::try_join_all;
use granary::prelude::*;

use super::collect::{expect_virtual, Open, VirtualCollector};
use super::protocol::{Measured, Reply};
use super::{measured, within_run_limit};

/// Runs `phase("warmup", warmup)` (its figures dropped), then returns
/// `phase("measured", rounds)`. The phase name is part of the phase's actor names,
/// so the two phases never share a collector.
pub(crate) async fn warm_then_measure<F, Fut>(warmup: u32, rounds: u32, mut phase: F) -> Reply
where
    F: FnMut(&'static str, u32) -> Fut,
    Fut: Future<Output = Reply>,
{
    phase("warmup", warmup).await?;
    phase("measured", rounds).await
}

/// Virtual mode, on the driving node: opens the collector `collector` here (it is
/// placed `PreferLocal`, so this node's first message activates it here), tells
/// `go` to the actor of kind `A` under each of `keys` (all at once) and waits for
/// the collector's merged latencies; the time counts from the first start.
pub(crate) async fn virtual_round<A, M>(
    node: &Node,
    collector: &str,
    keys: impl IntoIterator<Item = String>,
    go: M,
) -> Reply
where
    A: VirtualActor<Key = String> + VirtualHandler<M>,
    M: Message<Reply = ()> + Clone,
{
    let wait = expect_virtual(collector);
    let here = node
        .get::<VirtualCollector>(collector.to_string())
        .ask(Open)
        .await
        .map_err(|e| format!("collector: {e}"))?;
    if !here {
        return Err("the collector was not placed on the driving node".to_string());
    }
    let started = Instant::now();
    let starts = keys.into_iter().map(|key| {
        let actor = node.get::<A>(key.clone());
        let go = go.clone();
        async move {
            actor
                .tell(go)
                .await
                .map_err(|e| format!("actor {key}: {e}"))
        }
    });
    try_join_all(starts).await?;
    let latencies = within_run_limit(wait)
        .await?
        .map_err(|_| "the collector went away".to_string())?;
    Ok::<Measured, String>(measured(latencies, started.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_warm_up_runs_first_and_only_the_measured_phase_is_returned() {
        let mut seen = Vec::new();
        let reply = warm_then_measure(2, 7, |phase, rounds| {
            seen.push((phase, rounds));
            async move {
                Ok(Measured {
                    messages: u64::from(rounds),
                    ..Measured::default()
                })
            }
        })
        .await;
        assert_eq!(seen, [("warmup", 2), ("measured", 7)]);
        assert_eq!(reply.map(|m| m.messages), Ok(7));
    }

    #[tokio::test]
    async fn a_failed_warm_up_skips_the_measured_phase() {
        let mut phases = 0;
        let reply = warm_then_measure(1, 5, |_, _| {
            phases += 1;
            async { Err::<Measured, _>("no".to_string()) }
        })
        .await;
        assert_eq!(phases, 1);
        assert!(reply.is_err());
    }
}
