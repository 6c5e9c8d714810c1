//! Rule-level tests of the protocol core, driven directly with a synthetic clock.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Mode, NodeCore};
use crate::config::ClusterConfig;
use crate::event::EventHub;
use crate::membership::{Member, MemberStatus};
use crate::message::{ClusterMessage, Envelope};
use crate::node_id::NodeId;

fn id(i: u16) -> NodeId {
    NodeId::new(SocketAddr::from(([127, 0, 0, 1], 9000 + i)), 1)
}

fn up(i: u16) -> Member {
    let mut m = Member::new(id(i), 8);
    m.status = MemberStatus::Up;
    m.version = 1;
    m
}

/// Node 0, Active, with nodes 1..n Up in its table.
fn core_with(n: u16, t0: Instant) -> NodeCore {
    core_as(0, n, t0)
}

/// The configuration every core in these tests runs with.
fn test_config() -> ClusterConfig {
    ClusterConfig {
        vnodes: 8,
        incarnation: Some(1),
        rng_seed: Some(1),
        ..ClusterConfig::default()
    }
}

/// `i`'s row marked Down (version 2).
fn downed(i: u16) -> Member {
    let mut m = up(i);
    m.status = MemberStatus::Down;
    m.version = 2;
    m
}

fn suspecting(i: u16, version: u64, suspects: &[u16]) -> Member {
    let mut m = up(i);
    m.version = version;
    m.suspects = suspects.iter().map(|s| id(*s)).collect();
    m
}

fn status(core: &NodeCore, i: u16) -> MemberStatus {
    core.table.get(&id(i).addr).unwrap().status
}

#[test]
fn one_vote_makes_unreachable_but_down_needs_quorum() {
    let t0 = Instant::now();
    let mut core = core_with(5, t0);
    let victim = 1;
    let monitors: Vec<u16> = core
        .ring
        .predecessors(id(victim).addr, 3)
        .iter()
        .map(|m| m.addr.port() - 9000)
        .filter(|m| *m != 0)
        .collect();
    assert!(
        monitors.len() >= 2,
        "test needs two monitors other than node 0"
    );
    core.apply(suspecting(monitors[0], 2, &[victim]));
    core.evaluate_downing(t0);
    assert!(core.unreachable.contains(&id(victim)));
    core.evaluate_downing(t0 + Duration::from_secs(5));
    assert_eq!(
        status(&core, victim),
        MemberStatus::Up,
        "one vote is not a quorum"
    );

    // A second monitor agrees; the unreachable set has been stable since t0.
    core.apply(suspecting(monitors[1], 2, &[victim]));
    core.evaluate_downing(t0 + Duration::from_secs(5));
    assert_eq!(status(&core, victim), MemberStatus::Down);
    assert!(!core.ring.contains(id(victim).addr));
}

fn two_monitors_of(core: &NodeCore, victim: u16) -> Vec<u16> {
    core.ring
        .predecessors(id(victim).addr, 3)
        .iter()
        .map(|m| m.addr.port() - 9000)
        .filter(|m| *m != 0)
        .take(2)
        .collect()
}

#[test]
fn downing_waits_until_unreachable_set_is_stable() {
    let t0 = Instant::now();
    let mut core = core_with(6, t0);
    let monitors = two_monitors_of(&core, 1);
    assert_eq!(monitors.len(), 2);
    for m in &monitors {
        core.apply(suspecting(*m, 2, &[1]));
    }
    core.evaluate_downing(t0);
    core.evaluate_downing(t0 + Duration::from_millis(600));
    // Another member becomes unreachable: the clock starts again.
    let other = (2..6).find(|i| !monitors.contains(i)).unwrap();
    let voter = monitors[0];
    core.apply(suspecting(voter, 3, &[1, other]));
    let t1 = t0 + Duration::from_millis(700);
    core.evaluate_downing(t1);
    core.evaluate_downing(t1 + Duration::from_millis(999));
    assert_eq!(
        status(&core, 1),
        MemberStatus::Up,
        "downed before stable_after"
    );
    core.evaluate_downing(t1 + Duration::from_secs(1));
    assert_eq!(status(&core, 1), MemberStatus::Down);
    assert_eq!(status(&core, other), MemberStatus::Up, "one vote only");
}

#[test]
fn minority_view_downs_itself_and_starts_rejoining() {
    let t0 = Instant::now();
    let mut core = core_with(5, t0);
    // Node 0 (with node 1) cannot reach 2, 3, 4.
    core.update_own(|row| row.suspects = [id(2), id(3), id(4)].into());
    core.evaluate_downing(t0);
    core.evaluate_downing(t0 + Duration::from_secs(2));
    assert!(matches!(core.mode, Mode::Joining(_)));
    assert_eq!(core.me, id(0).next_incarnation());
    assert_eq!(status(&core, 0), MemberStatus::Down);
    for i in 2..5 {
        assert_eq!(
            status(&core, i),
            MemberStatus::Up,
            "minority must not down others"
        );
    }
    // While rejoining it ignores gossip and asks its old peers to let it in.
    core.take_outgoing();
    core.on_gossip_tick(t0 + Duration::from_secs(3));
    let out = core.take_outgoing();
    assert!(!out.is_empty());
    assert!(out.iter().all(|(_, m)| matches!(
        m,
        ClusterMessage::JoinRequest { member } if member.id == id(0).next_incarnation()
    )));
}

