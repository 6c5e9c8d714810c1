//! The name registry, lookup by id, and the typed event stream.

mod common;

use common::within;
use granary_core::prelude::*;
use granary_core::RegistryError;

struct Named;
impl Actor for Named {}
struct Other;
impl Actor for Other {}

#[tokio::test]
async fn a_registered_name_resolves_to_a_typed_ref_until_the_actor_stops() {
    let system = ActorSystem::new();
    let a = system.spawn(Named);
    system.register("svc", &a).unwrap();
    assert_eq!(system.lookup::<Named>("svc"), Some(a.clone()));
    assert_eq!(system.lookup::<Other>("svc"), None, "wrong type");
    assert_eq!(system.lookup::<Named>("nope"), None);
    let b = system.spawn(Named);
    assert_eq!(
        system.register("svc", &b),
        Err(RegistryError::NameTaken("svc".into()))
    );
    a.stop();
    within(a.wait_stopped()).await;
    assert_eq!(system.lookup::<Named>("svc"), None, "name dropped on stop");
    system.register("svc", &b).unwrap();
    assert_eq!(system.unregister("svc"), Some(b.id()));
    assert_eq!(
        system.register("late", &a),
        Err(RegistryError::NotAlive(a.id()))
    );
    within(system.shutdown()).await;
}

#[tokio::test]
async fn actor_ref_by_id_finds_live_local_actors_of_the_right_type() {
    let system = ActorSystem::new();
    let a = system.spawn(Named);
    assert_eq!(system.actor_ref_by_id::<Named>(a.id()), Some(a.clone()));
    assert_eq!(system.actor_ref_by_id::<Other>(a.id()), None);
    a.stop();
    within(a.wait_stopped()).await;
    assert_eq!(system.actor_ref_by_id::<Named>(a.id()), None);
    within(system.shutdown()).await;
}

#[derive(Clone, Debug, PartialEq)]
struct Temperature(i32);

#[tokio::test]
async fn every_subscriber_receives_each_published_event_of_its_type() {
    let system = ActorSystem::new();
    let mut s1 = system.events().subscribe::<Temperature>();
    let mut s2 = system.events().subscribe::<Temperature>();
    let mut other = system.events().subscribe::<String>();
    assert_eq!(system.events().publish(Temperature(21)), 2);
    assert_eq!(within(s1.recv()).await.unwrap(), Temperature(21));
    assert_eq!(within(s2.recv()).await.unwrap(), Temperature(21));
    assert!(other.try_recv().is_none());
}

struct Collector {
    out: tokio::sync::mpsc::UnboundedSender<Temperature>,
}
impl Actor for Collector {}
impl Message for Temperature {
    type Reply = ();
}
impl Handler<Temperature> for Collector {
    async fn handle(&mut self, msg: Temperature, _ctx: &mut Context<Self>) {
        let _ = self.out.send(msg);
    }
}

#[tokio::test]
async fn an_actor_subscribed_to_the_event_stream_receives_events_as_messages() {
    let system = ActorSystem::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let c = system.spawn(Collector { out: tx });
    system
        .events()
        .subscribe_recipient(c.recipient::<Temperature>());
    system.events().publish(Temperature(5));
    assert_eq!(within(rx.recv()).await.unwrap(), Temperature(5));
    within(system.shutdown()).await;
}

#[tokio::test]
async fn a_tell_to_a_stopped_actor_is_published_as_an_actor_stopped_dead_letter() {
    let system = ActorSystem::new();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let c = system.spawn(Collector {
        out: tokio::sync::mpsc::unbounded_channel().0,
    });
    c.stop();
    within(c.wait_stopped()).await;
    assert!(c.tell(Temperature(1)).is_err());
    let letter = within(dead.recv()).await.unwrap();
    assert_eq!(
        letter,
        DeadLetter {
            recipient: c.id(),
            message_type: std::any::type_name::<Temperature>(),
            reason: DeadLetterReason::ActorStopped,
        }
    );
    within(system.shutdown()).await;
}
