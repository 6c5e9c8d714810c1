//! Registration and the device's life: a registration sent to a non-owner is forwarded
//! to the ring's owner; bad input is a typed error; a device that stops answering is
//! Down in every replica; devices and servers exchange application messages through
//! typed refs.

mod common;

use std::time::Duration;

use common::{connect, device_config, device_node, start_servers, wait_until};
use granary_core::{Actor, Context, Handler, Message};
use granary_devices::{Device, DeviceError, DeviceId, DeviceStatus, TrackingEvent};
use granary_remote::register_message;
use serde::{Deserialize, Serialize};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_via_a_non_owner_is_forwarded_to_the_owner() {
    let servers = start_servers(3).await;
    let seed = &servers[0];
    let ring = seed.cluster.ring();
    // A device id the seed does not own.
    let id = (0..)
        .map(|i| format!("pump-{i}"))
        .find(|id| ring.owner(id.as_bytes()).map(|n| n.addr) != Some(seed.addr()))
        .expect("some id is owned elsewhere");
    let owner_addr = ring.owner(id.as_bytes()).expect("owner").addr;
    let mut seed_events = seed.devices.subscribe();

    let node = device_node().await;
    let device = connect(&node, &[seed.addr()], &id).await;
    assert_eq!(device.server(), Some(owner_addr));
    let owner = servers
        .iter()
        .find(|s| s.addr() == owner_addr)
        .expect("owner is one of the servers");
    assert!(owner.devices.tracked().contains_key(device.id()));
    assert!(!seed.devices.tracked().contains_key(device.id()));
    while let Ok(event) = seed_events.try_recv() {
        assert!(
            !matches!(&event, TrackingEvent::Assigned { device: d, .. } if d == device.id()),
            "the seed tracked the device itself: {event:?}"
        );
    }
    wait_until(
        "every replica knows the device at its owner",
        Duration::from_secs(10),
        || {
            servers.iter().all(|s| {
                s.devices
                    .device(device.id())
                    .is_some_and(|r| r.server == owner_addr && r.status == DeviceStatus::Up)
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_error() {
    assert!(matches!(
        "a/b".parse::<DeviceId>(),
        Err(DeviceError::InvalidId(_))
    ));
    let config = device_config("lonely");
    let no_seeds = Device::connect(Vec::new(), config.clone()).await;
    assert!(
        matches!(no_seeds, Err(DeviceError::NoSeeds)),
        "{no_seeds:?}"
    );

    // A seed nobody listens on: the device gives up after its connect timeout.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_seed = nobody.local_addr().expect("addr");
    drop(nobody);
    let config = granary_devices::DeviceConfig {
        connect_timeout: Duration::from_millis(600),
        ..config
    };
    let started = std::time::Instant::now();
    let refused = Device::connect([dead_seed], config).await;
    assert!(
        matches!(refused, Err(DeviceError::NoServer { .. })),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let servers = start_servers(1).await;
    let unknown: DeviceId = "ghost".parse().expect("id");
    let missing = servers[0]
        .devices
        .device_ref::<Reporter>(&unknown, "reporter");
    assert!(matches!(missing, Err(DeviceError::UnknownDevice(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_is_down_in_every_replica() {
    let servers = start_servers(2).await;
    let seeds: Vec<_> = servers.iter().map(|s| s.addr()).collect();
    let node = device_node().await;
    let device = connect(&node, &seeds, "valve-1").await;
    let id = device.id().clone();
    let tracker = servers
        .iter()
        .find(|s| s.devices.tracked().contains_key(&id))
        .expect("tracked");
    let mut events = tracker.devices.subscribe();
    device.shutdown().await;
    let lost = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            if event == (TrackingEvent::Lost { device: id.clone() }) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(lost, Ok(true), "the tracking server never lost the device");
    wait_until("Down everywhere", Duration::from_secs(10), || {
        servers.iter().all(|s| {
            s.devices
                .device(&id)
                .is_some_and(|r| r.status == DeviceStatus::Down)
        })
    })
    .await;
}

/// A device-side actor: answers a report request with its readings.
struct Reporter;

#[derive(Serialize, Deserialize)]
struct Report;

impl Message for Report {
    type Reply = Readings;
}
register_message!(Report, "devices-test.Report");

#[derive(Serialize, Deserialize)]
struct Readings(Vec<i64>);
register_message!(Readings, "devices-test.Readings");

impl Actor for Reporter {}

impl Handler<Report> for Reporter {
    async fn handle(&mut self, _msg: Report, _ctx: &mut Context<Self>) -> Readings {
        Readings((1..=1000).collect())
    }
}

/// A server-side actor: counts what devices send it.
struct Inbox(u64);

#[derive(Serialize, Deserialize)]
struct Reading(u64);

impl Message for Reading {
    type Reply = u64;
}
register_message!(Reading, "devices-test.Reading");

impl Actor for Inbox {}

impl Handler<Reading> for Inbox {
    async fn handle(&mut self, msg: Reading, _ctx: &mut Context<Self>) -> u64 {
        self.0 += msg.0;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_servers_talk_through_typed_refs() {
    let servers = start_servers(2).await;
    let seeds: Vec<_> = servers.iter().map(|s| s.addr()).collect();
    for server in &servers {
        let inbox = server.remote.system().spawn(Inbox(0));
        server
            .remote
            .expose("inbox", &inbox)
            .and_then(|e| e.accept::<Reading>())
            .expect("expose inbox");
    }
    let node = device_node().await;
    let device = connect(&node, &seeds, "meter-9").await;
    let reporter = node.system().spawn(Reporter);
    device
        .expose("reporter", &reporter)
        .and_then(|e| e.accept::<Report>())
        .expect("expose reporter");

    for server in &servers {
        wait_until(
            "the registry reached this server",
            Duration::from_secs(10),
            || server.devices.device(device.id()).is_some(),
        )
        .await;
        let remote_reporter = server
            .devices
            .device_ref::<Reporter>(device.id(), "reporter")
            .expect("device ref");
        let readings = remote_reporter
            .ask_timeout(Report, Duration::from_secs(5))
            .await
            .expect("report");
        assert_eq!(readings.0.iter().sum::<i64>(), 500_500);
    }

    let inbox = device.server_ref::<Inbox>("inbox").expect("server ref");
    assert_eq!(
        inbox
            .ask_timeout(Reading(5), Duration::from_secs(5))
            .await
            .expect("ask"),
        5
    );
    assert_eq!(
        inbox
            .ask_timeout(Reading(2), Duration::from_secs(5))
            .await
            .expect("ask"),
        7
    );
}