#[test]
fn learning_of_own_down_through_gossip_triggers_rejoin() {
    let t0 = Instant::now();
    let mut core = core_with(3, t0);
    let mut downed = core.table.get(&id(0).addr).unwrap().clone();
    downed.status = MemberStatus::Down;
    downed.version += 1;
    core.on_message(
        t0,
        Envelope {
            from: id(1),
            message: ClusterMessage::Gossip {
                state_hash: 0,
                deltas: vec![downed],
            },
        },
    );
    assert!(matches!(core.mode, Mode::Joining(_)));
    assert_eq!(core.me.incarnation, 2);
}

#[test]
fn stale_rows_do_not_override_newer_ones() {
    let t0 = Instant::now();
    let mut core = core_with(3, t0);
    let mut newer = up(1);
    newer.version = 5;
    assert!(core.apply(newer));
    assert!(!core.apply(up(1)), "older version ignored");
    assert!(
        core.apply(downed(1)),
        "Down outranks a higher version of Up"
    );
}

#[test]
fn gossip_carries_recent_deltas_and_then_only_a_hash() {
    let t0 = Instant::now();
    let mut core = core_with(4, t0);
    let mut rounds = 0;
    loop {
        core.gossip_round();
        let out = core.take_outgoing();
        assert!(!out.is_empty());
        let carried: usize = out
            .iter()
            .map(|(_, m)| match m {
                ClusterMessage::Gossip { deltas, .. } => deltas.len(),
                _ => 0,
            })
            .sum();
        if carried == 0 {
            break;
        }
        rounds += 1;
        assert!(rounds < 50, "deltas never drained");
    }
    assert!(rounds > 1, "a change is sent more than once");
}

#[test]
fn rejoining_node_drops_down_verdicts_of_its_own_partition() {
    let t0 = Instant::now();
    let mut core = core_with(5, t0);
    // Cut off with node 1, node 0 first downs node 2 (its partial view), then itself.
    core.apply(downed(2));
    core.become_down(t0);
    assert!(matches!(core.mode, Mode::Joining(_)));
    // The cluster still has node 2 Up (same life); it accepts node 0 back.
    let mut accepted: Vec<Member> = (1..5).map(up).collect();
    accepted[1].version = 1;
    let from = id(3);
    core.on_message(
        t0 + Duration::from_secs(1),
        Envelope {
            from,
            message: ClusterMessage::JoinAccept { members: accepted },
        },
    );
    assert!(matches!(core.mode, Mode::Active));
    assert_eq!(status(&core, 2), MemberStatus::Up);
    assert!(core.ring.contains(id(2).addr));
    assert!(!core.recent.contains_key(&id(2).addr), "never spread");
}

#[test]
fn a_cut_link_between_two_others_downs_its_higher_end_after_stable_after() {
    let t0 = Instant::now();
    let mut core = core_with(3, t0);
    // 1 and 2 cannot reach each other; node 0 reaches both. The old rule saw two
    // unreachable members of three and downed node 0 as a "minority".
    core.apply(suspecting(1, 2, &[2]));
    core.evaluate_downing(t0);
    core.apply(suspecting(2, 2, &[1]));
    let t1 = t0 + Duration::from_millis(300);
    core.evaluate_downing(t1);
    core.evaluate_downing(t1 + Duration::from_millis(999));
    for i in 0..3 {
        assert_eq!(
            status(&core, i),
            MemberStatus::Up,
            "decided before stable_after"
        );
    }
    core.evaluate_downing(t1 + Duration::from_secs(1));
    assert!(matches!(core.mode, Mode::Active));
    assert_eq!(status(&core, 0), MemberStatus::Up);
    assert_eq!(status(&core, 1), MemberStatus::Up);
    assert_eq!(
        status(&core, 2),
        MemberStatus::Down,
        "ties go to the highest address"
    );
}

#[test]
fn a_node_cut_from_both_others_downs_itself() {
    let t0 = Instant::now();
    let mut core = core_with(3, t0);
    core.update_own(|row| row.suspects = [id(1), id(2)].into());
    core.apply(suspecting(1, 2, &[0]));
    core.apply(suspecting(2, 2, &[0]));
    core.evaluate_downing(t0);
    core.evaluate_downing(t0 + Duration::from_secs(1));
    assert!(matches!(core.mode, Mode::Joining(_)));
    assert_eq!(status(&core, 0), MemberStatus::Down);
    assert_eq!(status(&core, 1), MemberStatus::Up);
    assert_eq!(status(&core, 2), MemberStatus::Up);
}

