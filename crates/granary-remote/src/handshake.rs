//! The connection handshake: cluster name, protocol version, mutual challenge–response.
//!
//! Like an Erlang cookie, every node of a cluster knows one shared secret; it never
//! crosses the wire. Each side sends a random 32-byte nonce and proves knowledge of the
//! secret with an HMAC-SHA256 over both nonces, both node ids, the cluster name and its
//! role, so a proof cannot be replayed on another connection or reflected back:
//!
//! ```text
//! dialer  -> acceptor  Hello     { cluster, version, node, lane, nonce_d } + Offer { max }
//! acceptor -> dialer   Challenge { node, nonce_a, proof_a = HMAC(secret, "acceptor" ..) }
//!                                                          + Chosen { version }
//! dialer  -> acceptor  Response  { proof_d = HMAC(secret, "dialer" ..) }
//! acceptor -> dialer   Welcome                      (or Refused { reason } at any step)
//! ```
//!
//! Handshake frames are [`FrameKind::Handshake`] frames on the control channel with a
//! postcard body, read with a small frame limit so an unauthenticated peer cannot make the
//! node buffer a large frame.
//!
//! # Version negotiation
//!
//! Since protocol version 5 the Hello offers a range: its `version` field is the lowest
//! version the dialer speaks ([`MIN_PROTOCOL_VERSION`], 4) and an `Offer { max }` after
//! the step (postcard ignores trailing bytes, so a version-4 acceptor reads the Hello as
//! a plain version-4 one) says the highest. The acceptor picks the highest version both
//! speak and appends `Chosen { version }` to its Challenge (a version-4 dialer ignores
//! it too). A Hello without an offer is a version-`version` peer; a Challenge without a
//! choice comes from a version-4 acceptor. Only ranges that do not overlap are refused,
//! with [`HandshakeError::VersionMismatch`]. Both directions between two nodes pick the
//! same version (the highest both speak). The choice is not covered by the proofs: a
//! man in the middle who strips it can only make both sides speak version 4, which is
//! as authenticated as 5.

use std::time::Duration;

use bytes::BytesMut;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{FrameError, HandshakeError};
use crate::node_id::NodeId;
use crate::wire::{
    FrameDecoder, FrameHeader, FrameKind, CONTROL_CHANNEL, FRAME_VERSION, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};

/// Longest cluster or channel name a handshake carries (bytes).
pub(crate) const MAX_NAME: usize = 255;

/// Largest handshake frame accepted: a Hello with two names of [`MAX_NAME`] bytes, a node
/// id and a nonce fits with room to spare. This (plus one read) is all an unauthenticated
/// peer can make the node buffer per connection.
const HANDSHAKE_MAX_FRAME: u32 = 1024;

/// Which outbound connection of a peer this is: a channel name and an index in it, and
/// whether the acceptor should send on it too.
///
/// `reply_here` (since version 4) marks a peer that dials out only (an external client
/// with no listening socket): the acceptor writes its frames for that peer on the
/// connections the peer opened instead of dialling it. It is part of the transcript
/// both proofs cover, so it cannot be flipped on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lane {
    pub(crate) channel: String,
    pub(crate) index: u16,
    pub(crate) reply_here: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum Step {
    Hello {
        cluster: String,
        version: u8,
        node: NodeId,
        lane: Lane,
        nonce: [u8; 32],
    },
    Challenge {
        node: NodeId,
        nonce: [u8; 32],
        proof: Vec<u8>,
    },
    Response {
        proof: Vec<u8>,
    },
    Welcome,
    Refused {
        reason: String,
    },
}

/// The dialer's highest protocol version, after its Hello (since version 5).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Offer {
    max: u8,
}

/// The version the acceptor chose, after its Challenge (since version 5).
#[derive(Debug, Serialize, Deserialize)]
struct Chosen {
    version: u8,
}

