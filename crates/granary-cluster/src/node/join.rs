//! Joining through contacts (seeds), accepting joiners, and rejoining after Down.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Mode, NodeCore, Notice, ADMITTED_BY_METADATA_KEY};
use crate::config::NoSeedPolicy;
use crate::membership::{Member, MemberStatus};
use crate::message::ClusterMessage;
use crate::node_id::NodeId;

/// A Down while cut off less than this after the previous one doubles the wait
/// before rejoining (`DowningConfig::rejoin_backoff`).
pub(crate) const CUT_DOWN_MEMORY: Duration = Duration::from_secs(60);

/// How long, in join retry intervals, a member that accepted a joiner holds other
/// joiners back while the first one's row is not Up in its table yet (a joiner that
/// died after its accept does not hold the rest back longer).
const ADMISSION_WINDOW: u32 = 2;

/// Joiners held back at once; beyond these a joiner is not answered and asks again
/// at its next retry.
const MAX_HELD_JOINERS: usize = 32;

/// Joiners admitted one at a time. A joiner is Up, and owns its ranges, as soon as
/// it has the accept; the table it gets holds the members this member knows. Two
/// joiners accepted together would each get a table where the other is still
/// Joining: each would own ranges in its own ring that the other also owns, and
/// neither would ask the other before placing an identity there (the virtual
/// runtime asks the hosts in its ring) — two activations while a cluster forms. So a
/// second joiner waits until the first one's Up row is in this member's table, which
/// the first one sends right after its accept, and its accept then carries it.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// The joiner accepted last, and when.
    last: Option<(NodeId, Instant)>,
    /// Joiners that asked while another was being admitted, oldest first (one entry
    /// per address).
    held: VecDeque<Member>,
}

impl Admission {
    /// Remembers `member`'s request until it can be accepted; `false` if too many
    /// are held already.
    fn hold(&mut self, member: Member) -> bool {
        if let Some(held) = self.held.iter_mut().find(|m| m.id.addr == member.id.addr) {
            *held = member;
            return true;
        }
        if self.held.len() >= MAX_HELD_JOINERS {
            return false;
        }
        self.held.push_back(member);
        true
    }
}

/// Progress of a join.
#[derive(Debug)]
pub(crate) struct JoinState {
    contacts: Vec<SocketAddr>,
    /// `None` while rejoining: a downed node keeps trying and never forms its own cluster
    /// (that would split the brain).
    deadline: Option<Instant>,
    next_try: Instant,
    /// Whether the deadline was already extended once to let a lower address form the
    /// cluster first.
    extended: bool,
    /// While a node downed when cut off waits out its rejoin backoff: its probes of
    /// the members it suspected then (see [`RejoinProbes`]).
    probes: Option<RejoinProbes>,
    /// While rejoining: who else is asking to join (see [`Reformation`]; boxed, as it
    /// is rarely needed and the state lives in [`Mode`]).
    reformation: Option<Box<Reformation>>,
}

/// A rejoining node never forms a cluster on its own: the members it cannot reach may
/// still be Up. But when every member went Down (each side of a split downing the
/// other, say), no one is Up to answer, and each would wait forever. So a rejoining
/// node notes which of the members it knew when it went Down ask *it* to let them in —
/// a node asking to join is not Up. When it and those asking are a majority both of
/// every member in its table then and of those it still held live then, it holds the
/// lowest address among them, and that has held for `join.timeout` without an accept,
/// it forms the cluster again, and every other rejoiner asks it in. The first majority
/// covers the members its own side marked Down (a minority that downed the other side
/// one by one counts them; they may be Up); the second the members downed before (a
/// side that stayed Up after they went Down counts against it). Lives it still held
/// as live are marked Down first (they are the old cluster's); a node that comes back
/// with one of them learns so and rejoins.
#[derive(Debug)]
struct Reformation {
    /// The members in this node's table when it went Down, itself included.
    known: BTreeSet<SocketAddr>,
    /// Those of them it held live then, itself included.
    known_live: BTreeSet<SocketAddr>,
    /// When each of them last asked this node to let it in.
    asking: BTreeMap<SocketAddr, Instant>,
    /// Since when this node has been the lowest of a majority asking.
    lowest_of_majority_since: Option<Instant>,
}

