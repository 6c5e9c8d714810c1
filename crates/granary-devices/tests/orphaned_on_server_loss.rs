//! A server is killed together with some of its devices (issue 7): from the moment a
//! survivor sees the server Down, none of that server's devices may show as Up there
//! any more. Devices that are gone stay Orphaned (by the lost server) until their new
//! owner's detector marks them Down; devices that are alive come back Up at a survivor.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::{connect, device_node, start_servers, wait_until, TestServer};
use granary_cluster::MemberStatus;
use granary_devices::{DeviceId, DeviceStatus};

const PER_NODE: usize = 6;

fn sees_down(server: &TestServer, addr: SocketAddr) -> bool {
    server
        .cluster
        .members()
        .iter()
        .any(|m| m.id.addr == addr && m.status == MemberStatus::Down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_servers_devices_are_orphaned_at_once_then_reassigned_or_down() {
    let mut servers = start_servers(3).await;
    let seeds: Vec<_> = servers.iter().map(|s| s.addr()).collect();
    let (alive_node, doomed_node) = (device_node().await, device_node().await);
    let mut alive = Vec::new();
    let mut doomed = Vec::new();
    for i in 0..PER_NODE {
        alive.push(connect(&alive_node, &seeds, &format!("alive-{i}")).await);
        doomed.push(connect(&doomed_node, &seeds, &format!("doomed-{i}")).await);
    }
    wait_until(
        "every device tracked and known Up everywhere",
        Duration::from_secs(20),
        || {
            let tracked: usize = servers.iter().map(|s| s.devices.tracked().len()).sum();
            tracked == 2 * PER_NODE
                && servers.iter().all(|s| {
                    let known = s.devices.devices();
                    known.len() == 2 * PER_NODE && known.values().all(|r| r.status.is_up())
                })
        },
    )
    .await;

    // The victim is the server tracking the most doomed devices (at least 2 of 6).
    let doomed_ids: BTreeSet<DeviceId> = doomed.iter().map(|d| d.id().clone()).collect();
    let victim_index = (0..servers.len())
        .max_by_key(|i| {
            servers[*i]
                .devices
                .tracked()
                .into_keys()
                .filter(|d| doomed_ids.contains(d))
                .count()
        })
        .expect("three servers");
    let victim = servers.remove(victim_index);
    let victim_addr = victim.addr();
    let on_victim: BTreeSet<DeviceId> = victim.devices.tracked().into_keys().collect();
    let gone: BTreeSet<DeviceId> = on_victim.intersection(&doomed_ids).cloned().collect();
    let survive: BTreeSet<DeviceId> = on_victim.difference(&doomed_ids).cloned().collect();
    assert!(!gone.is_empty(), "the victim tracks no doomed device");

    // The doomed devices' node and their server crash together.
    doomed_node.shutdown();
    victim.kill().await;
    let survivors: BTreeSet<_> = servers.iter().map(|s| s.addr()).collect();

    // Checked at every poll from now on: a survivor that sees the victim Down never
    // shows one of its devices Up there; a gone device is never Up anywhere.
    let mut orphaned_seen: BTreeMap<DeviceId, usize> = BTreeMap::new();
    let mut check = |servers: &[TestServer]| {
        for s in servers {
            let down = sees_down(s, victim_addr);
            for (id, record) in s.devices.devices() {
                if !on_victim.contains(&id) {
                    continue;
                }
                if down {
                    assert!(
                        !(record.status.is_up() && record.server == victim_addr),
                        "{} sees {victim_addr} Down but shows {id} Up there",
                        s.addr()
                    );
                }
                if gone.contains(&id) {
                    assert!(
                        !record.status.is_up() || record.server == victim_addr,
                        "{} shows the dead device {id} Up at {}",
                        s.addr(),
                        record.server
                    );
                }
                if record.status
                    == (DeviceStatus::Orphaned {
                        lost_server: victim_addr,
                    })
                {
                    *orphaned_seen.entry(id).or_default() += 1;
                }
            }
        }
    };

    wait_until(
        "every survivor sees the victim Down, and the gone devices Orphaned",
        Duration::from_secs(20),
        || {
            check(&servers);
            servers.iter().all(|s| {
                sees_down(s, victim_addr)
                    && gone.iter().all(|id| {
                        s.devices.device(id).is_some_and(|r| {
                            r.status
                                == DeviceStatus::Orphaned {
                                    lost_server: victim_addr,
                                }
                        })
                    })
            })
        },
    )
    .await;

    // The new owners wrote the orphans into the registry (not only shown by the
    // membership view), and take over the live devices.
    wait_until(
        "live devices Up at a survivor everywhere, gone ones Down at their new owner",
        Duration::from_secs(30),
        || {
            check(&servers);
            servers.iter().all(|s| {
                let known = s.devices.devices();
                survive.iter().all(|id| {
                    known
                        .get(id)
                        .is_some_and(|r| r.status.is_up() && survivors.contains(&r.server))
                }) && gone.iter().all(|id| {
                    known.get(id).is_some_and(|r| {
                        r.status == DeviceStatus::Down && survivors.contains(&r.server)
                    })
                })
            })
        },
    )
    .await;
    assert!(
        gone.iter().all(|id| orphaned_seen.contains_key(id)),
        "every gone device was seen Orphaned: {orphaned_seen:?}"
    );
    drop(alive);
}
