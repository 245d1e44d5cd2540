//! The crate's error type.

use std::fmt::Display;

/// Everything that can go wrong. `InvalidArgument` and `UnknownTaskType` are the caller's
/// mistakes (the original's `SchedulerException`, HTTP 400); the rest are failures (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field} {value}: {reason}")]
    InvalidArgument {
        field: String,
        value: String,
        reason: String,
    },
    #[error("unknown task type {0:?}")]
    UnknownTaskType(String),
    #[error("cannot connect to Redis at {}: {reason}", redacted(url))]
    Connection { url: String, reason: String },
    #[error("cannot reach the scheduler RPC server at {url}: {reason}")]
    RpcConnection { url: String, reason: String },
    #[error("Redis: {0}")]
    Redis(redis::RedisError),
    /// Redis did not answer in time: what was sent may have been applied, or not.
    #[error(
        "Redis did not answer in time ({0}): the call may have been applied, or not; read the \
         state again before retrying (create_tasks and the run updates are safe to repeat)"
    )]
    Timeout(redis::RedisError),
    #[error("Redis connection pool: {0}")]
    Pool(String),
    /// An error the RPC server answered with.
    #[error("{message}")]
    Remote {
        status: u16,
        kind: String,
        message: String,
    },
    /// A `grab_next_visits` policy that does not exist (the original's `UnknownPolicy`).
    #[error("Unknown scheduling policy {0}")]
    UnknownPolicy(String),
    /// The caller's copy of a record is older than the stored one (the original's `StaleData`).
    #[error("Stale data; {0}")]
    StaleData(String),
    #[error("unreadable record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{0}")]
    Other(String),
    /// The command line stops with this exit code, having said why.
    #[error("exit status {0}")]
    Exit(i32),
}

impl Error {
    /// A rejected argument: names the field and the value (quoted when it is text).
    pub fn invalid(field: &str, value: impl Display, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.to_string(),
            value: format!("{:?}", value.to_string()),
            reason: reason.into(),
        }
    }

    /// Whether this is the caller's mistake rather than a failure of the scheduler.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidArgument { .. }
                | Error::UnknownTaskType(_)
                | Error::StaleData(_)
                | Error::UnknownPolicy(_)
                | Error::Remote {
                    status: 400..=499,
                    ..
                }
        )
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if e.is_timeout() {
            Error::Timeout(e)
        } else {
            Error::Redis(e)
        }
    }
}

impl From<deadpool_redis::PoolError> for Error {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => e.into(),
            other => Error::Pool(other.to_string()),
        }
    }
}

/// A URL as it may be shown: its password, if any, replaced by `***`
/// (`redis://alice:***@host:6379/0`); each of a comma-separated list of URLs (a cluster's
/// seed nodes) likewise.
pub fn redacted(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redacted).collect::<Vec<_>>().join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{scheme}://{shown}@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("redis://alice:s3cret@h:6379/0"),
            "redis://alice:***@h:6379/0"
        );
        assert_eq!(redacted("redis://:s3cret@h/1"), "redis://:***@h/1");
        assert_eq!(
            redacted("redis://a:x@h1:7000,redis://a:y@h2:7000"),
            "redis://a:***@h1:7000,redis://a:***@h2:7000"
        );
        assert_eq!(
            redacted("rediss://h:6380/0#insecure"),
            "rediss://h:6380/0#insecure"
        );
        assert_eq!(redacted("http://u:p@h:5008/"), "http://u:***@h:5008/");
        assert_eq!(
            redacted("unix:///tmp/r.sock?db=2"),
            "unix:///tmp/r.sock?db=2"
        );
    }
}
