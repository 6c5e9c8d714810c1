//! The hosts: one Linux network namespace per host, all on one bridge.
//!
//! Layout of a test bed with prefix `gtb1f2an0-` (pid `0x1f2a`, the process's first
//! test bed) and three hosts:
//!
//! ```text
//!   namespace gtb1f2an0-sw:  bridge br0 ── v1, v2, v3     (no address)
//!   namespace gtb1f2an0-h1:  eth0 10.213.0.11/24 (peer of v1), lo
//!   namespace gtb1f2an0-h2:  eth0 10.213.0.12/24 (peer of v2), lo
//!   namespace gtb1f2an0-h3:  eth0 10.213.0.13/24 (peer of v3), lo
//! ```
//!
//! Nothing is configured in the root namespace, and the addresses exist only inside
//! these namespaces, so nothing the test bed's processes send can leave them.
//! Removing the namespaces removes everything (the veth pairs and the bridge go with
//! them). A [`Testbed`] removes its namespaces (after killing every process left in
//! them) when dropped, also while unwinding from a panic; [`Testbed::new`] first
//! sweeps what runs that died without cleaning up left behind ([`sweep_dead_runs`]);
//! a binary that can be interrupted calls [`sweep_this_process`] from its signal
//! handler.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::cmd::{ip, run_tool, BedError};
use crate::netfault::{render_rules, Link};

/// The prefix of every namespace any test bed creates.
const COMMON_PREFIX: &str = "gtb";
/// The subnet of the hosts (exists only inside the test bed's namespaces).
const SUBNET: [u8; 3] = [10, 213, 0];
/// The last octet of host 0's address.
const FIRST_HOST_OCTET: u8 = 11;
/// The most hosts one test bed holds (addresses .11 to .250).
pub const MAX_HOSTS: usize = 240;

/// Test beds created by this process so far (part of the name prefix).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// One host of the test bed: a network namespace with one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The host's name in the test bed (`h1`, `h2`, ...), used in logs and faults.
    pub name: String,
    /// The network namespace (`ip netns exec <namespace> ...`).
    pub namespace: String,
    /// The host's address on the bridge.
    pub addr: Ipv4Addr,
}

/// A host of a [`Testbed`], by index (0-based; host `i` is named `h{i+1}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub usize);

/// N hosts on one bridge, with kernel-level faults between them; removed on drop.
///
/// Faults ([`Testbed::partition`], [`Testbed::cut`], [`Testbed::cut_one_way`],
/// [`Testbed::heal`]) are nft rules in the hosts' namespaces; bandwidth limits
/// ([`Testbed::limit_bandwidth`]) are a tbf qdisc on a host's interface. Processes
/// are launched on a host with [`Testbed::spawn`] (see [`crate::process`]).
#[derive(Debug)]
pub struct Testbed {
    prefix: String,
    switch: String,
    hosts: Vec<Host>,
    cuts: Mutex<BTreeSet<Link>>,
    run_dir: PathBuf,
    keep_run_dir: AtomicBool,
}

impl Testbed {
    /// A test bed of `hosts` hosts, with a fresh run directory under the system's
    /// temporary directory (`<tmp>/granary-testbed/<prefix>`).
    pub fn new(hosts: usize) -> Result<Testbed, BedError> {
        Testbed::new_in(hosts, &std::env::temp_dir().join("granary-testbed"))
    }

