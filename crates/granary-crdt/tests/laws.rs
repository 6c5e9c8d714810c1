//! The lattice laws of every CRDT, checked on states reached by random histories.
//!
//! A history is a list of steps on three replicas: a replica mutates its own state, or
//! merges another replica's full state into its own. From the three final states and
//! every delta produced on the way we check:
//! - merge is commutative, associative and idempotent;
//! - each mutation's delta merged into the state before it equals the state after it;
//! - joining all deltas (with `join_deltas`, in any order) and merging the result, or
//!   merging them one by one in reverse order, gives the join of the three replicas;
//! - states and deltas survive a postcard round trip.

use std::fmt::Debug;

use granary_crdt::{
    Crdt, GCounter, GSet, LWWRegister, MVRegister, ORMap, ORSet, PNCounter, ReplicaId,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Step<O> {
    Mutate(usize, O),
    SyncFrom { to: usize, from: usize },
}

fn steps<O: Debug + Clone>(op: impl Strategy<Value = O>) -> impl Strategy<Value = Vec<Step<O>>> {
    let step = prop_oneof![
        4 => (0..REPLICAS, op).prop_map(|(r, o)| Step::Mutate(r, o)),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(to, from)| Step::SyncFrom { to, from }),
    ];
    prop::collection::vec(step, 0..40)
}

fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + Debug,
{
    let bytes = postcard::to_stdvec(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = postcard::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

fn join<C: Crdt>(a: &C, b: &C) -> C {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// Runs `history` with `apply` as the mutation and checks every law.
fn check_laws<C, O: Debug>(
    history: &[Step<O>],
    apply: impl Fn(&mut C, ReplicaId, &O) -> C::Delta,
) -> Result<(), TestCaseError>
where
    C: Crdt + serde::Serialize + serde::de::DeserializeOwned,
    C::Delta: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut states: Vec<C> = vec![C::default(); REPLICAS];
    let mut deltas: Vec<C::Delta> = Vec::new();
    for step in history {
        match step {
            Step::Mutate(r, op) => {
                let before = states[*r].clone();
                let delta = apply(&mut states[*r], ReplicaId::new(*r as u64 + 1), op);
                let mut via_delta = before;
                via_delta.merge_delta(&delta);
                prop_assert_eq!(
                    &via_delta,
                    &states[*r],
                    "delta of {:?} differs from the mutation",
                    op
                );
                round_trips(&delta)?;
                deltas.push(delta);
            }
            Step::SyncFrom { to, from } => {
                let source = states[*from].clone();
                states[*to].merge(&source);
            }
        }
    }
    let [a, b, c] = [&states[0], &states[1], &states[2]];
    prop_assert_eq!(join(a, b), join(b, a), "commutative");
    prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)), "associative");
    prop_assert_eq!(&join(a, a), a, "idempotent");
    prop_assert_eq!(join(&join(a, b), b), join(a, b), "idempotent after a join");
    let all = join(&join(a, b), c);

    let mut one_by_one = C::default();
    for delta in deltas.iter().rev() {
        one_by_one.merge_delta(delta);
    }
    prop_assert_eq!(&one_by_one, &all, "deltas merged in reverse order");

    let mut batch = C::Delta::default();
    for delta in deltas.iter().rev() {
        C::join_deltas(&mut batch, delta);
    }
    let mut via_batch = C::default();
    via_batch.merge_delta(&batch);
    prop_assert_eq!(&via_batch, &all, "one joined delta");
    prop_assert_eq!(via_batch.value(), all.value());
    round_trips(&all)?;
    round_trips(&batch)?;
    Ok(())
}

#[derive(Clone, Debug)]
enum CounterOp {
    Up(u64),
    Down(u64),
}

#[derive(Clone, Debug)]
enum SetOp {
    Add(u8),
    Remove(u8),
    Clear,
}

#[derive(Clone, Debug)]
enum MapOp {
    Update(u8, SetOp),
    Remove(u8),
}