#[test]
fn a_resolution_that_would_down_a_majority_waits() {
    let t0 = Instant::now();
    let mut core = core_with(4, t0);
    // Nobody reaches anybody, yet gossip got through: resolving would down three of four.
    core.update_own(|row| row.suspects = [id(1), id(2), id(3)].into());
    core.apply(suspecting(1, 2, &[0, 2, 3]));
    core.apply(suspecting(2, 2, &[0, 1, 3]));
    core.apply(suspecting(3, 2, &[0, 1, 2]));
    core.evaluate_downing(t0);
    core.evaluate_downing(t0 + Duration::from_secs(5));
    assert!(matches!(core.mode, Mode::Active));
    assert!(core.downing_refused);
    for i in 0..4 {
        assert_eq!(status(&core, i), MemberStatus::Up);
    }
}

/// The chaos bed's seed 2921 (session 30): in a 2 | 3 partition the minority's
/// detectors suspected one member of the majority (rejoined a moment before: a short
/// history) a second before the others. Deciding on that suspicion alone, the minority
/// counted four of five reachable and marked it Down, then the next, and so on, while
/// the majority marked the minority Down: after the heal every node was Down. A member
/// this node watches that is overdue keeps the decision waiting; once it is suspected
/// too, the node finds itself on the minority side and downs itself alone.
#[test]
fn a_side_waits_while_a_member_it_watches_is_overdue_and_then_finds_itself_the_minority() {
    let t0 = Instant::now();
    let mut core = core_with(5, t0);
    let watched: Vec<u16> = (core.ring.successors(id(0).addr, 3).iter())
        .map(|m| m.addr.port() - 9000)
        .collect();
    // The other side: `late` (watched by node 0, merely overdue at first), `first`
    // (suspected first) and `third`; this side: node 0 and `mate`.
    let late = watched[0];
    let rest: Vec<u16> = (1..5).filter(|i| *i != late).collect();
    let (first, third, mate) = (rest[0], rest[1], rest[2]);
    // Two seconds of regular heartbeats from everyone node 0 watches, then the cut.
    core.probe_successors(t0);
    let beat = Duration::from_millis(250);
    let mut t = t0;
    for _ in 0..8 {
        t += beat;
        for w in &watched {
            core.on_heartbeat_ack(t, id(*w));
        }
    }
    let cut = t;
    let answers_from_mate = |core: &mut NodeCore, until: Instant| {
        let mut at = cut;
        while at + beat <= until {
            at += beat;
            core.on_heartbeat_ack(at, id(mate));
        }
    };
    // 300 ms after the cut, `first` is suspected by both nodes of this side.
    let t1 = cut + Duration::from_millis(300);
    core.update_own(|row| row.suspects = [id(first)].into());
    core.apply(suspecting(mate, 2, &[first]));
    core.evaluate_downing(t1);
    // `stable_after` (1 s) later the picture of the suspicions alone has held still, but
    // `late` has not answered for 1.3 s: nothing is decided.
    let t2 = t1 + Duration::from_secs(1);
    answers_from_mate(&mut core, t2);
    core.evaluate_downing(t2);
    assert_eq!(
        status(&core, first),
        MemberStatus::Up,
        "decided on one suspicion while a watched member was overdue"
    );
    assert!(matches!(core.mode, Mode::Active));
    // `late` and `third` are suspected too: two of five reachable, the minority.
    let t3 = t2 + Duration::from_millis(100);
    core.update_own(|row| row.suspects = [id(first), id(late)].into());
    core.apply(suspecting(mate, 3, &[first, third]));
    core.evaluate_downing(t3);
    let t4 = t3 + Duration::from_secs(1);
    answers_from_mate(&mut core, t4);
    core.evaluate_downing(t4);
    assert!(
        matches!(core.mode, Mode::Joining(_)),
        "the minority downs itself"
    );
    for other in [first, late, third, mate] {
        assert_eq!(
            status(&core, other),
            MemberStatus::Up,
            "the minority must not down {other}"
        );
    }
}

