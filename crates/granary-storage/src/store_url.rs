//! Parsing a store URL into the provider it names, with errors that name the bad part.

use std::path::PathBuf;

use crate::{StorageError, UrlPart};

/// A store URL, checked, split by provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// `memory:`
    Memory,
    /// `file:/path/to/db`, `file:///path`, `file:relative/path`
    File(PathBuf),
    /// `postgres://` or `postgresql://`
    #[cfg(feature = "postgres")]
    Postgres(url::Url),
    /// `redis://`
    #[cfg(feature = "redis")]
    Redis(url::Url),
}

impl StoreUrl {
    /// Parses `text`; every error names the part of the URL that is wrong.
    pub(crate) fn parse(text: &str) -> Result<StoreUrl, StorageError> {
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(StorageError::url(
                UrlPart::Scheme,
                format!(
                    "{text:?} has no scheme; use memory:, file:PATH, postgres://… or redis://…"
                ),
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" => {
                if rest.is_empty() {
                    Ok(StoreUrl::Memory)
                } else {
                    Err(StorageError::url(
                        UrlPart::Path,
                        format!("memory: takes no path, got {rest:?}"),
                    ))
                }
            }
            "file" => parse_file(rest).map(StoreUrl::File),
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => parse_network(text, 5432).map(StoreUrl::Postgres),
            #[cfg(not(feature = "postgres"))]
            "postgres" | "postgresql" => Err(StorageError::url(
                UrlPart::Scheme,
                "postgres:// needs granary-storage built with the `postgres` feature",
            )),
            #[cfg(not(feature = "redis"))]
            "redis" => Err(StorageError::url(
                UrlPart::Scheme,
                "redis:// needs granary-storage built with the `redis` feature",
            )),
            #[cfg(feature = "redis")]
            "redis" => {
                let url = parse_network(text, 6379)?;
                let db = url.path().trim_start_matches('/');
                if !db.is_empty() && db.parse::<u32>().is_err() {
                    return Err(StorageError::url(
                        UrlPart::Path,
                        format!("the Redis database must be a number, got {db:?}"),
                    ));
                }
                if let Some((key, _)) = url.query_pairs().next() {
                    return Err(StorageError::url(
                        UrlPart::Query,
                        format!("unsupported Redis URL parameter {key:?}"),
                    ));
                }
                Ok(StoreUrl::Redis(url))
            }
            other => Err(StorageError::url(
                UrlPart::Scheme,
                format!("unknown scheme {other:?}; use memory:, file:, postgres:// or redis://"),
            )),
        }
    }
}

/// `file:` paths are taken literally (no percent-decoding); `//` introduces an empty
/// or `localhost` authority as in `file:///var/db`.
fn parse_file(rest: &str) -> Result<PathBuf, StorageError> {
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let slash = after.find('/').unwrap_or(after.len());
            let (host, path) = after.split_at(slash);
            if !host.is_empty() && host != "localhost" {
                return Err(StorageError::url(
                    UrlPart::Host,
                    format!("file: URLs name a local file; host {host:?} is not allowed"),
                ));
            }
            path
        }
        None => rest,
    };
    if path.contains('?') || path.contains('#') {
        return Err(StorageError::url(
            UrlPart::Query,
            "file: URLs take no query or fragment",
        ));
    }
    if path.is_empty() {
        return Err(StorageError::url(
            UrlPart::Path,
            "file: needs the database file's path, as in file:/var/lib/granary/state.db",
        ));
    }
    Ok(PathBuf::from(path))
}

/// Parses a `scheme://user:pass@host:port/path` URL and requires a host.
#[cfg(any(feature = "postgres", feature = "redis"))]
fn parse_network(text: &str, default_port: u16) -> Result<url::Url, StorageError> {
    let url = url::Url::parse(text).map_err(|e| {
        use url::ParseError as P;
        let part = match e {
            P::InvalidPort => UrlPart::Port,
            P::EmptyHost
            | P::IdnaError
            | P::InvalidIpv4Address
            | P::InvalidIpv6Address
            | P::InvalidDomainCharacter => UrlPart::Host,
            _ => UrlPart::Scheme,
        };
        StorageError::url(part, format!("{e} in {text:?}"))
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(StorageError::url(
            UrlPart::Host,
            format!(
                "{text:?} names no host, as in {}://127.0.0.1:{default_port}/…",
                url.scheme()
            ),
        ));
    }
    if url.port() == Some(0) {
        return Err(StorageError::url(
            UrlPart::Port,
            "port 0 cannot be connected to",
        ));
    }
    if url.fragment().is_some() {
        return Err(StorageError::url(
            UrlPart::Query,
            "fragments (#…) are not allowed",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(text: &str) -> UrlPart {
        match StoreUrl::parse(text) {
            Err(StorageError::InvalidUrl { part, .. }) => part,
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn accepts_every_provider_form() {
        assert_eq!(StoreUrl::parse("memory:").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("file:/tmp/x.db").unwrap(),
            StoreUrl::File("/tmp/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("file:///tmp/x.db").unwrap(),
            StoreUrl::File("/tmp/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("file:data/x.db").unwrap(),
            StoreUrl::File("data/x.db".into())
        );
        #[cfg(feature = "postgres")]
        assert!(matches!(
            StoreUrl::parse("postgres://postgres@127.0.0.1:5432/test").unwrap(),
            StoreUrl::Postgres(_)
        ));
        #[cfg(feature = "redis")]
        assert!(matches!(
            StoreUrl::parse("redis://127.0.0.1:6379/2").unwrap(),
            StoreUrl::Redis(_)
        ));
    }

    #[cfg(not(all(feature = "postgres", feature = "redis")))]
    fn assert_needs_feature(text: &str) {
        match StoreUrl::parse(text) {
            Err(StorageError::InvalidUrl { part, reason }) => {
                assert_eq!(part, UrlPart::Scheme);
                assert!(reason.contains("feature"), "{reason}");
            }
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    #[test]
    #[cfg(not(feature = "postgres"))]
    fn postgres_urls_name_the_missing_feature() {
        assert_needs_feature("postgres://127.0.0.1/test");
    }

    #[test]
    #[cfg(not(feature = "redis"))]
    fn redis_urls_name_the_missing_feature() {
        assert_needs_feature("redis://127.0.0.1:6379/0");
    }

    #[test]
    fn malformed_urls_name_the_wrong_part() {
        assert_eq!(part(""), UrlPart::Scheme);
        assert_eq!(part("mysql://127.0.0.1/db"), UrlPart::Scheme);
        assert_eq!(part("memory:extra"), UrlPart::Path);
        assert_eq!(part("file:"), UrlPart::Path);
        assert_eq!(part("file://example.com/x.db"), UrlPart::Host);
        assert_eq!(part("file:/x.db?mode=ro"), UrlPart::Query);
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn malformed_postgres_urls_name_the_wrong_part() {
        assert_eq!(part("postgres://127.0.0.1:99999/test"), UrlPart::Port);
        assert_eq!(part("postgres://127.0.0.1:0/test"), UrlPart::Port);
        assert_eq!(part("postgres:///test"), UrlPart::Host);
        assert_eq!(part("postgres://[::1/test"), UrlPart::Host);
    }

    #[test]
    #[cfg(feature = "redis")]
    fn malformed_redis_urls_name_the_wrong_part() {
        assert_eq!(part("redis://127.0.0.1:6379/abc"), UrlPart::Path);
        assert_eq!(part("redis://127.0.0.1:6379/0?tls=1"), UrlPart::Query);
    }
}
