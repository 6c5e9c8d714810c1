//! The periodic collector: samples a node's counters into the `metrics` facade and
//! into a bounded history for the dashboard, counts dead letters by reason and keeps
//! the latest membership changes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use granary_cluster::{ClusterEvent, MemberEvent, MemberStatus};
use granary_core::{DeadLetter, DeadLetterReason, EventRecvError};
use granary_virtual::NodeProbe;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::views::{MembershipEvent, NodeReport, Sample, TransportCounters};

/// Membership changes kept for the dashboard.
const EVENTS_KEPT: usize = 50;

/// What the collector has gathered; one lock.
#[derive(Default)]
struct Gathered {
    history: VecDeque<Sample>,
    dead_letters: BTreeMap<&'static str, u64>,
    events: VecDeque<MembershipEvent>,
    last: Option<(Instant, TransportCounters, u64)>,
}

/// Counters another part of the application keeps (a replicator, a device), read at
/// every sample as `(metric name, value since start)`.
pub(crate) type CounterSource = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Samples one node; shared by the endpoint's handlers.
pub(crate) struct Collector {
    probe: NodeProbe,
    node_label: String,
    history_len: usize,
    sources: Vec<CounterSource>,
    gathered: Mutex<Gathered>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The metric label of a dead letter's reason.
fn reason_label(reason: &DeadLetterReason) -> &'static str {
    match reason {
        DeadLetterReason::ActorStopped => "actor_stopped",
        DeadLetterReason::MailboxFull => "mailbox_full",
        DeadLetterReason::Timeout => "timeout",
        DeadLetterReason::Remote(_) => "remote",
        DeadLetterReason::Refused => "refused",
        _ => "other",
    }
}

fn event_name(event: &MemberEvent) -> &'static str {
    match event {
        MemberEvent::Joined(_) => "Joined",
        MemberEvent::Up(_) => "Up",
        MemberEvent::Leaving(_) => "Leaving",
        MemberEvent::Exiting(_) => "Exiting",
        MemberEvent::Down(_) => "Down",
        MemberEvent::Removed(_) => "Removed",
        MemberEvent::IncarnationChanged { .. } => "Restarted",
        MemberEvent::Updated(_) => "Updated",
    }
}

/// The name the endpoint and the metrics give a member status.
pub(crate) fn status_name(status: MemberStatus) -> String {
    format!("{status:?}")
}

const STATUSES: [MemberStatus; 6] = [
    MemberStatus::Joining,
    MemberStatus::Up,
    MemberStatus::Leaving,
    MemberStatus::Exiting,
    MemberStatus::Down,
    MemberStatus::Removed,
];

impl Collector {
    pub(crate) fn new(
        probe: NodeProbe,
        history_len: usize,
        sources: Vec<CounterSource>,
    ) -> Arc<Self> {
        Arc::new(Collector {
            node_label: probe.addr().to_string(),
            probe,
            history_len: history_len.max(2),
            sources,
            gathered: Mutex::new(Gathered::default()),
        })
    }

    pub(crate) fn probe(&self) -> &NodeProbe {
        &self.probe
    }

