//! How ACTIVE / BUSY / INACTIVE travel over plain IRC `AWAY`.
//!
//! Not away means ACTIVE. The tracker prefixes every away reason so that any
//! IRC client shows the status in WHOIS and away replies, and so that a user
//! cannot pass off BUSY as INACTIVE (or the reverse):
//! - `Busy` or `Busy: <what the user said>` is BUSY (set by the user);
//! - `Inactive: idle for <N> min` is INACTIVE (set by the tracker).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Active,
    Busy,
    Inactive,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Active => "ACTIVE",
            Status::Busy => "BUSY",
            Status::Inactive => "INACTIVE",
        })
    }
}

pub const INACTIVE_PREFIX: &str = "Inactive";
pub const BUSY_PREFIX: &str = "Busy";

/// The away reason the tracker stores for a user-set AWAY text.
pub fn busy_reason(user_text: &str) -> String {
    let text = user_text.trim();
    let lower = text.to_ascii_lowercase();
    if text.is_empty() || lower == "busy" {
        BUSY_PREFIX.to_string()
    } else if let Some(rest) = lower.strip_prefix("busy:") {
        format!("{BUSY_PREFIX}: {}", text[text.len() - rest.len()..].trim())
    } else {
        format!("{BUSY_PREFIX}: {text}")
    }
}

pub fn inactive_reason(idle_secs: u64) -> String {
    if idle_secs < 60 {
        return format!("{INACTIVE_PREFIX}: idle for {idle_secs} s");
    }
    format!("{INACTIVE_PREFIX}: idle for {} min", idle_secs / 60)
}

/// Classifies an away reason (None = not away).
pub fn from_away(reason: Option<&str>) -> Status {
    match reason {
        None => Status::Active,
        Some(r) if r.starts_with(INACTIVE_PREFIX) => Status::Inactive,
        Some(_) => Status::Busy,
    }
}

/// The user's own words inside a BUSY reason, if any.
pub fn busy_detail(reason: &str) -> Option<&str> {
    reason.strip_prefix("Busy: ").filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        assert_eq!(busy_reason(""), "Busy");
        assert_eq!(busy_reason("busy"), "Busy");
        assert_eq!(busy_reason("in a meeting"), "Busy: in a meeting");
        assert_eq!(busy_reason("Busy: lunch"), "Busy: lunch");
        assert_eq!(
            busy_reason("Inactive: idle for 5 min"),
            "Busy: Inactive: idle for 5 min"
        );
        assert_eq!(
            from_away(Some(&busy_reason("Inactive: fake"))),
            Status::Busy
        );
        assert_eq!(from_away(Some(&inactive_reason(300))), Status::Inactive);
        assert_eq!(inactive_reason(301), "Inactive: idle for 5 min");
        assert_eq!(inactive_reason(3), "Inactive: idle for 3 s");
        assert_eq!(from_away(None), Status::Active);
        assert_eq!(busy_detail("Busy: lunch"), Some("lunch"));
        assert_eq!(busy_detail("Busy"), None);
    }
}
