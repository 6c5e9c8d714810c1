//! Durable reminders: the rows a reminder service scans for due work.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Identity, StorageError};

/// One durable reminder: "wake `identity` with `name` at `due`, then every `period`".
///
/// A reminder is keyed by `(identity, name)`: upserting the same pair replaces it.
/// `partition` is the owner partition (for example the hash-ring partition of the
/// identity), so each node lists only the reminders it owns. Times are stored with
/// millisecond precision; finer parts are dropped.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use granary_storage::{Identity, Reminder};
/// let r = Reminder::new(Identity::new("Counter", "a"), "tick", 7, UNIX_EPOCH + Duration::from_secs(60))
///     .with_period(Duration::from_secs(30));
/// assert_eq!(r.period, Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// The identity the reminder wakes.
    pub identity: Identity,
    /// The reminder's name, unique per identity.
    pub name: String,
    /// The owner partition the reminder is listed under.
    pub partition: u32,
    /// When it is next due.
    pub due: SystemTime,
    /// How often it repeats; `None` for a one-shot reminder.
    pub period: Option<Duration>,
}

impl Reminder {
    /// A one-shot reminder.
    pub fn new(
        identity: Identity,
        name: impl Into<String>,
        partition: u32,
        due: SystemTime,
    ) -> Self {
        Reminder {
            identity,
            name: name.into(),
            partition,
            due,
            period: None,
        }
    }

    /// The same reminder repeating every `period`.
    pub fn with_period(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// `due` as milliseconds since the Unix epoch, the form every provider stores.
    pub(crate) fn due_ms(&self) -> Result<i64, StorageError> {
        system_time_to_ms(self.due)
    }

    /// `period` in milliseconds.
    pub(crate) fn period_ms(&self) -> Result<Option<i64>, StorageError> {
        self.period
            .map(|p| {
                i64::try_from(p.as_millis()).map_err(|_| StorageError::InvalidInput {
                    what: "reminder period",
                    reason: format!("{p:?} is too long"),
                })
            })
            .transpose()
    }

    /// Rebuilds a reminder from stored columns.
    pub(crate) fn from_stored(
        identity: Identity,
        name: String,
        partition: i64,
        due_ms: i64,
        period_ms: Option<i64>,
    ) -> Result<Reminder, StorageError> {
        let partition = u32::try_from(partition).map_err(|_| {
            StorageError::corrupt(format!("reminder partition {partition} out of range"))
        })?;
        let due = ms_to_system_time(due_ms)?;
        let period = period_ms
            .map(|p| {
                u64::try_from(p).map(Duration::from_millis).map_err(|_| {
                    StorageError::corrupt(format!("reminder period {p} ms is negative"))
                })
            })
            .transpose()?;
        Ok(Reminder {
            identity,
            name,
            partition,
            due,
            period,
        })
    }
}

/// Milliseconds since the Unix epoch; times before 1970 are rejected.
pub(crate) fn system_time_to_ms(t: SystemTime) -> Result<i64, StorageError> {
    let since = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StorageError::InvalidInput {
            what: "time",
            reason: "times before 1970-01-01 cannot be stored".to_owned(),
        })?;
    i64::try_from(since.as_millis()).map_err(|_| StorageError::InvalidInput {
        what: "time",
        reason: "time too far in the future".to_owned(),
    })
}

fn ms_to_system_time(ms: i64) -> Result<SystemTime, StorageError> {
    u64::try_from(ms)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .map_err(|_| StorageError::corrupt(format!("reminder due time {ms} ms is negative")))
}