#[test]
fn a_suspected_node_probes_its_suspecter_back() {
    let t0 = Instant::now();
    let mut core = core_with(8, t0);
    let k = core.cfg.monitored_successors;
    let watched: Vec<NodeId> = core.ring.successors(id(0).addr, k);
    let stranger = (1..8)
        .map(id)
        .find(|n| !watched.contains(n))
        .expect("with 8 nodes and k = 3, node 0 does not watch everyone");
    core.take_outgoing();
    core.probe_successors(t0);
    let probed = |out: &[(SocketAddr, ClusterMessage)]| {
        out.iter()
            .any(|(to, m)| *to == stranger.addr && matches!(m, ClusterMessage::Heartbeat { .. }))
    };
    assert!(!probed(&core.take_outgoing()));
    core.apply(suspecting(stranger.addr.port() - 9000, 2, &[0]));
    core.probe_successors(t0 + Duration::from_millis(250));
    assert!(
        probed(&core.take_outgoing()),
        "the suspecter is probed back"
    );
    // Unanswered, the probe-back turns into a suspicion of the suspecter (the
    // successors answer, so node 0 watches no one beyond them).
    for beat in 1..=24 {
        for w in &watched {
            core.on_heartbeat_ack(t0 + Duration::from_millis(250 * beat), *w);
        }
    }
    core.probe_successors(t0 + Duration::from_secs(5));
    assert!(core.own_row().unwrap().suspects.contains(&stranger));
    // Once the suspicion is withdrawn, so are the probes and the counter-suspicion.
    core.apply(suspecting(stranger.addr.port() - 9000, 3, &[]));
    core.take_outgoing();
    core.probe_successors(t0 + Duration::from_secs(6));
    assert!(!probed(&core.take_outgoing()));
    assert!(!core.own_row().unwrap().suspects.contains(&stranger));
}

#[test]
fn a_suspected_successor_is_watched_alongside_the_next_reachable_one() {
    let t0 = Instant::now();
    let mut core = core_with(8, t0);
    let k = core.cfg.monitored_successors;
    let ring_order: Vec<NodeId> = core.ring.successors(id(0).addr, 7);
    let (first, next) = (ring_order[0], ring_order[k]);
    let heartbeats_to = |out: Vec<(SocketAddr, ClusterMessage)>| -> BTreeSet<NodeId> {
        (out.into_iter())
            .filter(|(_, m)| matches!(m, ClusterMessage::Heartbeat { .. }))
            .filter_map(|(to, _)| ring_order.iter().find(|n| n.addr == to).copied())
            .collect()
    };
    core.take_outgoing();
    core.probe_successors(t0);
    let watched = heartbeats_to(core.take_outgoing());
    assert_eq!(watched, ring_order[..k].iter().copied().collect());
    // Another member suspects node 0's nearest successor: node 0 keeps watching it and
    // watches the next one too, so it still watches `k` members no one suspects.
    let suspecter = ring_order[k + 1].addr.port() - 9000;
    core.apply(suspecting(suspecter, 2, &[first.addr.port() - 9000]));
    core.probe_successors(t0 + Duration::from_millis(250));
    let watched = heartbeats_to(core.take_outgoing());
    assert!(
        watched.contains(&first),
        "the suspected successor stays watched"
    );
    assert!(
        watched.contains(&next),
        "the next reachable successor is watched"
    );
    assert_eq!(watched.len(), k + 1);
    // The suspicion withdrawn, node 0 watches its `k` nearest again.
    core.apply(suspecting(suspecter, 3, &[]));
    core.probe_successors(t0 + Duration::from_millis(500));
    let watched = heartbeats_to(core.take_outgoing());
    assert_eq!(watched, ring_order[..k].iter().copied().collect());
}

/// Node 0 of three, cut from both others, downs itself (suspecting live members) and
/// starts its 4 s rejoin backoff; what it sent since is discarded.
fn cut_off_and_downed(t0: Instant) -> NodeCore {
    let mut core = core_with(3, t0);
    core.cfg.downing.rejoin_backoff = Duration::from_secs(4);
    core.update_own(|row| row.suspects = [id(1), id(2)].into());
    core.apply(suspecting(1, 2, &[0]));
    core.apply(suspecting(2, 2, &[0]));
    core.evaluate_downing(t0);
    core.evaluate_downing(t0 + Duration::from_secs(1));
    assert!(matches!(core.mode, Mode::Joining(_)));
    core.take_outgoing();
    core
}

#[test]
fn a_node_downed_while_cut_off_waits_its_backoff_before_rejoining() {
    let t0 = Instant::now();
    let mut core = cut_off_and_downed(t0);
    let asks = |core: &mut NodeCore, at: Instant| {
        core.on_gossip_tick(at);
        core.take_outgoing()
            .iter()
            .filter(|(_, m)| matches!(m, ClusterMessage::JoinRequest { .. }))
            .count()
    };
    assert_eq!(
        asks(&mut core, t0 + Duration::from_secs(4)),
        0,
        "still backing off"
    );
    assert!(
        asks(&mut core, t0 + Duration::from_millis(5_100)) > 0,
        "rejoins after it"
    );
}

