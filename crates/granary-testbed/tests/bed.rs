//! The test bed itself: namespaces are created and removed, faults drop what they
//! say and heal restores it, pauses stop a process, processes are killed and
//! restarted. Needs root and `ip`/`nft`/`tc`: skipped with a printed reason
//! elsewhere, required (failing loudly) with `CI=true`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use granary_testbed::process::Launch;
use granary_testbed::{available_or_skip, HostId, Testbed};

/// How long a connection attempt that should succeed may take.
const CONNECT: Duration = Duration::from_secs(2);
/// How long a connection attempt that should fail is given (it is dropped, so it
/// can only time out).
const BLOCKED: Duration = Duration::from_millis(700);

fn namespaces() -> String {
    std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A listener on `host` port `port`.
fn listen(bed: &Testbed, host: HostId, port: u16) -> TcpListener {
    let addr = SocketAddr::new(bed.host(host).unwrap().addr.into(), port);
    bed.in_host(host, || TcpListener::bind(addr))
        .unwrap()
        .unwrap()
}

/// Whether a TCP connection from `from` to `to:port` is established within `limit`,
/// and one byte goes through it.
fn connects(bed: &Testbed, from: HostId, to: HostId, port: u16, limit: Duration) -> bool {
    let addr = SocketAddr::new(bed.host(to).unwrap().addr.into(), port);
    bed.in_host(from, || match TcpStream::connect_timeout(&addr, limit) {
        Ok(mut stream) => stream.write_all(b"x").is_ok(),
        Err(_) => false,
    })
    .unwrap()
}

/// Whether a UDP datagram from `from` reaches `to` within `limit`.
fn datagram_arrives(bed: &Testbed, from: HostId, to: HostId, port: u16, limit: Duration) -> bool {
    let to_addr = SocketAddr::new(bed.host(to).unwrap().addr.into(), port);
    let receiver = bed
        .in_host(to, || UdpSocket::bind(to_addr))
        .unwrap()
        .unwrap();
    receiver.set_read_timeout(Some(limit)).unwrap();
    let from_addr = SocketAddr::new(bed.host(from).unwrap().addr.into(), 0);
    let sender = bed
        .in_host(from, || UdpSocket::bind(from_addr))
        .unwrap()
        .unwrap();
    sender
        .send_to(b"ping", to_addr)
        .expect("a cut is silent for the sender");
    let mut buf = [0u8; 8];
    match receiver.recv_from(&mut buf) {
        Ok((4, _)) => true,
        Ok(_) => false,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("recv: {e}"),
    }
}

#[test]
fn namespaces_are_created_and_removed_with_the_bed() {
    if !available_or_skip("namespaces_are_created_and_removed_with_the_bed") {
        return;
    }
    let bed = Testbed::new(3).unwrap();
    let prefix = bed.prefix().to_string();
    let run_dir = bed.run_dir().to_path_buf();
    let listed = namespaces();
    for host in bed.hosts() {
        assert!(
            listed.contains(&host.namespace),
            "{} missing from {listed}",
            host.namespace
        );
    }
    // The hosts reach each other, and nothing is reachable in the root namespace.
    let _listener = listen(&bed, HostId(2), 7000);
    assert!(connects(&bed, HostId(0), HostId(2), 7000, CONNECT));
    let root_routes = std::process::Command::new("ip")
        .args(["route", "get", "10.213.0.11"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&root_routes.stdout).contains("dev v"),
        "the root namespace must not know the bed's subnet"
    );
    drop(bed);
    assert!(
        !namespaces().contains(&prefix),
        "namespaces of {prefix} left: {}",
        namespaces()
    );
    assert!(!run_dir.exists(), "run dir {} left", run_dir.display());
}

#[test]
fn a_partition_drops_packets_between_groups_and_heal_restores_them() {
    if !available_or_skip("a_partition_drops_packets_between_groups_and_heal_restores_them") {
        return;
    }
    let bed = Testbed::new(3).unwrap();
    let (h1, h2, h3) = (HostId(0), HostId(1), HostId(2));
    let _l2 = listen(&bed, h2, 7001);
    let _l3 = listen(&bed, h3, 7001);
    let _l1 = listen(&bed, h1, 7001);
    assert!(
        connects(&bed, h1, h2, 7001, CONNECT),
        "before the partition"
    );

    bed.partition(&[vec![h1], vec![h2, h3]]).unwrap();
    assert!(
        !connects(&bed, h1, h2, 7001, BLOCKED),
        "h1 -> h2 across the partition"
    );
    assert!(
        !connects(&bed, h3, h1, 7001, BLOCKED),
        "h3 -> h1 across the partition"
    );
    assert!(
        connects(&bed, h2, h3, 7001, CONNECT),
        "h2 -> h3 inside one group"
    );

    bed.heal().unwrap();
    assert!(bed.cuts().is_empty());
    assert!(connects(&bed, h1, h2, 7001, CONNECT), "after heal");
    assert!(connects(&bed, h3, h1, 7001, CONNECT), "after heal");
}

#[test]
fn a_partial_partition_cuts_a_from_c_while_b_reaches_both() {
    if !available_or_skip("a_partial_partition_cuts_a_from_c_while_b_reaches_both") {
        return;
    }
    let bed = Testbed::new(3).unwrap();
    let (a, b, c) = (HostId(0), HostId(1), HostId(2));
    let _listeners: Vec<_> = [a, b, c]
        .into_iter()
        .map(|h| listen(&bed, h, 7002))
        .collect();
    bed.cut(a, c).unwrap();
    assert!(!connects(&bed, a, c, 7002, BLOCKED), "a -> c");
    assert!(!connects(&bed, c, a, 7002, BLOCKED), "c -> a");
    for (from, to) in [(a, b), (b, a), (b, c), (c, b)] {
        assert!(
            connects(&bed, from, to, 7002, CONNECT),
            "{from:?} -> {to:?}"
        );
    }
}

#[test]
fn a_one_way_cut_is_one_way() {
    if !available_or_skip("a_one_way_cut_is_one_way") {
        return;
    }
    let bed = Testbed::new(2).unwrap();
    let (a, b) = (HostId(0), HostId(1));
    assert!(
        datagram_arrives(&bed, a, b, 7003, CONNECT),
        "a -> b before the cut"
    );
    bed.cut_one_way(a, b).unwrap();
    assert!(
        !datagram_arrives(&bed, a, b, 7004, BLOCKED),
        "a -> b is cut"
    );
    assert!(
        datagram_arrives(&bed, b, a, 7005, CONNECT),
        "b -> a still arrives"
    );
    bed.heal().unwrap();
    assert!(
        datagram_arrives(&bed, a, b, 7006, CONNECT),
        "a -> b after heal"
    );
}

#[test]
fn a_bandwidth_limit_slows_a_hosts_sending() {
    if !available_or_skip("a_bandwidth_limit_slows_a_hosts_sending") {
        return;
    }
    let bed = Testbed::new(2).unwrap();
    let (a, b) = (HostId(0), HostId(1));
    let listener = listen(&bed, b, 7007);
    let addr = SocketAddr::new(bed.host(b).unwrap().addr.into(), 7007);
    const BYTES: usize = 256 * 1024;
    // The receiver reads everything, then closes: the sender's read returns 0 only
    // once all bytes arrived, so the time includes the transfer, not just the copy
    // into the socket buffer.
    let reader = std::thread::spawn(move || {
        let mut totals = Vec::new();
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            while total < BYTES {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            totals.push(total);
        }
        totals
    });
    // 256 KiB: milliseconds unlimited; at 2 Mbit/s about one second.
    let send = |bed: &Testbed| {
        let started = Instant::now();
        bed.in_host(a, || {
            let mut stream = TcpStream::connect_timeout(&addr, CONNECT).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream.write_all(&vec![7u8; BYTES]).unwrap();
            let mut end = [0u8; 1];
            assert_eq!(
                stream.read(&mut end).unwrap(),
                0,
                "the receiver closes after all bytes"
            );
        })
        .unwrap();
        started.elapsed()
    };
    let unlimited = send(&bed);
    bed.limit_bandwidth(a, 2_000).unwrap();
    let limited = send(&bed);
    bed.clear_bandwidth(a).unwrap();
    bed.clear_bandwidth(a).unwrap(); // removing no limit is not an error
    assert_eq!(reader.join().unwrap(), vec![BYTES, BYTES]);
    assert!(
        limited >= Duration::from_millis(600) && limited > unlimited * 4,
        "limited {limited:?}, unlimited {unlimited:?}"
    );
}

/// A shell loop printing `tick N` every 50 ms.
fn ticker(name: &str) -> Launch {
    Launch::new(
        name,
        "sh",
        vec![
            "-c".into(),
            "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done".into(),
        ],
    )
}

#[test]
fn a_pause_stops_a_process_until_it_is_resumed() {
    if !available_or_skip("a_pause_stops_a_process_until_it_is_resumed") {
        return;
    }
    let bed = Testbed::new(1).unwrap();
    let mut p = bed.spawn(HostId(0), &ticker("ticker")).unwrap();
    p.wait_for_line("tick", CONNECT).unwrap();
    p.pause().unwrap();
    assert!(p.is_stopped(), "the kernel has it stopped");
    assert!(p.is_running(), "stopped is not exited");
    // Lines already in the pipe may still arrive; after them, nothing for 600 ms.
    while p.wait_for_line("tick", Duration::from_millis(200)).is_ok() {}
    assert!(
        p.wait_for_line("tick", Duration::from_millis(600)).is_err(),
        "a paused process printed"
    );
    p.resume().unwrap();
    assert!(!p.is_stopped());
    p.wait_for_line("tick", CONNECT)
        .expect("ticks again after resume");
}

#[test]
fn kill_restart_and_a_slow_start() {
    if !available_or_skip("kill_restart_and_a_slow_start") {
        return;
    }
    let bed = Testbed::new(1).unwrap();
    let log: PathBuf;
    {
        let mut p = bed.spawn(HostId(0), &ticker("t")).unwrap();
        p.wait_for_line("tick", CONNECT).unwrap();
        let status = p.kill().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(!p.is_running());
        log = p.log().to_path_buf();
    }
    // Slow start: nothing before the delay, the program after it, same pid.
    let started = Instant::now();
    let mut p = bed
        .spawn(HostId(0), &ticker("t").delayed(Duration::from_millis(800)))
        .unwrap();
    let pid = p.pid();
    p.wait_for_line("tick 1", Duration::from_secs(5)).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "started early"
    );
    assert_eq!(p.pid(), pid);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(comm.contains("while"), "the pid is the program's: {comm:?}");
    drop(p);
    // Both incarnations wrote to the same log.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.matches("tick 1\n").count() >= 2, "{text}");
}

