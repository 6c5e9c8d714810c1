//! Failover after a crash, graceful shutdown, idle passivation, explicit
//! deactivation, and the ETag rejecting a stale activation's write.

mod common;

use std::time::Duration;

use common::*;
use granary_storage::Identity;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_moves_the_actor_with_its_last_written_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let mut nodes = start_nodes(3, &store, |_, b| b.host(counter_kind())).await;
    let key = "failover-1".to_string();
    let r = nodes[0].get::<Counter>(key.clone());
    for _ in 0..5 {
        r.ask(Add(1)).await.unwrap().unwrap();
    }
    let (host, n) = r.ask(Where).await.unwrap();
    assert_eq!(n, 5);
    let victim = nodes.iter().position(|n| n.addr() == host).unwrap();
    let victim = nodes.remove(victim);
    victim.kill().await;
    // The next request from a survivor succeeds elsewhere with the stored state.
    let survivor = &nodes[0];
    let r = survivor.get::<Counter>(key.clone());
    let got = r
        .ask_timeout(Add(1), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        got,
        Ok(6),
        "the increment continues from the last written state"
    );
    let (new_host, _) = r.ask(Where).await.unwrap();
    assert_ne!(new_host, host);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_deactivates_and_the_next_call_reactivates_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let mut nodes = start_nodes(2, &store, |_, b| b.host(counter_kind())).await;
    let key = "graceful-1".to_string();
    let r = nodes[0].get::<Counter>(key.clone());
    r.ask(Add(7)).await.unwrap().unwrap();
    let (host, _) = r.ask(Where).await.unwrap();
    let idx = nodes.iter().position(|n| n.addr() == host).unwrap();
    let leaving = nodes.remove(idx);
    leaving.shutdown().await;
    assert_eq!(
        log_of("test.Counter/graceful-1").live,
        0,
        "on_deactivate ran"
    );
    let r = nodes[0].get::<Counter>(key);
    assert!(wait_members(&nodes[0], 1).await);
    assert_eq!(r.ask(Add(1)).await.unwrap(), Ok(8));
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_actor_passivates_and_reactivates_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(1, &store, |_, b| {
        b.host(counter_kind().idle_timeout(Duration::from_millis(200)))
    })
    .await;
    let key = "idle-1".to_string();
    let r = nodes[0].get::<Counter>(key.clone());
    assert_eq!(r.ask(Add(4)).await.unwrap(), Ok(4));
    // Wait for the passivation through the activation log, not a fixed sleep.
    let passivated = tokio::time::timeout(WAIT, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if nodes[0].activations("test.Counter") == 0 && log_of("test.Counter/idle-1").live == 0
            {
                return;
            }
        }
    })
    .await;
    assert!(passivated.is_ok(), "passivated after the idle timeout");
    assert_eq!(
        r.ask(Add(1)).await.unwrap(),
        Ok(5),
        "reactivated with its state"
    );
    assert_eq!(log_of("test.Counter/idle-1").activations, 2);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_on_idle_ends_the_activation_after_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(1, &store, |_, b| b.host(counter_kind())).await;
    let r = nodes[0].get::<Counter>("rest-1".to_string());
    r.ask(Add(1)).await.unwrap().unwrap();
    r.ask(Rest).await.unwrap();
    assert_eq!(r.ask(Add(1)).await.unwrap(), Ok(2));
    assert_eq!(log_of("test.Counter/rest-1").activations, 2);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_activation_write_is_rejected_and_it_deactivates() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(1, &store, |_, b| b.host(counter_kind())).await;
    let r = nodes[0].get::<Counter>("stale-1".to_string());
    assert_eq!(r.ask(Add(1)).await.unwrap(), Ok(1));
    // Another writer (a newer activation elsewhere) writes behind its back.
    let other = granary_storage::open(&store).await.unwrap();
    let id = Identity::new("test.Counter", "stale-1");
    let current = other.read(&id).await.unwrap().unwrap();
    other
        .write(&id, br#"{"n":100}"#.to_vec().into(), Some(current.version))
        .await
        .unwrap();
    let rejected = r.ask(Add(1)).await.unwrap();
    assert!(
        matches!(&rejected, Err(e) if e.contains("newer activation")),
        "{rejected:?}"
    );
    // The stale activation deactivated; the next one loads the newer state.
    assert_eq!(r.ask(Add(1)).await.unwrap(), Ok(101));
    assert_eq!(log_of("test.Counter/stale-1").activations, 2);
    for n in nodes {
        n.shutdown().await;
    }
}
