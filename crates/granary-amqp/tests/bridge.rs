//! The bridge alone, against the RabbitMQ server at 127.0.0.1:5672 (guest/guest):
//! ordered bytes both ways on many connections, closes, refusals, caps, and the broker
//! deleting a node's queue. Skipped with a reason when the broker is unreachable,
//! unless CI=true.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use granary_amqp::{AmqpConfig, AmqpError, AmqpLink};
use granary_remote::BrokerLink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A cluster name no other test run uses.
fn cluster(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{tag}-{}-{nanos}", std::process::id())
}

async fn link(config: AmqpConfig) -> Option<AmqpLink> {
    match AmqpLink::connect(config).await {
        Ok(link) => Some(link),
        Err(e @ (AmqpError::Broker(_) | AmqpError::Timeout)) if !ci() => {
            eprintln!("SKIPPED: RabbitMQ at 127.0.0.1:5672 unavailable: {e}");
            None
        }
        Err(e) => panic!("RabbitMQ is required when CI=true: {e}"),
    }
}

/// The bytes connection `n` sends: position and connection mixed, so a reordered,
/// lost or misrouted piece shows.
fn pattern(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i / 7) ^ (n * 31)) as u8).collect()
}

/// Whether a queue of that name exists on the broker (asked on a connection of its own).
async fn queue_exists(name: &str) -> bool {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{FieldTable, ShortString};
    let conn = lapin::Connection::connect(URL, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    let _ = conn.close(200, ShortString::from("bye")).await;
    match declared {
        Ok(_) => true,
        Err(e) => !e.to_string().contains("NOT_FOUND"),
    }
}

async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_arrive_in_order_both_ways_on_many_connections() {
    let name = cluster("order");
    // A small prefetch: far more messages than it flow, so acknowledgements must.
    let config = AmqpConfig {
        prefetch: 8,
        ..AmqpConfig::new(URL, &name)
    };
    let Some(a) = link(config.clone()).await else {
        return;
    };
    let Some(b) = link(config).await else {
        return;
    };
    const CONNECTIONS: usize = 8;
    const FORTH: usize = 512 * 1024;
    const BACK: usize = 128 * 1024;
    let server = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut served = Vec::new();
            for _ in 0..CONNECTIONS {
                let (mut stream, from) = b.accept().await.expect("accepted");
                served.push(tokio::spawn(async move {
                    // The first 8 bytes say which connection this is.
                    let n = stream.read_u64().await.unwrap() as usize;
                    let mut got = vec![0u8; FORTH];
                    stream.read_exact(&mut got).await.unwrap();
                    assert!(
                        got == pattern(n, FORTH),
                        "connection {n}: bytes out of order"
                    );
                    stream.write_all(&pattern(n + 100, BACK)).await.unwrap();
                    stream.flush().await.unwrap();
                    // Held open until the dialler has read the answer and closed.
                    let mut rest = Vec::new();
                    stream.read_to_end(&mut rest).await.unwrap();
                    assert!(rest.is_empty());
                    from
                }));
            }
            let mut from = Vec::new();
            for s in served {
                from.push(s.await.unwrap());
            }
            from
        })
    };
    let mut clients = Vec::new();
    for n in 0..CONNECTIONS {
        let a = a.clone();
        let to = b.node_addr();
        clients.push(tokio::spawn(async move {
            let mut stream = a.dial(to).await.expect("dialled");
            stream.write_u64(n as u64).await.unwrap();
            // Many writes of odd sizes: each becomes one or more messages.
            for piece in pattern(n, FORTH).chunks(10_007) {
                stream.write_all(piece).await.unwrap();
            }
            let mut back = vec![0u8; BACK];
            stream.read_exact(&mut back).await.unwrap();
            assert!(
                back == pattern(n + 100, BACK),
                "connection {n}: answer out of order"
            );
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let from = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("every connection was closed by its dialler")
        .unwrap();
    assert!(
        from.iter().all(|f| *f == a.node_addr()),
        "the acceptor knows the dialler"
    );
    let stats = a.stats();
    assert_eq!(stats.dialled, CONNECTIONS as u64);
    assert!(
        b.stats().consumed > 4 * 8,
        "many times the prefetch: {:?}",
        b.stats()
    );
    assert!(
        eventually(|| async { a.stats().open_connections == 0 && b.stats().open_connections == 0 })
            .await
    );
    a.close();
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_reaches_the_other_end_and_a_dial_to_no_node_is_refused() {
    let name = cluster("close");
    let Some(a) = link(AmqpConfig::new(URL, &name)).await else {
        return;
    };
    let Some(b) = link(AmqpConfig::new(URL, &name)).await else {
        return;
    };
    // The acceptor closes: the dialler reads end of file.
    let mut dialled = a.dial(b.node_addr()).await.unwrap();
    dialled.write_all(b"hello").await.unwrap();
    let (mut accepted, _) = b.accept().await.unwrap();
    let mut hello = [0u8; 5];
    accepted.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello, b"hello");
    drop(accepted);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), dialled.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the dialler saw the close: {read:?}"
    );
    // The dialler closes: the acceptor reads end of file.
    let dialled = a.dial(b.node_addr()).await.unwrap();
    drop(dialled);
    let (mut accepted, _) = b.accept().await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), accepted.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the acceptor saw the close: {read:?}"
    );
    // Nobody holds this name: refused, as a closed TCP port is.
    let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let refused = a.dial(nobody).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    a.close();
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_link_ends_its_connections_and_the_broker_deletes_its_queue() {
    let name = cluster("cleanup");
    let Some(a) = link(AmqpConfig::new(URL, &name)).await else {
        return;
    };
    let Some(b) = link(AmqpConfig::new(URL, &name)).await else {
        return;
    };
    let queue = b.queue_name().to_owned();
    assert!(queue_exists(&queue).await);
    let mut dialled = a.dial(b.node_addr()).await.unwrap();
    let (_accepted, _) = b.accept().await.unwrap();
    b.close();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), dialled.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the peer's connection ended: {read:?}"
    );
    assert!(
        eventually(|| async { !queue_exists(&queue).await }).await,
        "queue {queue} deleted"
    );
    let refused = a.dial(b.node_addr()).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    // A closed link dials nothing.
    assert!(b.dial(a.node_addr()).await.is_err());
    a.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_past_the_unread_cap_loses_its_connection_and_nothing_more_is_held() {
    let name = cluster("cap");
    let Some(a) = link(AmqpConfig::new(URL, &name)).await else {
        return;
    };
    let Some(b) = link(AmqpConfig::new(URL, &name).with_max_unconsumed(256 * 1024)).await else {
        return;
    };
    let mut dialled = a.dial(b.node_addr()).await.unwrap();
    // Accepted and never read: the bytes pile up at the acceptor.
    let (_accepted, _) = b.accept().await.unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let writing = async {
        for _ in 0..64 {
            if dialled.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), writing)
        .await
        .expect("the writer is never stuck");
    assert!(
        eventually(|| async { b.stats().overruns == 1 }).await,
        "{:?}",
        b.stats()
    );
    assert!(eventually(|| async { b.stats().open_connections == 0 }).await);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), dialled.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the dialler saw its connection close: {read:?}"
    );
    a.close();
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_cannot_hold_one_name() {
    let name = cluster("name");
    let addr: SocketAddr = "127.0.0.1:7777".parse().unwrap();
    let Some(a) = link(AmqpConfig::new(URL, &name).with_node_addr(addr)).await else {
        return;
    };
    assert_eq!(a.node_addr(), addr);
    let second = AmqpLink::connect(AmqpConfig::new(URL, &name).with_node_addr(addr)).await;
    assert!(
        matches!(second, Err(AmqpError::NameTaken { .. })),
        "{second:?}"
    );
    a.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_found_through_the_membership_exchange() {
    let name = cluster("members");
    let wait = Duration::from_millis(300);
    let Some(first) = link(AmqpConfig::new(URL, &name).with_discover_wait(wait)).await else {
        return;
    };
    // Nobody announced yet: nothing to find, after the wait.
    assert!(first.discover().await.unwrap().is_empty());
    first.announce().await.unwrap();
    let Some(second) =
        link(AmqpConfig::new(URL, &name).with_discover_wait(Duration::from_secs(5))).await
    else {
        return;
    };
    // The first answers the second's request.
    assert_eq!(second.discover().await.unwrap(), vec![first.node_addr()]);
    second.announce().await.unwrap();
    assert!(
        eventually(|| async { first.discover().await.unwrap() == vec![second.node_addr()] }).await
    );
    second.leave().await.unwrap();
    assert!(eventually(|| async { first.discover().await.unwrap().is_empty() }).await);
    first.close();
    second.close();
}

/// A TCP relay to the broker that can be cut: the link behind it loses its broker the
/// way a node whose network to the broker fails does.
struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                pipes.spawn(async move {
                    let mut broker = tokio::net::TcpStream::connect("127.0.0.1:5672").await?;
                    tokio::io::copy_bidirectional(&mut inbound, &mut broker).await
                });
            }
        });
        Self { addr, task }
    }

    /// Drops every relayed connection (aborting the task drops its pipes' sockets).
    fn cut(&self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_broker_ends_every_connection_on_both_sides() {
    let name = cluster("lost");
    let relay = Relay::start().await;
    let via_relay = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let Some(a) = link(AmqpConfig::new(&via_relay, &name)).await else {
        return;
    };
    let Some(b) = link(AmqpConfig::new(URL, &name)).await else {
        return;
    };
    let mut a_to_b = a.dial(b.node_addr()).await.unwrap();
    let (mut b_from_a, _) = b.accept().await.unwrap();
    let mut b_to_a = b.dial(a.node_addr()).await.unwrap();
    let (mut a_from_b, _) = a.accept().await.unwrap();
    a_to_b.write_all(b"up").await.unwrap();
    let mut up = [0u8; 2];
    b_from_a.read_exact(&mut up).await.unwrap();

    relay.cut();
    // The cut-off node: every connection ends and it dials nothing more.
    for stream in [&mut a_to_b, &mut a_from_b] {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(_))), "a's connection ended: {read:?}");
    }
    assert!(a.is_closed());
    assert!(a.dial(b.node_addr()).await.is_err());
    // The other side: the broker deleted a's queue with its connection, and b's check
    // of its peers ends the connection it dialled; the one a dialled ends too.
    for stream in [&mut b_to_a, &mut b_from_a] {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(_))),
            "b's connection with a ended: {read:?}"
        );
    }
    b.close();
}