/// The heartbeat probes node 0 sent on one gossip tick at `at`, by member, and
/// whether it asked to join.
fn probe_tick(core: &mut NodeCore, at: Instant) -> (Vec<(u16, u64)>, bool) {
    core.on_gossip_tick(at);
    let out = core.take_outgoing();
    let probes = out
        .iter()
        .filter_map(|(to, m)| match m {
            ClusterMessage::Heartbeat { seq } => Some((to.port() - 9000, *seq)),
            _ => None,
        })
        .collect();
    let joins = out
        .iter()
        .any(|(_, m)| matches!(m, ClusterMessage::JoinRequest { .. }));
    (probes, joins)
}

fn ack(core: &mut NodeCore, at: Instant, from: u16, seq: u64) {
    core.on_message(
        at,
        Envelope {
            from: id(from),
            message: ClusterMessage::HeartbeatAck { seq },
        },
    );
}

#[test]
fn a_node_downed_while_cut_off_rejoins_once_every_cut_link_has_answered_for_stable_after() {
    let t0 = Instant::now();
    let mut core = cut_off_and_downed(t0);
    assert_eq!(core.cfg.downing.stable_after, Duration::from_secs(1));
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Round A at 1.2 s: both members it was cut from are probed.
    let (probes, joins) = probe_tick(&mut core, at(1_200));
    assert!(!joins, "still backing off");
    let mut probed: Vec<u16> = probes.iter().map(|(to, _)| *to).collect();
    probed.sort_unstable();
    assert_eq!(probed, [1, 2]);
    // Acks of heartbeats from before the Down prove nothing about the link now.
    let seq = probes[0].1;
    ack(&mut core, at(1_200), 1, seq - 1);
    ack(&mut core, at(1_200), 2, seq - 1);
    // Round B (1.4 s) answered by both, round C (1.6 s) by member 1 only: the link
    // to member 2 still drops now and then, and the count starts again.
    let answer = |core: &mut NodeCore, ms: u64, from: &[u16]| {
        let (probes, joins) = probe_tick(core, at(ms));
        for (to, seq) in probes {
            if from.contains(&to) {
                ack(core, at(ms), to, seq);
            }
        }
        joins
    };
    assert!(!answer(&mut core, 1_400, &[1, 2]));
    assert!(!answer(&mut core, 1_600, &[1]));
    // From round D (1.8 s) on, both answer every round: not yet rejoining while the
    // unbroken answers span less than `stable_after`...
    for ms in [1_800, 2_000, 2_200, 2_400, 2_600] {
        assert!(
            !answer(&mut core, ms, &[1, 2]),
            "rejoined at {ms} ms, answered since 1,800 ms"
        );
    }
    // ...and asking to rejoin once they span it, 2.2 s before the backoff ends.
    let (probes, joins) = probe_tick(&mut core, at(2_800));
    assert!(joins, "answered without a break for 1 s");
    assert!(probes.is_empty(), "and no longer probing");
}

#[test]
fn a_node_whose_cut_link_stays_silent_waits_its_whole_backoff_despite_probing() {
    let t0 = Instant::now();
    let mut core = cut_off_and_downed(t0);
    let mut at = t0 + Duration::from_millis(1_200);
    // Member 1 answers every probe, member 2 (the cut one) none.
    while at < t0 + Duration::from_secs(5) {
        let (probes, joins) = probe_tick(&mut core, at);
        assert!(
            !joins,
            "asked to rejoin at {:?} with a link still cut",
            at - t0
        );
        for (to, seq) in probes {
            if to == 1 {
                ack(&mut core, at, 1, seq);
            }
        }
        at += Duration::from_millis(200);
    }
    let (probes, joins) = probe_tick(&mut core, t0 + Duration::from_millis(5_100));
    assert!(joins, "rejoins after the backoff");
    assert!(probes.is_empty(), "and stops probing");
}

#[test]
fn a_node_downed_while_suspecting_no_one_rejoins_at_once_despite_the_backoff() {
    let t0 = Instant::now();
    let mut core = core_with(3, t0);
    core.cfg.downing.rejoin_backoff = Duration::from_secs(4);
    let mut downed = core.table.get(&id(0).addr).unwrap().clone();
    downed.status = MemberStatus::Down;
    downed.version += 1;
    core.on_message(
        t0,
        Envelope {
            from: id(1),
            message: ClusterMessage::Gossip {
                state_hash: 0,
                deltas: vec![downed],
            },
        },
    );
    assert!(matches!(core.mode, Mode::Joining(_)));
    core.take_outgoing();
    core.on_gossip_tick(t0 + Duration::from_millis(400));
    assert!(core
        .take_outgoing()
        .iter()
        .any(|(_, m)| matches!(m, ClusterMessage::JoinRequest { .. })));
}