/// A rejoiner asks every retry interval; one not heard for this many intervals no
/// longer counts as asking.
const ASKING_WINDOW: u32 = 3;

impl Reformation {
    fn new(me: SocketAddr, contacts: &[SocketAddr], live: &[SocketAddr]) -> Self {
        let mut known: BTreeSet<SocketAddr> = contacts.iter().copied().collect();
        known.insert(me);
        let mut known_live: BTreeSet<SocketAddr> = live.iter().copied().collect();
        known_live.insert(me);
        Self {
            known,
            known_live,
            asking: BTreeMap::new(),
            lowest_of_majority_since: None,
        }
    }

    /// Records that `addr` asked to join at `now`, if it is a member this node knew.
    fn asked(&mut self, addr: SocketAddr, now: Instant) {
        if self.known.contains(&addr) {
            self.asking.insert(addr, now);
        }
    }

    /// `true` once `me` has been the lowest of a majority of the known members, and of
    /// the known live ones, asking (itself included) for `hold`; askers not heard within
    /// `window` are dropped.
    fn should_form(
        &mut self,
        me: SocketAddr,
        now: Instant,
        window: Duration,
        hold: Duration,
    ) -> bool {
        self.asking
            .retain(|_, at| now.saturating_duration_since(*at) < window);
        let lowest = self.asking.keys().all(|a| *a > me);
        let majority_of = |members: &BTreeSet<SocketAddr>| {
            let asking = (self.asking.keys()).filter(|a| members.contains(a)).count();
            2 * (asking + 1) > members.len()
        };
        let majority = majority_of(&self.known) && majority_of(&self.known_live);
        if lowest && majority {
            let since = *self.lowest_of_majority_since.get_or_insert(now);
            now.saturating_duration_since(since) >= hold
        } else {
            self.lowest_of_majority_since = None;
            false
        }
    }
}

/// The rejoin backoff ends early once the link is repaired: a node downed while it
/// suspected live members (`DowningConfig::rejoin_backoff`) sends each of them a
/// heartbeat on every gossip tick of its wait, and once every one of them has answered
/// every round for `downing.stable_after` — round trips in both directions, so neither
/// direction of the cut still drops, held as long as downing holds a picture before it
/// acts — it asks to rejoin at once. While any link stays cut, or drops a probe or an
/// answer now and then, it waits the whole backoff.
#[derive(Debug)]
struct RejoinProbes {
    /// The live members it suspected when it went Down.
    cut_from: Vec<NodeId>,
    /// The last round sent, if any.
    last: Option<ProbeRound>,
    /// When the first of the rounds that every member answered, unbroken up to the
    /// last one, was sent.
    answered_since: Option<Instant>,
}

/// One round of [`RejoinProbes`]: its heartbeats' sequence number, when it was sent,
/// and who has answered it.
#[derive(Debug)]
struct ProbeRound {
    seq: u64,
    sent_at: Instant,
    answered: Vec<NodeId>,
}

impl RejoinProbes {
    /// Closes the last round at `now`; `true` once every round of the last
    /// `stable_after` was answered by every member.
    fn held_for(&mut self, now: Instant, stable_after: Duration) -> bool {
        let Some(last) = &self.last else {
            return false;
        };
        if self.cut_from.iter().all(|m| last.answered.contains(m)) {
            let since = *self.answered_since.get_or_insert(last.sent_at);
            now.saturating_duration_since(since) >= stable_after
        } else {
            self.answered_since = None;
            false
        }
    }
}

impl NodeCore {
    /// Starts joining through `contacts`; with none (or only itself) it forms a cluster.
    pub(crate) fn start_join(&mut self, now: Instant, contacts: Vec<SocketAddr>) {
        let contacts: Vec<SocketAddr> = contacts
            .into_iter()
            .filter(|a| *a != self.me.addr)
            .collect();
        if contacts.is_empty() {
            self.form_cluster();
            return;
        }
        self.mode = Mode::Joining(JoinState {
            contacts,
            deadline: Some(now + self.cfg.join.timeout),
            next_try: now,
            extended: false,
            probes: None,
            reformation: None,
        });
        self.retry_join(now);
    }