    /// A test bed of `hosts` hosts whose run directory is created under `parent`.
    pub fn new_in(hosts: usize, parent: &Path) -> Result<Testbed, BedError> {
        if hosts == 0 || hosts > MAX_HOSTS {
            return Err(BedError::Invalid(format!(
                "a test bed has 1 to {MAX_HOSTS} hosts, not {hosts}"
            )));
        }
        sweep_dead_runs();
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{COMMON_PREFIX}{:x}n{sequence}-", std::process::id());
        let run_dir = parent.join(prefix.trim_end_matches('-'));
        std::fs::create_dir_all(&run_dir).map_err(|source| BedError::File {
            path: run_dir.clone(),
            source,
        })?;
        // From here on, dropping `bed` removes whatever was created.
        let mut bed = Testbed {
            switch: format!("{prefix}sw"),
            prefix,
            hosts: Vec::with_capacity(hosts),
            cuts: Mutex::new(BTreeSet::new()),
            run_dir,
            keep_run_dir: AtomicBool::new(false),
        };
        let sw = bed.switch.clone();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for index in 0..hosts {
            let host = Host {
                name: format!("h{}", index + 1),
                namespace: format!("{}h{}", bed.prefix, index + 1),
                addr: host_addr(index),
            };
            let port = format!("v{}", index + 1);
            let ns = host.namespace.as_str();
            ip(&["netns", "add", ns])?;
            bed.hosts.push(host.clone());
            let cidr = format!("{}/24", host.addr);
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(bed)
    }

    /// The hosts, in order (`h1` first).
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `id`.
    pub fn host(&self, id: HostId) -> Result<&Host, BedError> {
        self.hosts
            .get(id.0)
            .ok_or_else(|| BedError::NoSuchHost(format!("#{}", id.0)))
    }

    /// The host named `name` (`h1`, ...).
    pub fn host_by_name(&self, name: &str) -> Result<HostId, BedError> {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .map(HostId)
            .ok_or_else(|| BedError::NoSuchHost(name.to_string()))
    }

    /// Every host's id.
    pub fn host_ids(&self) -> impl Iterator<Item = HostId> {
        (0..self.hosts.len()).map(HostId)
    }

    /// The prefix of this test bed's namespace names (unique to the run).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The run directory: process logs and histories. Removed on drop unless
    /// [`Testbed::keep_run_dir`] was called.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Keeps the run directory after the test bed is dropped (a failing run's
    /// evidence).
    pub fn keep_run_dir(&self) {
        self.keep_run_dir.store(true, Ordering::Relaxed);
    }

    /// Cuts every link between hosts of different `groups`, both ways, on top of
    /// the cuts already in place. Every host of the bed is named in exactly one
    /// group, so a schedule reads unambiguously.
    pub fn partition(&self, groups: &[Vec<HostId>]) -> Result<(), BedError> {
        let mut seen = BTreeSet::new();
        for id in groups.iter().flatten() {
            self.host(*id)?;
            if !seen.insert(*id) {
                return Err(BedError::Invalid(format!(
                    "host h{} is in two partition groups",
                    id.0 + 1
                )));
            }
        }
        if seen.len() != self.hosts.len() {
            return Err(BedError::Invalid(
                "a partition names every host of the test bed in one group".to_string(),
            ));
        }
        let mut links = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            for other in groups.iter().skip(g + 1) {
                for a in group {
                    for b in other {
                        links.push(Link { from: *a, to: *b });
                        links.push(Link { from: *b, to: *a });
                    }
                }
            }
        }
        self.add_cuts(&links)
    }

    /// Cuts the link between `a` and `b`, both ways (a partial partition when a
    /// third host still reaches both).
    pub fn cut(&self, a: HostId, b: HostId) -> Result<(), BedError> {
        self.add_cuts(&[Link { from: a, to: b }, Link { from: b, to: a }])
    }

    /// Cuts every link between two of `hosts`, both ways, in one step; the other
    /// hosts still reach all of them.
    pub fn cut_all_between(&self, hosts: &[HostId]) -> Result<(), BedError> {
        let mut links = Vec::new();
        for (i, a) in hosts.iter().enumerate() {
            self.host(*a)?;
            for b in &hosts[i + 1..] {
                links.push(Link { from: *a, to: *b });
                links.push(Link { from: *b, to: *a });
            }
        }
        self.add_cuts(&links)
    }

    /// Drops every packet `from` sends to `to` on its arrival (`to`'s packets to
    /// `from` still arrive). TCP needs both directions: a connection either way
    /// stalls.
    pub fn cut_one_way(&self, from: HostId, to: HostId) -> Result<(), BedError> {
        self.add_cuts(&[Link { from, to }])
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<(), BedError> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        let changed: BTreeSet<HostId> = cuts.iter().map(|l| l.to).collect();
        cuts.clear();
        self.apply_rules(&cuts, &changed)
    }

    /// The links cut now.
    pub fn cuts(&self) -> Vec<Link> {
        let cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        cuts.iter().copied().collect()
    }

    fn add_cuts(&self, links: &[Link]) -> Result<(), BedError> {
        for link in links {
            self.host(link.from)?;
            self.host(link.to)?;
            if link.from == link.to {
                return Err(BedError::Invalid("a host cannot be cut from itself".into()));
            }
        }
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        cuts.extend(links.iter().copied());
        let changed = links.iter().map(|l| l.to).collect();
        self.apply_rules(&cuts, &changed)
    }

    /// Replaces the fault table of every host in `changed` by the rules `cuts` give
    /// it (one atomic `nft -f` per host).
    fn apply_rules(
        &self,
        cuts: &BTreeSet<Link>,
        changed: &BTreeSet<HostId>,
    ) -> Result<(), BedError> {
        for id in changed {
            let host = self.host(*id)?;
            let script = render_rules(*id, cuts, |h| self.hosts[h.0].addr);
            run_tool(
                std::process::Command::new("ip").args([
                    "netns",
                    "exec",
                    &host.namespace,
                    "nft",
                    "-f",
                    "-",
                ]),
                Some(&script),
            )?;
        }
        Ok(())
    }

    /// Limits what `host` sends to `kbit_per_sec` (a tbf qdisc on its interface).
    pub fn limit_bandwidth(&self, host: HostId, kbit_per_sec: u32) -> Result<(), BedError> {
        let ns = &self.host(host)?.namespace;
        let rate = format!("{kbit_per_sec}kbit");
        // A burst of at least one full-size frame, and ~10 ms of traffic at the rate.
        let burst = format!("{}", (kbit_per_sec as u64 * 1000 / 8 / 100).max(1600));
        run_tool(
            std::process::Command::new("tc").args([
                "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", &rate, "burst",
                &burst, "latency", "200ms",
            ]),
            None,
        )?;
        Ok(())
    }