/// The JoinAccepts node 0 sent since the last look, by joiner, with each joiner's
/// status in the table it carried.
fn accepts(core: &mut NodeCore) -> Vec<(u16, Vec<(u16, MemberStatus)>)> {
    core.take_outgoing()
        .into_iter()
        .filter_map(|(to, message)| match message {
            ClusterMessage::JoinAccept { members } => Some((
                to.port() - 9000,
                members
                    .iter()
                    .map(|m| (m.id.addr.port() - 9000, m.status))
                    .collect(),
            )),
            _ => None,
        })
        .collect()
}

fn join_request(i: u16) -> Envelope {
    join_request_from(id(i))
}

/// `who` asking to join.
fn join_request_from(who: NodeId) -> Envelope {
    Envelope {
        from: who,
        message: ClusterMessage::JoinRequest {
            member: Member::new(who, 8),
        },
    }
}

/// Two joiners asking at once would each get a table with the other still Joining,
/// own overlapping ranges and not know it: the second is accepted once the first
/// one's Up row is in, and its table carries it.
#[test]
fn a_second_joiner_is_accepted_once_the_first_is_up_and_its_table_says_so() {
    let t0 = Instant::now();
    let mut core = core_with(2, t0);
    core.take_outgoing();
    core.on_message(t0, join_request(5));
    core.on_message(t0, join_request(6));
    let first = accepts(&mut core);
    assert_eq!(first.len(), 1, "one joiner at a time: {first:?}");
    assert_eq!(first[0].0, 5);
    // Joiner 6 asks again while 5 is still Joining: still held.
    core.on_message(t0 + Duration::from_millis(100), join_request(6));
    assert!(accepts(&mut core).is_empty());
    // 5 is Up (its row arrives as gossip): 6 is accepted at once, knowing 5 is Up.
    let mut row = up(5);
    row.version = 2;
    core.on_message(
        t0 + Duration::from_millis(150),
        Envelope {
            from: id(5),
            message: ClusterMessage::Gossip {
                state_hash: 0,
                deltas: vec![row],
            },
        },
    );
    let second = accepts(&mut core);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].0, 6);
    assert!(
        second[0].1.contains(&(5, MemberStatus::Up)),
        "the table names the first joiner Up: {:?}",
        second[0].1
    );
}

/// A joiner that died after its accept holds the others back for two retry
/// intervals, no longer.
#[test]
fn a_joiner_that_never_comes_up_holds_the_next_back_for_two_retry_intervals() {
    let t0 = Instant::now();
    let mut core = core_with(2, t0);
    let retry = core.config().join.retry_interval;
    core.take_outgoing();
    core.on_message(t0, join_request(5));
    core.on_message(t0, join_request(6));
    assert_eq!(accepts(&mut core).len(), 1);
    core.on_gossip_tick(t0 + retry);
    assert!(accepts(&mut core).is_empty(), "within the window");
    core.on_gossip_tick(t0 + retry * 2);
    let late = accepts(&mut core);
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0].0, 6);
}

/// Node `me`, Active, with the other nodes of `0..n` Up in its table.
fn core_as(me: u16, n: u16, t0: Instant) -> NodeCore {
    let hub = Arc::new(Mutex::new(EventHub::new(id(me))));
    let mut core = NodeCore::new(test_config(), id(me), hub, t0);
    core.start_join(t0, vec![]);
    for i in (0..n).filter(|i| *i != me) {
        core.apply(up(i));
    }
    core
}

/// `i`'s Up row at `version`, having seen the members `seen` and suspecting `suspects`.
fn seeing(i: u16, version: u64, seen: &[u16], suspects: &[u16]) -> Member {
    let mut m = suspecting(i, version, suspects);
    let seen = seen.iter().map(|s| id(*s)).collect();
    (m.metadata).insert(
        super::SEEN_METADATA_KEY.into(),
        super::agreement::seen_hash(&seen),
    );
    m
}

/// Node 2's view of seed 2940 on the chaos bed: 0..3 agree; the partition {0, 1} |
/// {2, 3, 4} forms; node 4 (a rejoining life) is admitted through 2 only after it, so
/// 0 and 1 never see it. Counting 4, node 2's side would hold 3 of 5 while the other
/// holds 2 of 4 with the lowest address: both the majority. `four_agreed` is the
/// control: 4 was seen by all before the cut.
fn split_after_a_one_sided_admission(four_agreed: bool) -> NodeCore {
    let t0 = Instant::now();
    let mut core = core_as(2, 4, t0);
    let before = [0, 1, 2, 3];
    let after = [0, 1, 2, 3, 4];
    let agreed: &[u16] = if four_agreed { &after } else { &before };
    if four_agreed {
        core.apply(seeing(4, 1, &after, &[]));
    }
    for i in [0, 1, 3] {
        core.apply(seeing(i, 2, agreed, &[]));
    }
    core.evaluate_downing(t0);
    assert_eq!(core.agreed, agreed.iter().map(|i| id(*i)).collect());

    // The cut, and (without `four_agreed`) node 4 admitted on this side only.
    core.apply(seeing(4, 2, &after, &[0, 1]));
    core.apply(seeing(3, 3, &after, &[0, 1]));
    core.update_own(|row| row.suspects = [id(0), id(1)].into());
    core.evaluate_downing(t0);
    assert_eq!(core.agreed, agreed.iter().map(|i| id(*i)).collect());
    core.evaluate_downing(t0 + Duration::from_secs(2));
    core
}