    /// `join(addr)` from the handle: ask `addr` to let us in (or merge with its cluster).
    pub(crate) fn join_via(&mut self, now: Instant, addr: SocketAddr) {
        match &mut self.mode {
            Mode::Joining(state) => {
                if !state.contacts.contains(&addr) {
                    state.contacts.push(addr);
                }
                state.next_try = now;
                self.retry_join(now);
            }
            Mode::Active => {
                if let Some(row) = self.own_row().cloned() {
                    self.send(addr, ClusterMessage::JoinRequest { member: row });
                }
            }
            Mode::Stopped => {}
        }
    }

    /// Pings the contacts again if it is time; applies the no-seed policy at the deadline.
    pub(crate) fn retry_join(&mut self, now: Instant) {
        let Mode::Joining(state) = &mut self.mode else {
            return;
        };
        if state.deadline.is_some_and(|d| now >= d) {
            // Nodes started together (a StatefulSet, a test) would each form a cluster of
            // one. Only the lowest address forms at the first deadline; the others wait
            // one more timeout for it, then form anyway (a lower contact may be dead).
            let lower_contact = state.contacts.iter().any(|c| *c < self.me.addr);
            if self.cfg.join.on_no_seed == NoSeedPolicy::FormNewCluster
                && lower_contact
                && !state.extended
            {
                state.extended = true;
                state.deadline = Some(now + self.cfg.join.timeout);
            } else {
                match self.cfg.join.on_no_seed {
                    NoSeedPolicy::FormNewCluster => self.form_cluster(),
                    NoSeedPolicy::Fail => {
                        self.mode = Mode::Stopped;
                        self.notices.push(Notice::NoSeedAnswered);
                        self.notices.push(Notice::Stopped);
                    }
                }
                return;
            }
        }
        let window = self.cfg.join.retry_interval * ASKING_WINDOW;
        let me = self.me.addr;
        if self.cfg.join.on_no_seed == NoSeedPolicy::FormNewCluster
            && (state.reformation.as_mut())
                .is_some_and(|r| r.should_form(me, now, window, self.cfg.join.timeout))
        {
            self.reform_cluster();
            return;
        }
        if now < state.next_try {
            let Some(probes) = &mut state.probes else {
                return;
            };
            if !probes.held_for(now, self.cfg.downing.stable_after) {
                self.hb_seq += 1;
                let seq = self.hb_seq;
                probes.last = Some(ProbeRound {
                    seq,
                    sent_at: now,
                    answered: Vec::new(),
                });
                for member in probes.cut_from.clone() {
                    self.send(member.addr, ClusterMessage::Heartbeat { seq });
                }
                return;
            }
            tracing::info!(node = %self.me, "every member it was cut from answers again: rejoining now");
        }
        state.probes = None;
        state.next_try = now + self.cfg.join.retry_interval;
        let contacts = state.contacts.clone();
        let row = self.fresh_row(MemberStatus::Joining, 0);
        for c in contacts {
            self.send(
                c,
                ClusterMessage::JoinRequest {
                    member: row.clone(),
                },
            );
        }
    }

    /// Forms the cluster again after every member went Down (see [`Reformation`]).
    fn reform_cluster(&mut self) {
        tracing::warn!(
            node = %self.me,
            "every member this node reaches is Down and asking to join: forming the cluster again"
        );
        let old_lives: Vec<Member> = (self.table.iter())
            .filter(|m| m.status.is_live() && m.id.addr != self.me.addr)
            .cloned()
            .collect();
        for row in old_lives {
            self.mark_down(row);
        }
        self.form_cluster();
    }

    /// A join request while this node is joining itself: a rejoining node notes it
    /// (see [`Reformation`]).
    pub(crate) fn on_join_request_while_joining(
        &mut self,
        now: Instant,
        from: NodeId,
        member: &Member,
    ) {
        let Mode::Joining(state) = &mut self.mode else {
            return;
        };
        if member.id != from || member.status != MemberStatus::Joining {
            return;
        }
        if let Some(reformation) = &mut state.reformation {
            reformation.asked(from.addr, now);
        }
    }

    /// Becomes the first member of a new cluster.
    fn form_cluster(&mut self) {
        self.become_member(None);
        self.notices.push(Notice::Joined);
    }

