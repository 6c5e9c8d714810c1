use std::time::Duration;

use granary_remote::{PeerEvent, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use super::support::*;

/// A CA and a function issuing node certificates for 127.0.0.1 from it.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn node(&self) -> TlsConfig {
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        TlsConfig {
            ca_pem: self.cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            server_name: None,
        }
    }
}

#[tokio::test]
async fn tls_nodes_with_certificates_from_the_cluster_ca_exchange_frames() {
    let ca = Ca::new("granary test CA");
    let (b, mut rx) = collecting(config().with_tls(ca.node())).await;
    let a = discard(config().with_tls(ca.node())).await;
    send(&a, b.local_addr(), "r", b"over tls");
    let (from, frame) = recv(&mut rx).await;
    assert_eq!((from, &frame.body[..]), (a.node_id(), &b"over tls"[..]));
    // A large frame moves the pair to the bulk lane, dialled with the same TLS; the
    // barrier's ack comes back over TLS too, and the pair's order holds.
    let big = vec![7u8; 200_000];
    send(&a, b.local_addr(), "r", &big);
    send(&a, b.local_addr(), "r", b"after");
    assert_eq!(recv(&mut rx).await.1.body.len(), big.len());
    assert_eq!(&recv(&mut rx).await.1.body[..], b"after");
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn peer_with_a_certificate_from_another_ca_cannot_deliver() {
    let ca = Ca::new("granary test CA");
    let rogue_ca = Ca::new("rogue CA");
    let (b, mut rx) = collecting(config().with_tls(ca.node())).await;
    let mut b_events = b.subscribe();
    // The rogue trusts the real CA (so it would accept B) but holds a foreign certificate.
    let mut rogue_tls = rogue_ca.node();
    rogue_tls.ca_pem = ca.cert.pem();
    let rogue = discard(config().with_tls(rogue_tls)).await;
    let mut rogue_events = rogue.subscribe();
    send(&rogue, b.local_addr(), "r", b"must not arrive");
    event(&mut b_events, "refused", |e| {
        matches!(e, PeerEvent::Refused { .. })
    })
    .await;
    // The dialling side learns it was refused (reported as `Unauthorized` to senders),
    // not just that the peer is unreachable.
    event(&mut rogue_events, "refused", |e| {
        matches!(e, PeerEvent::Refused { inbound: false, reason, .. } if reason.contains("TLS"))
    })
    .await;
    event(&mut rogue_events, "unreachable", |e| {
        matches!(e, PeerEvent::Unreachable { .. })
    })
    .await;
    assert_silent(&mut rx, Duration::from_millis(100)).await;
    rogue.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn plain_tcp_peer_cannot_deliver_to_a_tls_node() {
    let ca = Ca::new("granary test CA");
    let (b, mut rx) = collecting(config().with_tls(ca.node())).await;
    let mut b_events = b.subscribe();
    let plain = discard(config()).await;
    let mut plain_events = plain.subscribe();
    send(&plain, b.local_addr(), "r", b"must not arrive");
    event(&mut b_events, "refused", |e| {
        matches!(e, PeerEvent::Refused { .. })
    })
    .await;
    event(&mut plain_events, "refused", |e| {
        matches!(e, PeerEvent::Refused { inbound: false, .. })
    })
    .await;
    event(&mut plain_events, "unreachable", |e| {
        matches!(e, PeerEvent::Unreachable { .. })
    })
    .await;
    assert_silent(&mut rx, Duration::from_millis(100)).await;
    plain.shutdown();
    b.shutdown();
}
