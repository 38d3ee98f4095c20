//! The open-file limit (`RLIMIT_NOFILE`): every connection is a file, so a
//! tracker allowed `--max-connections` needs that many plus its own.
//!
//! Most systems start a process with a soft limit of 1024 and a much higher
//! hard limit; the tracker raises its soft limit at start as far as it
//! needs and the hard limit allows, and says so. When the hard limit is
//! below what `--max-connections` needs, it says that too, with how many
//! members can connect: past the limit `accept()` fails (`EMFILE`) and the
//! accept loop backs off, so newcomers would wait without being told why.

use thiserror::Error;

/// Files the tracker holds besides its members' connections: the
/// refusals in flight (`refusals` in `run`, 64), and its own files (stdio,
/// the runtime's epoll and wake-ups, the listener, `chat.log`, its chain
/// and lock, the store with its WAL, the console socket, the mDNS sockets),
/// with room to spare.
pub const RESERVED: u64 = 128;

#[derive(Debug, Error)]
pub enum OpenFilesError {
    #[error("cannot raise the open-file limit from {from} to {to}: {source}")]
    Raise {
        from: u64,
        to: u64,
        source: std::io::Error,
    },
}

/// What was done to the limit, for the start-up message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit found at start (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
    /// The hard limit: as far as an unprivileged process may raise it.
    pub hard: Option<u64>,
    /// `--max-connections` plus [`RESERVED`].
    pub needed: u64,
    pub max_connections: u64,
}

impl OpenFiles {
    /// The soft limit to ask for: what is needed, as far as the hard limit
    /// allows; never lower than it is (`None`: leave it).
    pub fn plan(soft: Option<u64>, hard: Option<u64>, needed: u64) -> Option<u64> {
        let soft = soft?;
        if soft >= needed {
            return None;
        }
        let target = hard.map_or(needed, |h| h.min(needed));
        (target > soft).then_some(target)
    }

    /// True when the limit is below what `--max-connections` needs.
    pub fn short(&self) -> bool {
        self.now.is_some_and(|n| n < self.needed)
    }

    /// What to tell the operator at start, if anything.
    pub fn message(&self) -> Option<String> {
        let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_string(), |v| v.to_string());
        if self.short() {
            return Some(format!(
                "WARNING: open files are limited to {} (hard limit {}), below the {} that --max-connections {} needs ({} more for the tracker's own files and refusals): fewer than {} members can connect, and later ones wait unanswered; raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE=) or lower --max-connections",
                show(self.now),
                show(self.hard),
                self.needed,
                self.max_connections,
                RESERVED,
                show(self.now)
            ));
        }
        (self.before != self.now).then(|| {
            format!(
                "open files: raised the limit from {} to {} for --max-connections {}",
                show(self.before),
                show(self.now),
                self.max_connections
            )
        })
    }
}

/// Raises the soft open-file limit for `max_connections` members, as far
/// as the hard limit allows.
#[cfg(unix)]
pub fn raise_for(max_connections: usize) -> Result<OpenFiles, OpenFilesError> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let max_connections = max_connections as u64;
    let needed = max_connections.saturating_add(RESERVED);
    let limit = getrlimit(Resource::Nofile);
    let mut report = OpenFiles {
        before: limit.current,
        now: limit.current,
        hard: limit.maximum,
        needed,
        max_connections,
    };
    if let (Some(from), Some(to)) = (
        limit.current,
        OpenFiles::plan(limit.current, limit.maximum, needed),
    ) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(to),
                maximum: limit.maximum,
            },
        )
        .map_err(|e| OpenFilesError::Raise {
            from,
            to,
            source: e.into(),
        })?;
        report.now = getrlimit(Resource::Nofile).current;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_to_what_is_needed_within_the_hard_limit() {
        assert_eq!(OpenFiles::plan(Some(1024), Some(524_288), 2128), Some(2128));
        assert_eq!(OpenFiles::plan(Some(64), Some(1000), 2128), Some(1000));
        assert_eq!(OpenFiles::plan(Some(64), None, 2128), Some(2128));
    }

    #[test]
    fn never_lowers_or_touches_an_ample_limit() {
        assert_eq!(OpenFiles::plan(Some(20_000), Some(20_000), 2128), None);
        assert_eq!(OpenFiles::plan(None, None, 2128), None);
        assert_eq!(OpenFiles::plan(Some(64), Some(64), 2128), None);
    }

    fn report(before: u64, now: u64, hard: u64, max: u64) -> OpenFiles {
        OpenFiles {
            before: Some(before),
            now: Some(now),
            hard: Some(hard),
            needed: max + RESERVED,
            max_connections: max,
        }
    }

    #[test]
    fn says_what_it_raised() {
        let r = report(64, 628, 4096, 500);
        assert_eq!(
            r.message().as_deref(),
            Some("open files: raised the limit from 64 to 628 for --max-connections 500")
        );
        assert_eq!(report(20_000, 20_000, 20_000, 500).message(), None);
    }

    #[test]
    fn warns_when_the_hard_limit_is_too_low() {
        let r = report(64, 64, 64, 500);
        assert!(r.short());
        let text = r.message().expect("a warning");
        assert!(
            text.starts_with("WARNING: open files are limited to 64 (hard limit 64), below the 628 that --max-connections 500 needs (128 more for the tracker's own files and refusals): fewer than 64 members can connect"),
            "{text}"
        );
        assert!(!report(1024, 2128, 4096, 2000).short());
    }
}