    /// Writes our own Up row and switches to Active.
    fn become_member(&mut self, admitted_by: Option<NodeId>) {
        self.mode = Mode::Active;
        self.hub.lock().set_local(self.me);
        let mut row = self.fresh_row(MemberStatus::Up, 1);
        if let Some(by) = admitted_by {
            let value = format!("{}#{}", by.addr, by.incarnation);
            row.metadata
                .insert(ADMITTED_BY_METADATA_KEY.to_string(), value);
        }
        self.apply(row);
        // A node forming a cluster agrees with itself at once (its host lease counts
        // on it); a joiner learns what the others have seen as their views arrive.
        self.refresh_agreement();
    }

    /// A contact accepted us (or, when already Active, merged clusters with us).
    pub(crate) fn on_join_accept(&mut self, now: Instant, from: NodeId, members: Vec<Member>) {
        // Set when the cluster remembers a life of ours that this join cannot be: a newer
        // incarnation, or our own id already past Joining (a restart that reused it).
        let mut must_outgrow: Option<NodeId> = None;
        // A joiner's copy of the table is old news to the cluster: merge it quietly. An
        // active node merging another cluster spreads what it learned.
        let spread = matches!(self.mode, Mode::Active);
        for row in members {
            if !spread && self.is_own_verdict(&row) {
                // We were cut off and downed ourselves; a Down we wrote for a member the
                // cluster still has live (same life) is our partition's view, not the
                // cluster's. Adopt the cluster's row so it never spreads.
                self.overwrite_row(row);
                continue;
            }
            if row.id.addr == self.me.addr {
                let newer = row.id.incarnation > self.me.incarnation;
                let reused = row.id == self.me && row.status != MemberStatus::Joining;
                if newer || reused {
                    must_outgrow = must_outgrow.max(Some(row.id));
                }
                if matches!(self.mode, Mode::Joining(_)) {
                    // Our own rows are written by us; only remember the newest life seen.
                    if row.id.incarnation < self.me.incarnation {
                        self.merge_row(row, spread);
                    }
                    continue;
                }
            }
            self.merge_row(row, spread);
        }
        self.notices.push(Notice::AcceptedBy(from.addr));
        if matches!(self.mode, Mode::Joining(_)) {
            if let Some(newest) = must_outgrow {
                // The cluster remembers a life of ours at least as new: take a newer one
                // and ask again.
                self.me = newest.next_incarnation();
                if let Mode::Joining(state) = &mut self.mode {
                    state.next_try = now;
                }
                self.retry_join(now);
                return;
            }
            self.become_member(Some(from));
            self.notices.push(Notice::Joined);
            if let Some(row) = self.own_row().cloned() {
                let state_hash = self.table.state_hash();
                self.send(
                    from.addr,
                    ClusterMessage::Gossip {
                        state_hash,
                        deltas: vec![row],
                    },
                );
            }
        } else {
            self.check_self(now);
        }
    }

    /// True when our table holds `row`'s very life as Down while `row` says it is live.
    fn is_own_verdict(&self, row: &Member) -> bool {
        row.status.is_live()
            && row.id.addr != self.me.addr
            && self
                .table
                .get(&row.id.addr)
                .is_some_and(|mine| mine.id == row.id && mine.status == MemberStatus::Down)
    }

    /// Someone wants in: record its row and hand over the table, if we are Up —
    /// once no other joiner is being admitted (see [`Admission`]).
    pub(crate) fn on_join_request(&mut self, now: Instant, from: NodeId, member: Member) {
        if self.own_status() != Some(MemberStatus::Up) || member.id.addr == self.me.addr {
            return;
        }
        if member.id != from {
            return;
        }
        if self.admitting(now).is_some_and(|other| other != from) {
            if !self.admission.hold(member) {
                tracing::debug!(joiner = %from, "too many joiners held; it asks again");
            }
            return;
        }
        self.accept_joiner(now, member);
    }

    /// The joiner accepted last, while its row is still Joining in this table and
    /// the admission window has not passed.
    fn admitting(&self, now: Instant) -> Option<NodeId> {
        let (last, at) = self.admission.last?;
        let window = self.cfg.join.retry_interval * ADMISSION_WINDOW;
        let joining = (self.table.get(&last.addr))
            .is_some_and(|row| row.id == last && row.status == MemberStatus::Joining);
        (joining && now.saturating_duration_since(at) < window).then_some(last)
    }

