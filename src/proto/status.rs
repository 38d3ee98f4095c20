//! How ACTIVE / BUSY / INACTIVE travel over plain IRC `AWAY`.
//!
//! Not away means ACTIVE. The away text is the user's own words, stored as
//! typed (cleaned of control characters and cut to AWAYLEN, nothing added),
//! so every IRC client shows it in WHOIS and away replies as written:
//! - any away text the user set is BUSY (`Busy` when they gave no words);
//! - `Inactive: idle for <N> min` (or `<N> s`) is INACTIVE, set by the
//!   tracker. Only the tracker writes a text starting with `Inactive:`: one
//!   typed by a user is refused ([`user_away`]), so no client, ours or any
//!   other, can take a user's BUSY for INACTIVE.

use std::fmt;

use thiserror::Error;

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

/// How the tracker's INACTIVE text starts; reserved to the tracker.
pub const INACTIVE_PREFIX: &str = "Inactive:";
/// The away text of a BUSY without words (`/status busy` alone, or an
/// `AWAY` whose text was nothing but spaces or control characters).
pub const BUSY_WORD: &str = "Busy";
/// The FAIL code for a refused away text (`FAIL AWAY <code> :<why>`).
pub const RESERVED_AWAY_CODE: &str = "RESERVED_TEXT";

/// A user's away text the tracker does not take.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AwayRefused {
    #[error(
        "Away texts starting with \"Inactive:\" are the tracker's own (INACTIVE after idling); your status is unchanged, say it in other words"
    )]
    LooksInactive,
}

/// The away text stored for what a user typed, already cleaned of control
/// characters: their words as typed, trimmed, or [`BUSY_WORD`] when there
/// are none. A text that would pass for the tracker's INACTIVE one
/// (starting `Inactive:` in any case) is refused.
pub fn user_away(cleaned: &str) -> Result<String, AwayRefused> {
    let text = cleaned.trim();
    let head = text.get(..INACTIVE_PREFIX.len()).unwrap_or("");
    if head.eq_ignore_ascii_case(INACTIVE_PREFIX) {
        return Err(AwayRefused::LooksInactive);
    }
    if text.is_empty() {
        return Ok(BUSY_WORD.to_string());
    }
    Ok(text.to_string())
}

pub fn inactive_reason(idle_secs: u64) -> String {
    if idle_secs < 60 {
        return format!("{INACTIVE_PREFIX} idle for {idle_secs} s");
    }
    format!("{INACTIVE_PREFIX} idle for {} min", idle_secs / 60)
}

/// Classifies an away reason (None = not away).
pub fn from_away(reason: Option<&str>) -> Status {
    match reason {
        None => Status::Active,
        Some(r) if r.starts_with(INACTIVE_PREFIX) => Status::Inactive,
        Some(_) => Status::Busy,
    }
}

/// The user's own words of a BUSY away text, if they gave any: the text
/// as it is, except the bare [`BUSY_WORD`] of a BUSY without words.
pub fn busy_detail(reason: &str) -> Option<&str> {
    Some(reason).filter(|r| !r.is_empty() && *r != BUSY_WORD)
}

/// What the tracker says after `Inactive:` (`idle for 5 min`).
pub fn inactive_detail(reason: &str) -> Option<&str> {
    reason
        .strip_prefix(INACTIVE_PREFIX)
        .map(str::trim)
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn away_texts_are_kept_as_typed() {
        assert_eq!(user_away("").as_deref(), Ok("Busy"));
        assert_eq!(user_away("   ").as_deref(), Ok("Busy"));
        assert_eq!(user_away("in a meeting").as_deref(), Ok("in a meeting"));
        assert_eq!(user_away(" Busy: lunch ").as_deref(), Ok("Busy: lunch"));
        assert_eq!(user_away("busy").as_deref(), Ok("busy"));
        assert_eq!(
            user_away("Inactive since noon, back at 2").as_deref(),
            Ok("Inactive since noon, back at 2"),
            "only the tracker's `Inactive:` form is reserved"
        );
        assert_eq!(
            user_away("Inactive: idle for 5 min"),
            Err(AwayRefused::LooksInactive)
        );
        assert_eq!(user_away("  inactive:x"), Err(AwayRefused::LooksInactive));
        assert_eq!(user_away("Ünïcode").as_deref(), Ok("Ünïcode"));
    }

    #[test]
    fn statuses_from_away_texts() {
        assert_eq!(from_away(Some(&inactive_reason(300))), Status::Inactive);
        assert_eq!(inactive_reason(301), "Inactive: idle for 5 min");
        assert_eq!(inactive_reason(3), "Inactive: idle for 3 s");
        assert_eq!(from_away(None), Status::Active);
        assert_eq!(from_away(Some("Inactive since noon")), Status::Busy);
        assert_eq!(from_away(Some("lunch")), Status::Busy);
        assert_eq!(busy_detail("Busy: lunch"), Some("Busy: lunch"));
        assert_eq!(busy_detail("lunch"), Some("lunch"));
        assert_eq!(busy_detail("Busy"), None);
        assert_eq!(
            inactive_detail("Inactive: idle for 5 min"),
            Some("idle for 5 min")
        );
    }
}