/// What both sides need to run a handshake.
pub(crate) struct Params<'a> {
    pub(crate) cluster: &'a str,
    pub(crate) secret: &'a [u8],
    pub(crate) local: NodeId,
    pub(crate) timeout: Duration,
    /// The highest protocol version to offer or choose (`TransportConfig::max_protocol`).
    pub(crate) max_protocol: u8,
}

/// What a finished handshake agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The peer's node id.
    pub(crate) node: NodeId,
    /// The protocol version both sides speak on this connection.
    pub(crate) version: u8,
}

/// Run the dialer's side; returns the peer's node id and the version agreed, and any
/// bytes read past the handshake.
pub(crate) async fn dial<S>(
    stream: &mut S,
    p: &Params<'_>,
    lane: Lane,
) -> Result<(Agreed, BytesMut), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(p.timeout, dial_inner(stream, p, lane))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

async fn dial_inner<S>(
    stream: &mut S,
    p: &Params<'_>,
    lane: Lane,
) -> Result<(Agreed, BytesMut), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    let nonce_d = crate::random::nonce()?;
    let max = p.max_protocol.clamp(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
    write_step_with(
        stream,
        &Step::Hello {
            cluster: p.cluster.to_owned(),
            version: MIN_PROTOCOL_VERSION,
            node: p.local,
            lane: lane.clone(),
            nonce: nonce_d,
        },
        (max > MIN_PROTOCOL_VERSION).then_some(&Offer { max }),
    )
    .await?;
    let (step, chosen) = read_step_with::<_, Chosen>(stream, &mut buf).await?;
    let (acceptor, nonce_a, proof_a) = match step {
        Step::Challenge { node, nonce, proof } => (node, nonce, proof),
        Step::Refused { reason } => return Err(refused(reason)),
        other => return Err(unexpected("Challenge", &other)),
    };
    // No choice: a version-4 acceptor, which accepted our minimum.
    let version = chosen.map_or(MIN_PROTOCOL_VERSION, |c| c.version);
    if !(MIN_PROTOCOL_VERSION..=max).contains(&version) {
        return Err(HandshakeError::Protocol(format!(
            "acceptor chose protocol version {version}, outside the offered {MIN_PROTOCOL_VERSION}..={max}"
        )));
    }
    let t = Transcript {
        cluster: p.cluster,
        dialer: p.local,
        acceptor,
        nonce_d,
        nonce_a,
        lane: &lane,
    };
    if !t.verify(p.secret, b"acceptor", &proof_a) {
        let reason = "acceptor failed the shared-secret challenge".to_owned();
        let _ = write_step(
            stream,
            &Step::Refused {
                reason: reason.clone(),
            },
        )
        .await;
        return Err(HandshakeError::Unauthorized(reason));
    }
    let proof = t.prove(p.secret, b"dialer");
    write_step(stream, &Step::Response { proof }).await?;
    match read_step(stream, &mut buf).await? {
        Step::Welcome => Ok((
            Agreed {
                node: acceptor,
                version,
            },
            buf,
        )),
        Step::Refused { reason } => Err(refused(reason)),
        other => Err(unexpected("Welcome", &other)),
    }
}

/// Run the acceptor's side; returns the dialer's node id and the version agreed, its
/// lane and any extra bytes.
pub(crate) async fn accept<S>(
    stream: &mut S,
    p: &Params<'_>,
) -> Result<(Agreed, Lane, BytesMut), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(p.timeout, accept_inner(stream, p))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

