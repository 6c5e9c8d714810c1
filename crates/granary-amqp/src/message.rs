//! What one broker message means: its `type` property says the kind, `reply_to` names
//! the sender's queue and `correlation_id` the connection (`docs/overlays.md`,
//! "Publish-subscribe").

use lapin::types::ShortString;
use lapin::BasicProperties;

/// The kinds of message on a node's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The dialler opens connection `correlation_id`.
    Open,
    /// Bytes of a connection, dialler to acceptor.
    ToAcceptor,
    /// Bytes of a connection, acceptor to dialler.
    ToDialler,
    /// The dialler closed the connection.
    CloseToAcceptor,
    /// The acceptor closed (or refused) the connection.
    CloseToDialler,
    /// A member names itself (body: its address); on the membership exchange, or
    /// straight to a node that asked.
    Announce,
    /// A starting node asks the members to announce themselves to it.
    Discover,
    /// A member left (body: its address).
    Leave,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Open,
        Kind::ToAcceptor,
        Kind::ToDialler,
        Kind::CloseToAcceptor,
        Kind::CloseToDialler,
        Kind::Announce,
        Kind::Discover,
        Kind::Leave,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Open => "open",
            Kind::ToAcceptor => "to-acceptor",
            Kind::ToDialler => "to-dialler",
            Kind::CloseToAcceptor => "close-to-acceptor",
            Kind::CloseToDialler => "close-to-dialler",
            Kind::Announce => "announce",
            Kind::Discover => "discover",
            Kind::Leave => "leave",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The properties of a message of `kind` from the queue `sender` about `connection`.
pub(crate) fn properties(kind: Kind, sender: &str, connection: u64) -> BasicProperties {
    BasicProperties::default()
        .with_type(ShortString::from(kind.name()))
        .with_reply_to(ShortString::from(sender))
        .with_correlation_id(ShortString::from(connection.to_string()))
}

/// A message's header as read back: `None` when a property is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub(crate) kind: Kind,
    pub(crate) sender: &'a str,
    pub(crate) connection: u64,
}

pub(crate) fn header(properties: &BasicProperties) -> Option<Header<'_>> {
    let kind = Kind::parse(properties.kind().as_ref()?.as_str())?;
    let sender = properties.reply_to().as_ref()?.as_str();
    let connection = properties
        .correlation_id()
        .as_ref()?
        .as_str()
        .parse()
        .ok()?;
    Some(Header {
        kind,
        sender,
        connection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_and_malformed_ones_are_none() {
        for kind in Kind::ALL {
            let props = properties(kind, "granary.c.node.127.0.0.1:1", 42);
            let h = header(&props).unwrap();
            assert_eq!(
                (h.kind, h.sender, h.connection),
                (kind, "granary.c.node.127.0.0.1:1", 42)
            );
        }
        let bad = BasicProperties::default().with_type(ShortString::from("nope"));
        assert!(header(&bad).is_none());
        let no_id = BasicProperties::default()
            .with_type(ShortString::from("open"))
            .with_reply_to(ShortString::from("q"))
            .with_correlation_id(ShortString::from("x"));
        assert!(header(&no_id).is_none());
    }
}
