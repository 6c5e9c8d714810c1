//! The DNS provider against a real local dnsmasq serving A and SRV records on 127.0.0.1.
//!
//! Skipped (with the reason printed) when dnsmasq is not installed, unless CI=true, in
//! which case a missing dnsmasq fails the test.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use granary_cluster::provider::{DnsProvider, DnsRecordKind, MembershipProvider};

fn dnsmasq_path() -> Option<PathBuf> {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Kills the dnsmasq this test started (by its own handle) when the test ends.
struct Dnsmasq {
    child: Child,
    port: u16,
    _hosts: tempfile_path::TempPath,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod tempfile_path {
    /// A file removed on drop.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// A port on 127.0.0.1 free for both TCP and UDP: dnsmasq binds both, and a port free
/// for UDP alone may be some TCP connection's local port (released just before
/// dnsmasq binds it, so it can still be taken in between: see `start_answering`).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_dnsmasq(bin: &PathBuf) -> Dnsmasq {
    let port = free_port();
    let hosts =
        std::env::temp_dir().join(format!("granary-dns-{}-{port}.hosts", std::process::id()));
    let mut f = std::fs::File::create(&hosts).unwrap();
    // Three pods behind a headless service name, plus per-pod names for SRV targets.
    for i in 0..3 {
        writeln!(f, "127.0.0.{} granary.svc.test", 11 + i).unwrap();
        writeln!(f, "127.0.0.{} granary-{i}.granary.svc.test", 11 + i).unwrap();
    }
    drop(f);
    let mut cmd = Command::new(bin);
    cmd.arg("--no-daemon")
        .arg("--conf-file=/dev/null")
        .arg("--no-resolv")
        .arg("--no-hosts")
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg("--listen-address=127.0.0.1")
        .arg("--bind-interfaces")
        .arg(format!("--port={port}"))
        .arg("--user=root")
        .arg("--pid-file=")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for i in 0..3 {
        cmd.arg(format!(
            "--srv-host=_cluster._tcp.granary.svc.test,granary-{i}.granary.svc.test,{}",
            7100 + i
        ));
    }
    let child = cmd.spawn().expect("spawn dnsmasq");
    Dnsmasq {
        child,
        port,
        _hosts: tempfile_path::TempPath(hosts),
    }
}

/// Asks until dnsmasq answers with `expected` records (it needs a moment to bind);
/// `Err` if it exited instead (it could not bind its port).
async fn discover_until(
    p: &DnsProvider,
    dns: &mut Dnsmasq,
    expected: usize,
) -> Result<Vec<SocketAddr>, String> {
    let port = dns.port;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(found) = p.discover().await {
                if found.len() == expected {
                    return Ok(found);
                }
            }
            if let Ok(Some(status)) = dns.child.try_wait() {
                return Err(format!("dnsmasq on port {port} exited: {status}"));
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("dnsmasq on port {port} runs but gave no answer in 20 s"))
}

/// A dnsmasq that answers, with what it answered for `granary.svc.test.` (A records,
/// port 7000): one that exits at start-up (its port taken between `free_port` and its
/// bind) is started again on another port, up to five times.
async fn start_answering(bin: &PathBuf) -> (Dnsmasq, Vec<SocketAddr>) {
    let mut exits = Vec::new();
    while exits.len() < 5 {
        let mut dns = start_dnsmasq(bin);
        let server = SocketAddr::from(([127, 0, 0, 1], dns.port));
        let a = DnsProvider::new(
            "granary.svc.test.",
            DnsRecordKind::A { port: 7000 },
            Some(server),
        )
        .unwrap();
        match discover_until(&a, &mut dns, 3).await {
            Ok(found) => return (dns, found),
            Err(exit) => exits.push(exit),
        }
    }
    panic!("dnsmasq never started: {exits:?}");
}

#[tokio::test]
async fn dns_provider_reads_a_and_srv_records_from_dnsmasq() {
    let Some(bin) = dnsmasq_path() else {
        if ci() {
            panic!("dnsmasq is required when CI=true (apt-get install -y dnsmasq-base)");
        }
        eprintln!("SKIPPED: dnsmasq not installed (apt-get install -y dnsmasq-base)");
        return;
    };
    let (mut dns, found) = start_answering(&bin).await;
    let server = SocketAddr::from(([127, 0, 0, 1], dns.port));
    let expected: Vec<SocketAddr> = (0..3)
        .map(|i| SocketAddr::from(([127, 0, 0, 11 + i], 7000)))
        .collect();
    assert_eq!(found, expected);

    let srv = DnsProvider::new(
        "_cluster._tcp.granary.svc.test.",
        DnsRecordKind::Srv,
        Some(server),
    )
    .unwrap();
    let found = discover_until(&srv, &mut dns, 3).await.unwrap();
    let expected: Vec<SocketAddr> = (0..3u8)
        .map(|i| SocketAddr::from(([127, 0, 0, 11 + i], 7100 + i as u16)))
        .collect();
    assert_eq!(found, expected);

    // A name with no records means "nobody there yet", not an error.
    let none = DnsProvider::new(
        "nobody.svc.test.",
        DnsRecordKind::A { port: 1 },
        Some(server),
    )
    .unwrap();
    assert_eq!(none.discover().await.unwrap(), Vec::<SocketAddr>::new());
}
