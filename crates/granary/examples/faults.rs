//! Fault injection in process: the `FaultInjector` a test puts between a node and the
//! network (the guide is `docs/faults.md`).
//!
//! `cargo run --example faults` runs two transports on 127.0.0.1, each with its own
//! injector, and shows each kind of rule on real sockets: random drops (seeded, so a
//! seed replays the same decisions), delays, a one-way cut, a both-ways partition set
//! on one side only (it cuts both directions), and healing. Each step checks what it
//! claims and the example exits non-zero if a claim fails; every wait is bounded.
//! The last lines show how a virtual-actor node takes an injector
//! (`NodeBuilder::faults`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use granary::remote::faults::{Direction, FaultInjector, LinkFaults, Scope, Verdict};
use granary::remote::wire::{Frame, FrameHeader, FrameKind};
use granary::remote::{SendOptions, Transport, TransportConfig};
use granary::virtual_actors::{Node, NodeBuilder};
use tokio::sync::mpsc;

/// The longest any one frame may take to arrive.
const WAIT: Duration = Duration::from_secs(10);

type Inbox = mpsc::UnboundedReceiver<Frame>;

/// A transport whose injector is `faults`, and the frames it receives.
async fn endpoint(
    faults: &Arc<FaultInjector>,
) -> Result<(Transport, Inbox), Box<dyn std::error::Error>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = TransportConfig::new("faults-example", b"secret".to_vec())
        .with_parallelism(1) // one data connection: frames keep their order
        // Heartbeats an hour apart, so the injectors' counters below count only the
        // example's frames (a real node keeps the default, 1 s).
        .with_heartbeat(Duration::from_secs(3600), Duration::from_secs(7200))
        .with_faults(faults.clone());
    let transport = Transport::bind(config, move |_from, frame: Frame| {
        let _ = tx.send(frame);
    })
    .await?;
    Ok((transport, rx))
}

fn send(from: &Transport, to: SocketAddr, body: &str) -> Result<(), Box<dyn std::error::Error>> {
    let header = FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: 1,
        correlation: 0,
        sender: "example",
        recipient: "inbox",
        trace: None,
    };
    from.send(
        to,
        header,
        body.as_bytes().to_vec().into(),
        SendOptions::data(),
    )?;
    Ok(())
}

async fn next(inbox: &mut Inbox) -> Result<String, Box<dyn std::error::Error>> {
    let frame = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .map_err(|_| format!("no frame within {WAIT:?}"))?
        .ok_or("transport closed")?;
    Ok(String::from_utf8_lossy(&frame.body).into_owned())
}

fn check(claim: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if claim {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("claim failed: {what}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let faults_a = FaultInjector::new(42);
    let faults_b = FaultInjector::new(43);
    let (a, mut inbox_a) = endpoint(&faults_a).await?;
    let (b, mut inbox_b) = endpoint(&faults_b).await?;
    let (addr_a, addr_b) = (a.local_addr(), b.local_addr());
    send(&a, addr_b, "hello b")?;
    send(&b, addr_a, "hello a")?;
    check(
        next(&mut inbox_b).await? == "hello b",
        "a reaches b with no rule",
    )?;
    check(
        next(&mut inbox_a).await? == "hello a",
        "b reaches a with no rule",
    )?;

    println!("random drops (a → b, 30 %):");
    faults_a.set(
        Scope::to(addr_b),
        LinkFaults {
            drop_probability: 0.3,
            delay: None,
        },
    );
    for i in 0..1000 {
        send(&a, addr_b, &i.to_string())?;
    }
    faults_a.remove(&Scope::to(addr_b));
    send(&a, addr_b, "end")?; // same connection, sent last: arrives last
    let mut received = 0;
    while next(&mut inbox_b).await? != "end" {
        received += 1;
    }
    let dropped = faults_a.stats().dropped;
    println!("  {received} of 1000 arrived, the injector dropped {dropped}");
    check(
        received + dropped == 1000,
        "every frame arrived or was counted dropped",
    )?;
    check((200..400).contains(&dropped), "about 30 % dropped")?;

    println!("determinism: the same seed gives the same decisions");
    let decisions = |seed| {
        let f = FaultInjector::new(seed);
        f.set(
            Scope::all(),
            LinkFaults {
                drop_probability: 0.5,
                delay: None,
            },
        );
        (0..64)
            .map(|_| f.decide(addr_a, addr_b, "data") == Verdict::Drop)
            .collect::<Vec<_>>()
    };
    check(decisions(7) == decisions(7), "seed 7 twice: same drops")?;
    check(decisions(7) != decisions(8), "seed 8: other drops")?;

    println!("delays (b → a, 50–80 ms):");
    faults_b.set(
        Scope::to(addr_a),
        LinkFaults {
            drop_probability: 0.0,
            delay: Some(Duration::from_millis(50)..Duration::from_millis(80)),
        },
    );
    let sent = Instant::now();
    for i in 0..5 {
        send(&b, addr_a, &format!("late {i}"))?;
    }
    let mut arrived = Vec::new();
    for _ in 0..5 {
        arrived.push(next(&mut inbox_a).await?);
    }
    let expected: Vec<String> = (0..5).map(|i| format!("late {i}")).collect();
    check(arrived == expected, "delayed frames keep their order")?;
    let took = sent.elapsed();
    println!("  5 frames in {:.0} ms", took.as_secs_f64() * 1000.0);
    check(
        took >= Duration::from_millis(50),
        "held back at least the shortest delay",
    )?;
    faults_b.clear();

    println!("one-way cut a → b (set on a):");
    faults_a.partition(&[addr_a], &[addr_b], Direction::OneWay);
    send(&a, addr_b, "cut")?;
    send(&b, addr_a, "b still reaches a")?;
    check(
        next(&mut inbox_a).await? == "b still reaches a",
        "b → a passes",
    )?;
    check(faults_a.stats().blocked == 1, "a's frame to b was blocked")?;
    faults_a.heal();

    println!("both-ways partition set on a only:");
    faults_a.partition(&[addr_a], &[addr_b], Direction::BothWays);
    send(&a, addr_b, "blocked on sending")?;
    send(&b, addr_a, "blocked on arrival")?;
    let deadline = Instant::now() + WAIT;
    while faults_a.stats().blocked_on_arrival == 0 {
        if Instant::now() > deadline {
            return Err("b's frame was not dropped on arrival at a".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = faults_a.stats();
    println!(
        "  a's injector: {} blocked on sending, {} on arrival",
        stats.blocked, stats.blocked_on_arrival
    );
    check(inbox_a.try_recv().is_err(), "nothing from b reached a")?;
    check(
        faults_b.stats().blocked == 0,
        "b has no rule and blocked nothing",
    )?;

    println!("heal:");
    faults_a.heal();
    send(&a, addr_b, "a → b again")?;
    send(&b, addr_a, "b → a again")?;
    check(next(&mut inbox_b).await? == "a → b again", "a reaches b")?;
    check(next(&mut inbox_a).await? == "b → a again", "b reaches a")?;
    // Frames blocked while the partition held are gone, not queued for later.
    check(
        inbox_b.try_recv().is_err(),
        "the blocked frames never arrive",
    )?;
    a.shutdown();
    b.shutdown();

    // A virtual-actor node takes an injector the same way (its transport uses it):
    let builder: NodeBuilder = Node::builder().faults(faults_a.clone());
    drop(builder);
    println!("done");
    Ok(())
}
