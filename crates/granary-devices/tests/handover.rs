//! Hand-over when a server joins: the ring moves some devices to the new server, which
//! takes them over while their old server still heartbeats them. Each such device sees
//! two servers and orders them to stop unless designated; the old one obeys. Every
//! device must end with exactly one server, the ring's owner, and the old servers must
//! have been stopped by the devices' orders (no other path releases a device).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{connect, device_node, start_server, start_servers, wait_until};

const DEVICES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_heartbeated_by_two_servers_ends_with_one() {
    let mut servers = start_servers(2).await;
    let seeds: Vec<_> = servers.iter().map(|s| s.addr()).collect();
    let node = device_node().await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(connect(&node, &seeds, &format!("meter-{i}")).await);
    }
    wait_until("every device tracked once", Duration::from_secs(20), || {
        servers
            .iter()
            .map(|s| s.devices.tracked().len())
            .sum::<usize>()
            == DEVICES
    })
    .await;
    let before: BTreeMap<_, _> = servers
        .iter()
        .flat_map(|s| s.devices.tracked().into_keys().map(move |d| (d, s.addr())))
        .collect();

    let newcomer = start_server(vec![seeds[0]]).await;
    let new_addr = newcomer.addr();
    servers.push(newcomer);
    wait_until(
        "three members Up everywhere",
        Duration::from_secs(20),
        || servers.iter().all(|s| s.cluster.up_members().len() == 3),
    )
    .await;
    let ring = servers[0].cluster.ring();
    let owner = |id: &granary_devices::DeviceId| ring.owner(id.as_str().as_bytes()).map(|n| n.addr);
    let moved: Vec<_> = devices
        .iter()
        .filter(|d| owner(d.id()) == Some(new_addr))
        .collect();
    assert!(
        !moved.is_empty(),
        "the new server owns none of {DEVICES} devices"
    );

    wait_until(
        "each device tracked by exactly its ring owner",
        Duration::from_secs(15),
        || {
            let mut trackers: BTreeMap<_, Vec<_>> = BTreeMap::new();
            for s in &servers {
                for d in s.devices.tracked().into_keys() {
                    trackers.entry(d).or_default().push(s.addr());
                }
            }
            devices.iter().all(|d| {
                trackers.get(d.id()).map(Vec::as_slice)
                    == owner(d.id()).as_ref().map(std::slice::from_ref)
            })
        },
    )
    .await;
    for device in &moved {
        assert_ne!(before[device.id()], new_addr);
        assert!(
            device.stats().stop_orders > 0,
            "{} changed server without ordering the old one to stop",
            device.id()
        );
    }
    // And the devices themselves hear from one server only.
    for device in &devices {
        let expected = owner(device.id()).expect("owner");
        let mut heard = Vec::new();
        for _ in 0..100 {
            heard = device.heartbeating_servers().await;
            if heard == [expected] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(heard, [expected], "{} still hears {heard:?}", device.id());
    }
    println!(
        "{} of {DEVICES} devices moved to the new server",
        moved.len()
    );
}