#[test]
fn a_member_the_other_side_never_saw_does_not_make_a_majority() {
    let core = split_after_a_one_sided_admission(false);
    assert_eq!(
        status(&core, 2),
        MemberStatus::Down,
        "2 of the 4 agreed, without the lowest"
    );
    assert_eq!(status(&core, 0), MemberStatus::Up);
    assert_eq!(status(&core, 1), MemberStatus::Up);
}

#[test]
fn a_member_everyone_saw_counts_toward_the_majority() {
    let core = split_after_a_one_sided_admission(true);
    assert_eq!(status(&core, 2), MemberStatus::Up, "3 of 5");
    assert_eq!(status(&core, 0), MemberStatus::Down);
    assert_eq!(status(&core, 1), MemberStatus::Down);
}

#[test]
fn each_member_publishes_the_members_it_knows_as_soon_as_they_change() {
    let t0 = Instant::now();
    let mut core = core_with(3, t0);
    let own = |core: &NodeCore| core.own_row().unwrap().clone();
    let published = own(&core);
    let all: BTreeSet<NodeId> = (0..3).map(id).collect();
    assert_eq!(
        published.metadata.get(super::SEEN_METADATA_KEY),
        Some(&super::agreement::seen_hash(&all))
    );
    core.evaluate_downing(t0);
    assert_eq!(
        own(&core).version,
        published.version,
        "unchanged: not published again"
    );
    core.apply(up(3));
    let four: BTreeSet<NodeId> = (0..4).map(id).collect();
    let now = own(&core);
    assert_eq!(now.version, published.version + 1);
    assert_eq!(
        now.metadata.get(super::SEEN_METADATA_KEY),
        Some(&super::agreement::seen_hash(&four))
    );
    // A change that leaves the live set as it was publishes nothing.
    core.apply(suspecting(3, 2, &[1]));
    assert_eq!(own(&core).version, now.version);
}

/// Node 2, just admitted by node 0 with a table whose members have seen 0, 1, 3 and 4
/// but not node 2: they are agreed here, node 2 is not.
fn joined_as_2_unseen(t0: Instant) -> NodeCore {
    let hub = Arc::new(Mutex::new(EventHub::new(id(2))));
    let mut core = NodeCore::new(test_config(), id(2), hub, t0);
    core.start_join(t0, vec![id(0).addr]);
    let mut members: Vec<Member> = [0, 1, 3, 4]
        .into_iter()
        .map(|i| seeing(i, 2, &[0, 1, 3, 4], &[]))
        .collect();
    members.push(Member::new(id(2), 8));
    core.on_message(
        t0,
        Envelope {
            from: id(0),
            message: ClusterMessage::JoinAccept { members },
        },
    );
    assert_eq!(status(&core, 2), MemberStatus::Up);
    core
}

#[test]
fn a_life_no_one_has_seen_yet_does_not_decide() {
    let t0 = Instant::now();
    let mut core = joined_as_2_unseen(t0);
    core.apply(seeing(3, 3, &[0, 1, 3, 4], &[0, 1]));
    core.apply(seeing(4, 3, &[0, 1, 3, 4], &[0, 1]));
    core.evaluate_downing(t0);
    assert!(!core.agreed.contains(&id(2)), "{:?}", core.agreed);
    core.evaluate_downing(t0 + Duration::from_secs(2));
    assert_eq!(
        status(&core, 2),
        MemberStatus::Up,
        "not downed by its own count"
    );
    assert_eq!(status(&core, 0), MemberStatus::Up, "downed no one");
    assert_eq!(status(&core, 1), MemberStatus::Up, "downed no one");
}

#[test]
fn a_life_no_one_has_seen_yet_still_downs_itself_when_short_counting_everyone() {
    let t0 = Instant::now();
    let mut core = joined_as_2_unseen(t0);
    // Only 4 is on this node's side: 2 of 5 even counting itself.
    core.apply(seeing(4, 3, &[0, 1, 3, 4], &[0, 1, 3]));
    core.evaluate_downing(t0);
    core.evaluate_downing(t0 + Duration::from_secs(2));
    assert_eq!(status(&core, 2), MemberStatus::Down);
}