async fn accept_inner<S>(
    stream: &mut S,
    p: &Params<'_>,
) -> Result<(Agreed, Lane, BytesMut), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    let ours = p.max_protocol.clamp(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
    let hello = match read_step_with::<_, Offer>(stream, &mut buf).await {
        // A Hello of another protocol version: say so (in our version, which that
        // dialler refuses as a version mismatch too) rather than only closing.
        Err(err @ HandshakeError::VersionMismatch { .. }) => {
            let reason = err.to_string();
            let _ = write_step(stream, &Step::Refused { reason }).await;
            return Err(err);
        }
        other => other?,
    };
    let (hello, offer) = hello;
    let (dialer, lane, nonce_d, agreed) = match hello {
        Step::Hello {
            cluster,
            version,
            node,
            lane,
            nonce,
        } => {
            if cluster != p.cluster {
                let err = HandshakeError::ClusterMismatch {
                    ours: p.cluster.to_owned(),
                    theirs: cluster,
                };
                let _ = write_step(
                    stream,
                    &Step::Refused {
                        reason: err.to_string(),
                    },
                )
                .await;
                return Err(err);
            }
            // The dialer speaks `version..=max`; we speak MIN..=ours.
            let theirs_max = offer.map_or(version, |o| o.max.max(version));
            let agreed = ours.min(theirs_max);
            if agreed < version.max(MIN_PROTOCOL_VERSION) {
                let err = HandshakeError::VersionMismatch {
                    ours,
                    theirs: if version > ours { version } else { theirs_max },
                };
                let _ = write_step(
                    stream,
                    &Step::Refused {
                        reason: err.to_string(),
                    },
                )
                .await;
                return Err(err);
            }
            (node, lane, nonce, agreed)
        }
        other => return Err(unexpected("Hello", &other)),
    };
    let nonce_a = crate::random::nonce()?;
    let t = Transcript {
        cluster: p.cluster,
        dialer,
        acceptor: p.local,
        nonce_d,
        nonce_a,
        lane: &lane,
    };
    let proof = t.prove(p.secret, b"acceptor");
    write_step_with(
        stream,
        &Step::Challenge {
            node: p.local,
            nonce: nonce_a,
            proof,
        },
        // A version-4 dialer gets no choice (it ignores one, but 4 is all it speaks).
        (offer.is_some()).then_some(&Chosen { version: agreed }),
    )
    .await?;
    match read_step(stream, &mut buf).await? {
        Step::Response { proof } if t.verify(p.secret, b"dialer", &proof) => {
            write_step(stream, &Step::Welcome).await?;
            Ok((
                Agreed {
                    node: dialer,
                    version: agreed,
                },
                lane,
                buf,
            ))
        }
        Step::Response { .. } => {
            let reason = format!("{dialer} failed the shared-secret challenge");
            let _ = write_step(
                stream,
                &Step::Refused {
                    reason: reason.clone(),
                },
            )
            .await;
            Err(HandshakeError::Unauthorized(reason))
        }
        Step::Refused { reason } => Err(refused(reason)),
        other => Err(unexpected("Response", &other)),
    }
}

/// Everything a proof binds to.
struct Transcript<'a> {
    cluster: &'a str,
    dialer: NodeId,
    acceptor: NodeId,
    nonce_d: [u8; 32],
    nonce_a: [u8; 32],
    lane: &'a Lane,
}

impl Transcript<'_> {
    fn mac(&self, secret: &[u8], role: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for part in [
            role,
            self.cluster.as_bytes(),
            &postcard::to_allocvec(&(self.dialer, self.acceptor, self.lane)).unwrap_or_default(),
            &self.nonce_d,
            &self.nonce_a,
        ] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }

    fn prove(&self, secret: &[u8], role: &[u8]) -> Vec<u8> {
        self.mac(secret, role).finalize().into_bytes().to_vec()
    }

    fn verify(&self, secret: &[u8], role: &[u8], proof: &[u8]) -> bool {
        // Constant-time comparison.
        self.mac(secret, role).verify_slice(proof).is_ok()
    }
}

fn refused(reason: String) -> HandshakeError {
    HandshakeError::Unauthorized(format!("refused by peer: {reason}"))
}

fn unexpected(wanted: &str, got: &Step) -> HandshakeError {
    let got = match got {
        Step::Hello { .. } => "Hello",
        Step::Challenge { .. } => "Challenge",
        Step::Response { .. } => "Response",
        Step::Welcome => "Welcome",
        Step::Refused { .. } => "Refused",
    };
    HandshakeError::Protocol(format!("expected {wanted}, got {got}"))
}

