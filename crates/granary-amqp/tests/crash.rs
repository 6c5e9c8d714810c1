//! A node whose process is killed (SIGKILL: no close marker, no goodbye) is noticed
//! over the broker: the broker deletes its queue with its connection, the transport of
//! a peer declares it unreachable when its heartbeats stop, and dials to it are
//! refused. Against the RabbitMQ server at 127.0.0.1:5672; skipped with a reason when
//! it is unreachable, unless CI=true.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use granary_amqp::{AmqpConfig, AmqpLink};
use granary_remote::wire::Frame;
use granary_remote::{NodeId, PeerEvent, Transport, TransportConfig};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Set in the child process: the cluster it joins.
const CHILD_CLUSTER: &str = "GRANARY_AMQP_CRASH_CHILD_CLUSTER";
const SECRET: &[u8] = b"crash-test-secret";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn transport_config(cluster: &str, link: &AmqpLink) -> TransportConfig {
    TransportConfig::new(cluster, SECRET.to_vec())
        .with_link(link.link())
        .with_heartbeat(Duration::from_millis(200), Duration::from_secs(1))
}

/// The process that is killed: attaches a transport to the broker, prints its node
/// address and waits to be killed. Run only by the test below (it starts this test
/// binary again with `--ignored` and the cluster in the environment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_killed_node_is_noticed_and_its_queue_is_deleted"]
async fn child_node() {
    let cluster = std::env::var(CHILD_CLUSTER).expect("started by the crash test");
    let link = AmqpLink::connect(AmqpConfig::new(URL, &cluster))
        .await
        .unwrap();
    let _transport = Transport::bind(transport_config(&cluster, &link), |_: NodeId, _: Frame| {})
        .await
        .unwrap();
    println!("ADDR {}", link.node_addr());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_noticed_and_its_queue_is_deleted() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let cluster = format!("test-crash-{}-{nanos}", std::process::id());
    let link = match AmqpLink::connect(AmqpConfig::new(URL, &cluster)).await {
        Ok(link) => link,
        Err(e) if !ci() => {
            eprintln!("SKIPPED: RabbitMQ at 127.0.0.1:5672 unavailable: {e}");
            return;
        }
        Err(e) => panic!("RabbitMQ is required when CI=true: {e}"),
    };
    let transport = Transport::bind(transport_config(&cluster, &link), |_: NodeId, _: Frame| {})
        .await
        .unwrap();
    let mut events = transport.subscribe();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_node", "--ignored", "--nocapture"])
        .env(CHILD_CLUSTER, &cluster)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let peer: SocketAddr = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            if let Some(addr) = line.unwrap().strip_prefix("ADDR ") {
                return addr.parse().unwrap();
            }
        }
        panic!("the child printed no address");
    })
    .await
    .unwrap();

    transport.connect(peer).unwrap();
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(PeerEvent::Connected { node }) = events.recv().await {
                if node.addr() == peer {
                    return;
                }
            }
        }
    })
    .await;
    assert!(
        connected.is_ok(),
        "connected to the child through the broker"
    );
    // The child dials back on its own (its heartbeats come in on that connection).
    assert!(transport.is_connected(peer));

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(PeerEvent::Unreachable { addr, .. }) = events.recv().await {
                if addr == peer {
                    return;
                }
            }
        }
    })
    .await;
    assert!(lost.is_ok(), "the killed node was declared unreachable");
    // Its queue went with its broker connection: a dial is refused.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match granary_remote::BrokerLink::dial(&link, peer).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "the killed node's queue was deleted");
    transport.shutdown();
}