    /// Accepts the joiners held back, one at a time, as each one before comes Up
    /// (or its window passes).
    pub(crate) fn admit_held(&mut self, now: Instant) {
        while !self.admission.held.is_empty() && self.admitting(now).is_none() {
            if self.own_status() != Some(MemberStatus::Up) {
                self.admission.held.clear();
                return;
            }
            if let Some(member) = self.admission.held.pop_front() {
                self.accept_joiner(now, member);
            }
        }
    }

    /// Records `member`'s row and hands it the table.
    fn accept_joiner(&mut self, now: Instant, member: Member) {
        let joiner = member.id;
        // The node itself asks again: a pruned life at its address must not keep it out
        // (the accept below carries the table, from which it learns what it must outgrow).
        self.forgotten.remove(&joiner.addr);
        self.apply(member);
        self.admission.last = Some((joiner, now));
        let members: Vec<Member> = self.table.iter().cloned().collect();
        self.send(joiner.addr, ClusterMessage::JoinAccept { members });
    }

    /// We are Down (declared by others, or by ourselves on the minority side).
    pub(crate) fn become_down(&mut self, now: Instant) {
        // Did this life suspect a member that is still live? Then it is cut off from
        // part of the cluster (see `DowningConfig::rejoin_backoff`).
        let cut_from: Vec<NodeId> = self.own_row().map_or_else(Vec::new, |r| {
            (r.suspects.iter())
                .filter(|s| {
                    self.table
                        .get(&s.addr)
                        .is_some_and(|m| m.id == **s && m.status.is_live())
                })
                .copied()
                .collect()
        });
        let cut_off = !cut_from.is_empty();
        if self.own_row().is_some_and(|r| r.status.is_live()) {
            self.update_own(|row| row.status = MemberStatus::Down);
        }
        self.detectors.clear();
        self.unreachable.clear();
        self.unreachable_edges.clear();
        self.recent.clear();
        if !self.cfg.downing.auto_rejoin {
            self.mode = Mode::Stopped;
            self.notices.push(Notice::Stopped);
            return;
        }
        let newest = self
            .table
            .get(&self.me.addr)
            .map(|r| r.id)
            .unwrap_or(self.me)
            .max(self.me);
        self.me = newest.next_incarnation();
        let contacts: Vec<SocketAddr> = self
            .table
            .iter()
            .filter(|m| m.id.addr != self.me.addr && m.status != MemberStatus::Removed)
            .map(|m| m.id.addr)
            .collect();
        let live: Vec<SocketAddr> = (self.table.iter())
            .filter(|m| m.id.addr != self.me.addr && m.status.is_live())
            .map(|m| m.id.addr)
            .collect();
        let backoff = self.cfg.downing.rejoin_backoff;
        let wait = if cut_off && !backoff.is_zero() {
            let recent = self
                .last_cut_down
                .is_some_and(|at| now.saturating_duration_since(at) < CUT_DOWN_MEMORY);
            self.cut_downs = if recent {
                (self.cut_downs + 1).min(3)
            } else {
                0
            };
            self.last_cut_down = Some(now);
            backoff * (1 << self.cut_downs)
        } else {
            self.cfg.join.retry_interval
        };
        tracing::info!(node = %self.me, ?wait, cut_off, "downed; rejoining with a new incarnation");
        let probes = (wait > self.cfg.join.retry_interval).then_some(RejoinProbes {
            cut_from,
            last: None,
            answered_since: None,
        });
        let reformation = Some(Box::new(Reformation::new(self.me.addr, &contacts, &live)));
        self.mode = Mode::Joining(JoinState {
            contacts,
            deadline: None,
            next_try: now + wait,
            extended: false,
            probes,
            reformation,
        });
    }

    /// A heartbeat ack while joining: an answer to the last round of
    /// [`RejoinProbes`] counts (an earlier round's, or a heartbeat's from before the
    /// Down, does not).
    pub(crate) fn on_rejoin_probe_ack(&mut self, from: NodeId, seq: u64) {
        let Mode::Joining(state) = &mut self.mode else {
            return;
        };
        let Some(probes) = &mut state.probes else {
            return;
        };
        let Some(last) = probes.last.as_mut().filter(|round| round.seq == seq) else {
            return;
        };
        if probes.cut_from.contains(&from) && !last.answered.contains(&from) {
            last.answered.push(from);
        }
    }
}