#[test]
fn a_process_that_exits_early_is_reported_not_awaited() {
    if !available_or_skip("a_process_that_exits_early_is_reported_not_awaited") {
        return;
    }
    let bed = Testbed::new(1).unwrap();
    let mut p = bed
        .spawn(
            HostId(0),
            &Launch::new(
                "quitter",
                "sh",
                vec!["-c".into(), "echo bye; exit 3".into()],
            ),
        )
        .unwrap();
    let started = Instant::now();
    let err = p
        .wait_for_line("ready", Duration::from_secs(30))
        .unwrap_err();
    assert!(
        matches!(err, granary_testbed::BedError::EndedEarly { .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(p.wait(CONNECT).unwrap().code(), Some(3));
}

#[test]
fn leftovers_of_a_dead_run_are_swept() {
    if !available_or_skip("leftovers_of_a_dead_run_are_swept") {
        return;
    }
    // A process that made a namespace in the test bed's name format and died.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let name = format!("gtb{dead_pid:x}n0-h1");
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(status.success());
    // A namespace of a live process (this one) in the same format is not touched.
    let bed = Testbed::new(1).unwrap();
    assert!(
        !namespaces().contains(&name),
        "{name} not swept: {}",
        namespaces()
    );
    granary_testbed::sweep_dead_runs();
    assert!(
        namespaces().contains(bed.prefix()),
        "a live run's namespace was swept"
    );
}