#[test]
fn a_joiner_counts_once_the_member_that_admitted_it_is_its_only_missing_view() {
    let t0 = Instant::now();
    // Node 1 with node 0; node 0 admits node 2 and dies before publishing a view that
    // holds it.
    let mut core = core_as(1, 2, t0);
    core.apply(seeing(0, 2, &[0, 1], &[]));
    core.evaluate_downing(t0);
    let mut joiner = seeing(2, 1, &[0, 1, 2], &[]);
    let by = id(0);
    (joiner.metadata).insert(
        super::ADMITTED_BY_METADATA_KEY.into(),
        format!("{}#{}", by.addr, by.incarnation),
    );
    core.apply(joiner.clone());
    core.evaluate_downing(t0);
    assert!(core.agreed.contains(&id(2)), "{:?}", core.agreed);

    // Without the admission named, node 0's view leaves it out.
    let mut core = core_as(1, 2, t0);
    core.apply(seeing(0, 2, &[0, 1], &[]));
    core.evaluate_downing(t0);
    joiner.metadata.remove(super::ADMITTED_BY_METADATA_KEY);
    core.apply(joiner);
    core.evaluate_downing(t0);
    assert!(!core.agreed.contains(&id(2)), "{:?}", core.agreed);
}

/// `i`, in its next life, asking to join.
fn rejoin_request(i: u16) -> Envelope {
    join_request_from(id(i).next_incarnation())
}

/// Drives `core` through gossip ticks every 300 ms from `from` until `until`, the
/// members `asking` sending a join request on each; returns when it first was Active.
fn rejoiners_ask(
    core: &mut NodeCore,
    asking: &[u16],
    from: Instant,
    until: Instant,
) -> Option<Instant> {
    let mut t = from;
    while t <= until {
        for i in asking {
            core.on_message(t, rejoin_request(*i));
        }
        core.on_gossip_tick(t);
        if matches!(core.mode, Mode::Active) {
            return Some(t);
        }
        t += Duration::from_millis(300);
    }
    None
}

#[test]
fn when_every_member_is_down_and_asking_the_lowest_forms_the_cluster_again() {
    let t0 = Instant::now();
    let mut core = core_with(5, t0);
    core.become_down(t0);
    assert!(matches!(core.mode, Mode::Joining(_)));
    let timeout = core.cfg.join.timeout;
    let formed = rejoiners_ask(&mut core, &[1, 2, 3, 4], t0, t0 + 3 * timeout)
        .expect("the lowest of the rejoiners forms the cluster again");
    assert!(
        formed >= t0 + timeout,
        "formed {:?} after the Down, before a join timeout",
        formed - t0
    );
    assert_eq!(core.own_status(), Some(MemberStatus::Up));
    for i in 1..5 {
        assert_eq!(
            status(&core, i),
            MemberStatus::Down,
            "old life of {i} still live"
        );
    }
    // The others' next lives are let in.
    core.take_outgoing();
    core.on_message(formed, rejoin_request(1));
    let accepted = core
        .take_outgoing()
        .into_iter()
        .any(|(to, m)| to == id(1).addr && matches!(m, ClusterMessage::JoinAccept { .. }));
    assert!(accepted, "a rejoiner is accepted by the re-formed cluster");
}

#[test]
fn a_rejoiner_does_not_form_with_a_minority_asking_or_a_lower_address_asking() {
    let t0 = Instant::now();
    let long = Duration::from_secs(20);
    // Two of five: the other three may be Up behind a partition.
    let mut core = core_with(5, t0);
    core.become_down(t0);
    assert_eq!(rejoiners_ask(&mut core, &[1], t0, t0 + long), None);
    // Four of five, but node 0 asks too: it is the one to form.
    let mut core = core_as(1, 5, t0);
    core.become_down(t0);
    assert_eq!(rejoiners_ask(&mut core, &[0, 2, 3], t0, t0 + long), None);
}

#[test]
fn a_side_that_marked_the_others_down_still_counts_them() {
    // Node 0's side marked 2, 3 and 4 Down on its own, then went Down itself: the two
    // of them are a majority of the members it held live, not of those it knew, and the
    // three may well be Up.
    let t0 = Instant::now();
    let mut core = core_with(5, t0);
    for i in 2..5 {
        core.apply(downed(i));
    }
    core.become_down(t0);
    assert_eq!(
        rejoiners_ask(&mut core, &[1], t0, t0 + Duration::from_secs(20)),
        None
    );
}

#[test]
fn a_rejoiner_counts_the_members_it_held_live_against_a_side_that_stayed_up() {
    // Node 2 went Down before; then node 0 went Down with 1, 3 and 4 live in its
    // table. Nodes 2 and 3 asking make three of the five it knew, but only two of the
    // four it held live: 1 and 4 may be Up.
    let t0 = Instant::now();
    let mut core = core_with(5, t0);
    core.apply(downed(2));
    core.become_down(t0);
    assert_eq!(
        rejoiners_ask(&mut core, &[2, 3], t0, t0 + Duration::from_secs(20)),
        None
    );
}