    /// Removes `host`'s bandwidth limit (if any).
    pub fn clear_bandwidth(&self, host: HostId) -> Result<(), BedError> {
        let ns = &self.host(host)?.namespace;
        match run_tool(
            std::process::Command::new("tc")
                .args(["-n", ns, "qdisc", "del", "dev", "eth0", "root"]),
            None,
        ) {
            Ok(_) => Ok(()),
            // No limit in place: the kernel says so, and there is nothing to remove.
            Err(BedError::Tool { stderr, .. })
                if stderr.contains("No such file")
                    || stderr.contains("Cannot delete qdisc with handle of zero") =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Runs `f` on a thread that has entered `host`'s network namespace: sockets it
    /// creates belong to that host (and stay there when handed to other threads).
    pub fn in_host<T: Send>(
        &self,
        host: HostId,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, BedError> {
        let path = PathBuf::from("/run/netns").join(&self.host(host)?.namespace);
        let ns = File::open(&path).map_err(|source| BedError::File {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    rustix::thread::move_into_link_name_space(
                        std::os::fd::AsFd::as_fd(&ns),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .map_err(|errno| BedError::File {
                        path,
                        source: errno.into(),
                    })?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Testbed {
    /// Kills every process left in the test bed's namespaces and removes them;
    /// removes the run directory unless it is kept.
    fn drop(&mut self) {
        remove_namespaces(|name| name.starts_with(&self.prefix));
        if !self.keep_run_dir.load(Ordering::Relaxed) {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

/// The address of host `index`.
fn host_addr(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        SUBNET[0],
        SUBNET[1],
        SUBNET[2],
        FIRST_HOST_OCTET + index as u8,
    )
}

/// The pid that created the namespace `name` (`gtb<pid hex>n<seq>-...`), if `name`
/// is a test bed's.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(COMMON_PREFIX)?;
    let (pid, rest) = rest.split_once('n')?;
    let (sequence, _) = rest.split_once('-')?;
    sequence.parse::<u32>().ok()?;
    u32::from_str_radix(pid, 16).ok()
}

/// Removes the namespaces of test beds whose creating process is gone (killed
/// before its guard ran), with every process still in them. Namespaces of live
/// processes are left alone.
pub fn sweep_dead_runs() {
    remove_namespaces(|name| {
        owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
}

/// Removes every namespace this process's test beds created, with every process in
/// them: for a signal handler of a binary that is interrupted (the guards of its
/// test beds will not run).
pub fn sweep_this_process() {
    let me = std::process::id();
    remove_namespaces(|name| owner_pid(name) == Some(me));
}

/// Kills every process in, and deletes, each namespace whose name passes `matches`.
fn remove_namespaces(matches: impl Fn(&str) -> bool) {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    let names: Vec<&str> = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| matches(name))
        .collect();
    for name in &names {
        kill_all_in(name);
    }
    for name in &names {
        let _ = ip(&["netns", "del", name]);
    }
}

/// Sends `SIGKILL` to every process in namespace `name` (a bounded number of
/// rounds: a process can fork while we kill).
fn kill_all_in(name: &str) {
    for _ in 0..10 {
        let Ok(pids) = ip(&["netns", "pids", name]) else {
            return;
        };
        let pids: Vec<i32> = pids.lines().filter_map(|p| p.trim().parse().ok()).collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(crate::cmd::POLL);
    }
}

/// Whether this machine can host a test bed: root, the `ip`, `nft` and `tc`
/// tools, and network namespaces with a bridge, nft rules and a tbf qdisc (probed
/// once per process by building a one-host test bed). `Err` says what is missing.
pub fn available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

fn probe() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not running as root (network namespaces need it)".into());
    }
    for (tool, flag) in [("ip", "-V"), ("nft", "--version"), ("tc", "-V")] {
        run_tool(std::process::Command::new(tool).arg(flag), None).map_err(|e| {
            format!("the `{tool}` tool is missing or broken ({e}); install iproute2 and nftables")
        })?;
    }
    let bed = Testbed::new(2).map_err(|e| format!("cannot create network namespaces: {e}"))?;
    bed.cut_one_way(HostId(0), HostId(1))
        .map_err(|e| format!("cannot load nft rules in a namespace: {e}"))?;
    bed.limit_bandwidth(HostId(0), 10_000)
        .map_err(|e| format!("cannot add a tbf qdisc in a namespace: {e}"))?;
    Ok(())
}

/// For tests: `true` when the test bed is [`available`]; otherwise prints why and
/// returns `false` (the test then skips) — unless the environment says `CI=true`,
/// where the test bed is required and this panics with the reason.
pub fn available_or_skip(test: &str) -> bool {
    match available() {
        Ok(()) => true,
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: the test bed is required with CI=true: {reason}")
        }
        Err(reason) => {
            eprintln!("{test}: skipped: {reason}");
            false
        }
    }
}