async fn write_step<S: AsyncWrite + Unpin>(
    stream: &mut S,
    step: &Step,
) -> Result<(), HandshakeError> {
    write_step_with::<_, Offer>(stream, step, None).await
}

/// Write `step` with `extension` appended to its body (an [`Offer`] or a [`Chosen`]).
async fn write_step_with<S: AsyncWrite + Unpin, E: Serialize>(
    stream: &mut S,
    step: &Step,
    extension: Option<&E>,
) -> Result<(), HandshakeError> {
    let mut body =
        postcard::to_allocvec(step).map_err(|e| HandshakeError::Protocol(e.to_string()))?;
    if let Some(extension) = extension {
        body = postcard::to_extend(extension, body)
            .map_err(|e| HandshakeError::Protocol(e.to_string()))?;
    }
    let header = FrameHeader {
        kind: FrameKind::Handshake,
        channel: CONTROL_CHANNEL,
        type_tag: 0,
        correlation: 0,
        sender: "",
        recipient: "",
        trace: None,
    };
    let frame = header
        .encode_with_body(&body, HANDSHAKE_MAX_FRAME)
        .map_err(|e| HandshakeError::Protocol(e.to_string()))?;
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

async fn read_step<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Step, HandshakeError> {
    read_step_with::<_, Offer>(stream, buf)
        .await
        .map(|(step, _)| step)
}

/// Read a step and the extension after it, if there is one. Bytes after the step that
/// are not a valid extension are a protocol error.
async fn read_step_with<S: AsyncRead + Unpin, E: serde::de::DeserializeOwned>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<(Step, Option<E>), HandshakeError> {
    let decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
    loop {
        match decoder.decode(buf) {
            Ok(Some(frame)) if frame.kind == FrameKind::Handshake => {
                let bad = |e: postcard::Error| {
                    HandshakeError::Protocol(format!("bad handshake body: {e}"))
                };
                let (step, rest) = postcard::take_from_bytes::<Step>(&frame.body).map_err(bad)?;
                let extension = if rest.is_empty() {
                    None
                } else {
                    Some(postcard::from_bytes::<E>(rest).map_err(bad)?)
                };
                return Ok((step, extension));
            }
            Ok(Some(frame)) => {
                return Err(HandshakeError::Protocol(format!(
                    "{:?} frame before the handshake finished",
                    frame.kind
                )))
            }
            Ok(None) => {}
            Err(FrameError::UnsupportedVersion(theirs)) => {
                return Err(HandshakeError::VersionMismatch {
                    ours: FRAME_VERSION,
                    theirs,
                })
            }
            Err(e) => return Err(HandshakeError::Protocol(e.to_string())),
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Protocol(
                "connection closed during the handshake".into(),
            ));
        }
    }
}

/// A complete Hello frame for `cluster`, as a dialer sends it (no frame size limit, so
/// tests and fuzz seeds can build oversized ones).
pub(crate) fn hello_frame(cluster: &str) -> Vec<u8> {
    hello_frame_of(cluster, MIN_PROTOCOL_VERSION, None)
}