    /// Starts the sampling, dead-letter and membership tasks.
    pub(crate) fn start(self: &Arc<Self>, every: Duration) -> Vec<JoinHandle<()>> {
        let sampler = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    me.sample();
                }
            })
        };
        let dead_letters = {
            let me = self.clone();
            let mut sub = self.probe.system().events().subscribe::<DeadLetter>();
            tokio::spawn(async move {
                loop {
                    match sub.recv().await {
                        Ok(letter) => me.count_dead_letter(reason_label(&letter.reason), 1),
                        // Missed while this task was behind: still dead letters.
                        Err(EventRecvError::Lagged(n)) => me.count_dead_letter("unrecorded", n),
                        Err(_) => return,
                    }
                }
            })
        };
        let membership = {
            let me = self.clone();
            let mut events = self.probe.cluster().subscribe();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if let ClusterEvent::Change { event, .. } = event {
                        me.note_membership(&event);
                    }
                }
            })
        };
        vec![sampler, dead_letters, membership]
    }

    fn count_dead_letter(&self, reason: &'static str, n: u64) {
        *self.gathered.lock().dead_letters.entry(reason).or_default() += n;
        metrics::counter!("granary_dead_letters_total", "node" => self.node_label.clone(), "reason" => reason)
            .increment(n);
    }

    fn note_membership(&self, event: &MemberEvent) {
        let name = event_name(event);
        if matches!(event, MemberEvent::Down(_)) {
            metrics::counter!("granary_cluster_downs_total", "node" => self.node_label.clone())
                .increment(1);
        }
        let mut g = self.gathered.lock();
        if g.events.len() == EVENTS_KEPT {
            g.events.pop_front();
        }
        g.events.push_back(MembershipEvent {
            at_ms: unix_ms(),
            member: event.member().id.addr,
            event: name.to_owned(),
        });
    }

    fn transport(&self) -> TransportCounters {
        let Some(remote) = self.probe.cluster().remote_node() else {
            return TransportCounters::default();
        };
        for q in remote.transport().queue_depths() {
            metrics::gauge!("granary_peer_queue_bytes", "node" => self.node_label.clone(), "peer" => q.peer.to_string(), "channel" => q.channel.to_string())
                .set(q.bytes as f64);
        }
        let s = remote.transport().stats();
        TransportCounters {
            frames_out: s.frames_queued,
            frames_in: s.frames_received,
            writes: s.writes,
            backpressure: s.backpressure,
            dials: s.dials,
        }
    }

    fn activations(&self) -> BTreeMap<String, usize> {
        self.probe
            .kinds()
            .into_iter()
            .map(|k| (k.to_owned(), self.probe.activations(k)))
            .collect()
    }

    /// Takes one sample: metrics and history.
    pub(crate) fn sample(&self) {
        let now = Instant::now();
        let transport = self.transport();
        let activations = self.activations();
        let node = self.node_label.clone();
        for (kind, n) in &activations {
            metrics::gauge!("granary_activations", "node" => node.clone(), "kind" => kind.clone())
                .set(*n as f64);
        }
        let total_activations: usize = activations.values().sum();
        metrics::gauge!("granary_directory_entries", "node" => node.clone())
            .set(self.probe.directory_entries() as f64);
        metrics::gauge!("granary_lease_held", "node" => node.clone())
            .set(if self.probe.lease_held() { 1.0 } else { 0.0 });
        metrics::counter!("granary_transport_frames_in_total", "node" => node.clone())
            .absolute(transport.frames_in);
        metrics::counter!("granary_transport_frames_out_total", "node" => node.clone())
            .absolute(transport.frames_out);
        metrics::counter!("granary_transport_writes_total", "node" => node.clone())
            .absolute(transport.writes);
        metrics::counter!("granary_transport_backpressure_total", "node" => node.clone())
            .absolute(transport.backpressure);
        metrics::counter!("granary_transport_dials_total", "node" => node.clone())
            .absolute(transport.dials);
        for source in &self.sources {
            for (name, value) in source() {
                metrics::counter!(name, "node" => node.clone()).absolute(value);
            }
        }
        let members = self.probe.cluster().members();
        for status in STATUSES {
            let n = members.iter().filter(|m| m.status == status).count();
            metrics::gauge!("granary_cluster_members", "node" => node.clone(), "status" => status_name(status))
                .set(n as f64);
        }

        let mut g = self.gathered.lock();
        let dead_total: u64 = g.dead_letters.values().sum();
        if let Some((then, before, dead_before)) = g.last {
            let secs = now.duration_since(then).as_secs_f64().max(1e-3);
            let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
            let sample = Sample {
                at_ms: unix_ms(),
                frames_in_per_s: rate(transport.frames_in, before.frames_in),
                frames_out_per_s: rate(transport.frames_out, before.frames_out),
                dead_letters_per_s: rate(dead_total, dead_before),
                activations: total_activations,
            };
            if g.history.len() == self.history_len {
                g.history.pop_front();
            }
            g.history.push_back(sample);
        }
        g.last = Some((now, transport, dead_total));
    }

    /// This node's report.
    pub(crate) fn report(&self) -> NodeReport {
        let activations = self.activations();
        let g = self.gathered.lock();
        NodeReport {
            addr: self.probe.addr(),
            status: self.probe.cluster().local_status().map(status_name),
            lease_held: self.probe.lease_held(),
            activations,
            directory_entries: self.probe.directory_entries(),
            transport: g.last.map(|(_, t, _)| t).unwrap_or_default(),
            dead_letters: g
                .dead_letters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            history: g.history.iter().copied().collect(),
            events: g.events.iter().cloned().collect(),
        }
    }
}