fn set_op() -> impl Strategy<Value = SetOp> {
    prop_oneof![
        4 => (0u8..6).prop_map(SetOp::Add),
        3 => (0u8..6).prop_map(SetOp::Remove),
        1 => Just(SetOp::Clear),
    ]
}

fn apply_set(set: &mut ORSet<u8>, r: ReplicaId, op: &SetOp) -> ORSet<u8> {
    match op {
        SetOp::Add(x) => set.add(r, *x),
        SetOp::Remove(x) => set.remove(x),
        SetOp::Clear => set.clear(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gcounter(history in steps(0u64..5)) {
        check_laws::<GCounter, u64>(&history, |c, r, n| c.increment(r, *n))?;
    }

    #[test]
    fn pncounter(history in steps(prop_oneof![
        (0u64..5).prop_map(CounterOp::Up),
        (0u64..5).prop_map(CounterOp::Down),
    ])) {
        check_laws::<PNCounter, CounterOp>(&history, |c, r, op| match op {
            CounterOp::Up(n) => c.increment(r, *n),
            CounterOp::Down(n) => c.decrement(r, *n),
        })?;
    }

    #[test]
    fn gset(history in steps(0u8..8)) {
        check_laws::<GSet<u8>, u8>(&history, |s, _, x| s.insert(*x))?;
    }

    #[test]
    fn orset(history in steps(set_op())) {
        check_laws::<ORSet<u8>, SetOp>(&history, apply_set)?;
    }

    #[test]
    fn lww_register(history in steps((0u8..4, 0u64..5))) {
        check_laws::<LWWRegister<u8>, (u8, u64)>(&history, |reg, r, (v, ts)| reg.set_at(r, *v, *ts))?;
    }

    #[test]
    fn mv_register(history in steps(0u8..4)) {
        check_laws::<MVRegister<u8>, u8>(&history, |reg, r, v| reg.set(r, *v))?;
    }

    #[test]
    fn ormap_of_orsets(history in steps(prop_oneof![
        4 => (0u8..4, set_op()).prop_map(|(k, op)| MapOp::Update(k, op)),
        1 => (0u8..4).prop_map(MapOp::Remove),
    ])) {
        check_laws::<ORMap<u8, ORSet<u8>>, MapOp>(&history, |map, r, op| match op {
            MapOp::Update(k, set_op) => map.update(r, *k, |s| apply_set(s, r, set_op)),
            MapOp::Remove(k) => map.remove(k),
        })?;
    }

    #[test]
    fn ormap_of_counters(history in steps(prop_oneof![
        3 => (0u8..4, 0u64..3).prop_map(|(k, n)| (k, Some(n))),
        1 => (0u8..4).prop_map(|k| (k, None)),
    ])) {
        check_laws::<ORMap<u8, GCounter>, (u8, Option<u64>)>(&history, |map, r, (k, n)| match n {
            Some(n) => map.update(r, *k, |c| c.increment(r, *n)),
            None => map.remove(k),
        })?;
    }
}

/// A concrete add-wins case, so a regression names itself.
#[test]
fn concurrent_add_beats_remove_in_both_orders() {
    let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
    let mut x = ORSet::default();
    x.add(a, 1u8);
    let mut y = x.clone();
    let removal = x.remove(&1);
    let addition = y.add(b, 1);
    let mut first = x.clone();
    first.merge_delta(&addition);
    let mut second = y.clone();
    second.merge_delta(&removal);
    assert!(first.contains(&1) && second.contains(&1));
    assert_eq!(first, second);
}

/// A remove that has seen the add wins over nothing: the element is gone everywhere.
#[test]
fn observed_remove_removes_everywhere() {
    let a = ReplicaId::new(1);
    let mut x = ORSet::default();
    let added = x.add(a, "k");
    let mut y = ORSet::default();
    y.merge_delta(&added);
    let removed = y.remove(&"k");
    x.merge_delta(&removed);
    assert!(x.is_empty() && y.is_empty());
    x.merge_delta(&added);
    assert!(
        x.is_empty(),
        "a late duplicate of the add does not resurrect it"
    );
}