/// A Hello frame whose `version` field is `version`, with an offer of `max` when given.
fn hello_frame_of(cluster: &str, version: u8, max: Option<u8>) -> Vec<u8> {
    let step = Step::Hello {
        cluster: cluster.to_owned(),
        version,
        node: NodeId::new(([127, 0, 0, 1], 1).into()),
        lane: Lane {
            channel: "control".into(),
            index: 0,
            reply_here: false,
        },
        nonce: [7; 32],
    };
    let mut body = postcard::to_allocvec(&step).unwrap_or_default();
    if let Some(max) = max {
        body = postcard::to_extend(&Offer { max }, body).unwrap_or_default();
    }
    let header = FrameHeader {
        kind: FrameKind::Handshake,
        channel: CONTROL_CHANNEL,
        type_tag: 0,
        correlation: 0,
        sender: "",
        recipient: "",
        trace: None,
    };
    header
        .encode_with_body(&body, u32::MAX)
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// Run one side of the handshake against `input`, everything the other side sends, with
/// its writes discarded: the fuzz targets' entry (see `crate::__fuzz`). Reading a byte
/// slice never waits, so a single poll runs it to the end.
pub(crate) fn run_against(input: &[u8], dialer: bool) -> Result<(), HandshakeError> {
    use futures::FutureExt;
    let mut stream = tokio::io::join(input, tokio::io::sink());
    let p = Params {
        cluster: "fuzz",
        secret: b"fuzz",
        local: NodeId::new(([127, 0, 0, 1], 1).into()),
        timeout: Duration::from_secs(1),
        max_protocol: PROTOCOL_VERSION,
    };
    let lane = Lane {
        channel: "data".into(),
        index: 0,
        reply_here: false,
    };
    let outcome = if dialer {
        dial_inner(&mut stream, &p, lane)
            .now_or_never()
            .map(|r| r.map(drop))
    } else {
        accept_inner(&mut stream, &p)
            .now_or_never()
            .map(|r| r.map(drop))
    };
    outcome.unwrap_or(Err(HandshakeError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(cluster: &'a str, secret: &'a [u8], port: u16) -> Params<'a> {
        Params {
            cluster,
            secret,
            local: NodeId::new(([127, 0, 0, 1], port).into()),
            timeout: Duration::from_secs(5),
            max_protocol: PROTOCOL_VERSION,
        }
    }

    fn lane() -> Lane {
        Lane {
            channel: "data".into(),
            index: 0,
            reply_here: false,
        }
    }

    async fn run(
        dialer: Params<'_>,
        acceptor: Params<'_>,
    ) -> (
        Result<(Agreed, BytesMut), HandshakeError>,
        Result<(Agreed, Lane, BytesMut), HandshakeError>,
    ) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        tokio::join!(dial(&mut a, &dialer, lane()), accept(&mut b, &acceptor))
    }

    #[tokio::test]
    async fn same_secret_and_cluster_authenticate_both_sides() {
        let d = params("c", b"secret", 1);
        let a = params("c", b"secret", 2);
        let (dn, an) = (d.local, a.local);
        let (dr, ar) = run(d, a).await;
        assert_eq!(
            dr.unwrap().0,
            Agreed {
                node: an,
                version: PROTOCOL_VERSION
            }
        );
        let (agreed, l, _) = ar.unwrap();
        assert_eq!(
            (agreed.node, agreed.version, l),
            (dn, PROTOCOL_VERSION, lane())
        );
    }

    #[tokio::test]
    async fn a_version_4_side_and_a_version_5_side_agree_on_4_either_way_round() {
        for (dialer_max, acceptor_max) in [(4, PROTOCOL_VERSION), (PROTOCOL_VERSION, 4)] {
            let mut d = params("c", b"secret", 1);
            d.max_protocol = dialer_max;
            let mut a = params("c", b"secret", 2);
            a.max_protocol = acceptor_max;
            let (dr, ar) = run(d, a).await;
            assert_eq!(dr.unwrap().0.version, 4, "{dialer_max} -> {acceptor_max}");
            assert_eq!(ar.unwrap().0.version, 4, "{dialer_max} -> {acceptor_max}");
        }
    }

    /// What today's build (protocol version 4, before negotiation) sends: a Hello with
    /// `version: 4` and nothing after it. It is accepted, at version 4, and the Challenge
    /// it gets carries no choice (which it would ignore anyway).
    #[tokio::test]
    async fn a_hand_built_version_4_hello_is_accepted_at_version_4() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let hello = hello_frame_of("c", 4, None);
        assert_eq!(hello[4], 4);
        a.write_all(&hello).await.unwrap();
        let accepting =
            tokio::spawn(
                async move { accept(&mut b, &params("c", b"s", 2)).await.map(|(a, ..)| a) },
            );
        let mut buf = BytesMut::new();
        let (step, chosen) = read_step_with::<_, Chosen>(&mut a, &mut buf).await.unwrap();
        assert!(matches!(step, Step::Challenge { .. }), "{step:?}");
        assert!(chosen.is_none(), "a version-4 dialer is sent no choice");
        drop(a);
        // The rest of the handshake needs the secret-bound proof; the version it would
        // agree on is decided by now: a refused Response is the only way on.
        assert!(accepting.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_hello_offering_only_a_future_version_is_refused_with_a_version_mismatch() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&hello_frame_of("c", 9, Some(9))).await.unwrap();
        let r = accept(&mut b, &params("c", b"s", 2)).await;
        assert!(
            matches!(
                r,
                Err(HandshakeError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: 9
                })
            ),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn a_hello_of_version_3_without_an_offer_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&hello_frame_of("c", 3, None)).await.unwrap();
        let r = accept(&mut b, &params("c", b"s", 2)).await;
        assert!(
            matches!(r, Err(HandshakeError::VersionMismatch { theirs: 3, .. })),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn a_hello_offering_4_to_9_agrees_on_ours() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&hello_frame_of("c", 4, Some(9))).await.unwrap();
        let accepting =
            tokio::spawn(async move { accept(&mut b, &params("c", b"s", 2)).await.map(drop) });
        let mut buf = BytesMut::new();
        let (_, chosen) = read_step_with::<_, Chosen>(&mut a, &mut buf).await.unwrap();
        assert_eq!(chosen.unwrap().version, PROTOCOL_VERSION);
        drop(a);
        let _ = accepting.await;
    }

    #[tokio::test]
    async fn wrong_secret_is_unauthorized_on_both_sides() {
        let (dr, ar) = run(params("c", b"wrong", 1), params("c", b"secret", 2)).await;
        assert!(matches!(dr, Err(HandshakeError::Unauthorized(_))), "{dr:?}");
        assert!(ar.is_err());
    }

    #[tokio::test]
    async fn other_cluster_is_refused() {
        let (dr, ar) = run(params("c1", b"s", 1), params("c2", b"s", 2)).await;
        assert!(matches!(ar, Err(HandshakeError::ClusterMismatch { .. })));
        assert!(matches!(dr, Err(HandshakeError::Unauthorized(_))));
    }

    #[tokio::test]
    async fn a_hello_of_another_version_is_refused_with_a_version_mismatch_both_ways() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let mut hello = hello_frame("c");
        hello[4] = FRAME_VERSION - 1; // the version byte of a version-3 peer
        a.write_all(&hello).await.unwrap();
        let r = accept(&mut b, &params("c", b"s", 2)).await;
        assert!(
            matches!(r, Err(HandshakeError::VersionMismatch { theirs, .. }) if theirs == FRAME_VERSION - 1),
            "{r:?}"
        );
        // The dialler gets a Refused frame saying why, in our version: an older
        // dialler's decoder refuses that version byte, a mismatch to it too.
        let mut buf = BytesMut::new();
        a.read_buf(&mut buf).await.unwrap();
        assert_eq!(buf[4], FRAME_VERSION);
        match read_step(&mut a, &mut buf).await {
            Ok(Step::Refused { reason }) => assert!(reason.contains("version"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_instead_of_hello_is_a_protocol_error() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(&[0xff; 64]).await.unwrap();
        let r = accept(&mut b, &params("c", b"s", 2)).await;
        assert!(matches!(r, Err(HandshakeError::Protocol(_))), "{r:?}");
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        let (_a, mut b) = tokio::io::duplex(4096);
        let mut p = params("c", b"s", 2);
        p.timeout = Duration::from_millis(50);
        assert!(matches!(
            accept(&mut b, &p).await,
            Err(HandshakeError::Timeout)
        ));
    }
}
