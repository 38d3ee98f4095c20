//! Which lines `tracker log` shows: `--room`, `--user`, `--dm`, `--since`,
//! `--until`, `--grep`, `--event`, all combinable (a line must pass every
//! filter given; several values of one filter are alternatives).

use std::collections::HashSet;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use super::format::{Entry, Event, same_name};
use crate::proto::nick::casefold;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    #[error(
        "{flag} {value:?}: give an RFC 3339 time (2026-12-02T10:00:00Z), a date (2026-12-02), a local time (2026-12-02 10:00), or a time ago (30m, 2h, 3d, 1w)"
    )]
    Time { flag: &'static str, value: String },
    #[error("--dm {0:?}: give two names, A,B")]
    Dm(String),
    #[error("--event {0:?} is not an event of chat.log; one of: {1}")]
    Event(String, String),
    #[error("--{0} needs a value")]
    Empty(&'static str),
}

/// The filters, as given.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub rooms: Vec<String>,
    pub users: Vec<String>,
    pub dms: Vec<(String, String)>,
    /// Lines at or after this time.
    pub since: Option<Timestamp>,
    /// Lines before this time.
    pub until: Option<Timestamp>,
    /// Lowercased.
    pub grep: Option<String>,
    pub events: Vec<Event>,
}

/// What the command line gives, before it is understood.
#[derive(Clone, Debug, Default)]
pub struct FilterArgs {
    pub rooms: Vec<String>,
    pub users: Vec<String>,
    pub dms: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub grep: Option<String>,
    pub events: Vec<String>,
}

impl Filter {
    /// Understands the flags; times are relative to `now` and dates and
    /// local times are read in `tz`.
    pub fn new(args: &FilterArgs, now: Timestamp, tz: &TimeZone) -> Result<Filter, FilterError> {
        let rooms = args
            .rooms
            .iter()
            .map(|r| {
                if r.is_empty() {
                    Err(FilterError::Empty("room"))
                } else if r.starts_with(['#', '&']) {
                    Ok(r.clone())
                } else {
                    Ok(format!("#{r}"))
                }
            })
            .collect::<Result<_, _>>()?;
        if args.users.iter().any(String::is_empty) {
            return Err(FilterError::Empty("user"));
        }
        let dms = args
            .dms
            .iter()
            .map(|d| match d.split_once(',') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(',') => {
                    Ok((a.trim().to_string(), b.trim().to_string()))
                }
                _ => Err(FilterError::Dm(d.clone())),
            })
            .collect::<Result<_, _>>()?;
        let mut events = Vec::new();
        for list in &args.events {
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                events.push(
                    Event::from_name(name)
                        .ok_or_else(|| FilterError::Event(name.to_string(), Event::names()))?,
                );
            }
        }
        let since = args
            .since
            .as_deref()
            .map(|s| parse_time(s, false, now, tz).ok_or_else(|| time_error("--since", s)))
            .transpose()?;
        let until = args
            .until
            .as_deref()
            .map(|s| parse_time(s, true, now, tz).ok_or_else(|| time_error("--until", s)))
            .transpose()?;
        Ok(Filter {
            rooms,
            users: args.users.clone(),
            dms,
            since,
            until,
            grep: args
                .grep
                .as_deref()
                .filter(|g| !g.is_empty())
                .map(str::to_lowercase),
            events,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
            && self.users.is_empty()
            && self.dms.is_empty()
            && self.since.is_none()
            && self.until.is_none()
            && self.grep.is_none()
            && self.events.is_empty()
    }
}

fn time_error(flag: &'static str, value: &str) -> FilterError {
    FilterError::Time {
        flag,
        value: value.to_string(),
    }
}

/// A time bound: an RFC 3339 time, a date (its start; for `--until`, its
/// end, so `--since D --until D` is that whole day), a local date and time
/// (`2026-12-02 10:00` or `2026-12-02T10:00:00`), or a time ago from `now`
/// (`45s`, `30m`, `2h`, `3d`, `1w`).
pub fn parse_time(text: &str, until: bool, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    if text.contains(['T', ' ']) {
        if let Ok(dt) = text.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
            return Some(dt.to_zoned(tz.clone()).ok()?.timestamp());
        }
    } else if let Ok(date) = text.parse::<jiff::civil::Date>() {
        let day = if until { date.tomorrow().ok()? } else { date };
        return Some(day.to_zoned(tz.clone()).ok()?.timestamp());
    }
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(unit_at);
    let n: i64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    now.checked_sub(SignedDuration::from_secs(n.checked_mul(secs)?))
        .ok()
}

/// A filter applied to lines in order: `--user` follows a rename (`nick
/// alice -> alice2`) to the new name until that name leaves.
pub struct Matcher<'a> {
    filter: &'a Filter,
    /// Folded names `--user` currently stands for.
    names: HashSet<String>,
    given: HashSet<String>,
}

impl<'a> Matcher<'a> {
    pub fn new(filter: &'a Filter) -> Self {
        let given: HashSet<String> = filter.users.iter().map(|u| casefold(u)).collect();
        Matcher {
            filter,
            names: given.clone(),
            given,
        }
    }

    pub fn matches(&mut self, e: &Entry) -> bool {
        let f = self.filter;
        let fields = e.fields();
        let user_ok = f.users.is_empty() || self.follow_user(e);
        if !user_ok {
            return false;
        }
        if !f.events.is_empty() && !e.kind.is_some_and(|k| f.events.contains(&k)) {
            return false;
        }
        if f.since.is_some_and(|s| e.time < s) || f.until.is_some_and(|u| e.time >= u) {
            return false;
        }
        if !f.rooms.is_empty() && !f.rooms.iter().any(|r| same_name(fields.room.as_deref(), r)) {
            return false;
        }
        if !f.dms.is_empty() {
            let is_dm = e.kind.is_some_and(Event::is_dm);
            let (from, to) = (fields.user.as_deref(), fields.target.as_deref());
            let pair = |(a, b): &(String, String)| {
                (same_name(from, a) && same_name(to, b)) || (same_name(from, b) && same_name(to, a))
            };
            if !is_dm || !f.dms.iter().any(pair) {
                return false;
            }
        }
        if let Some(g) = &f.grep
            && !e.detail.to_lowercase().contains(g.as_str())
        {
            return false;
        }
        true
    }

    /// Whether the line is by one of `--user`'s people; keeps track of
    /// their renames.
    fn follow_user(&mut self, e: &Entry) -> bool {
        let fields = e.fields();
        let Some(user) = fields.user.as_deref().map(casefold) else {
            return false;
        };
        let theirs = self.names.contains(&user);
        match e.kind {
            Some(Event::Nick) if theirs => {
                if let Some(new) = fields.target.as_deref() {
                    self.names.insert(casefold(new));
                }
                if !self.given.contains(&user) {
                    self.names.remove(&user);
                }
            }
            Some(Event::Leave) if theirs && !self.given.contains(&user) => {
                self.names.remove(&user);
            }
            _ => {}
        }
        theirs
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::parse_line;
    use super::*;

    fn now() -> Timestamp {
        "2026-12-02T12:00:00Z".parse().unwrap()
    }

    fn tz() -> TimeZone {
        TimeZone::fixed(jiff::tz::offset(2))
    }

    const LOG: &str = "\
2026-12-02T09:00:00.000Z join #general alice (10.0.0.1)
2026-12-02T09:00:01.000Z join #general bob (10.0.0.2)
2026-12-02T09:00:02.000Z msg #general <alice> Hello everyone
2026-12-02T09:30:00.000Z create #lab alice
2026-12-02T09:30:00.000Z join #lab alice (10.0.0.1)
2026-12-02T10:00:00.000Z msg #lab <alice> fractions today
2026-12-02T10:00:01.000Z dm alice -> bob: psst
2026-12-02T10:00:02.000Z dm bob -> alice: what?
2026-12-02T10:00:03.000Z dm bob -> carol: HELLO carol
2026-12-02T11:00:00.000Z nick alice -> alicia
2026-12-02T11:00:01.000Z msg #general <alicia> renamed
2026-12-02T11:00:02.000Z leave alicia (Quit: bye)
2026-12-02T11:00:03.000Z join #general alicia (10.0.0.9)
2026-12-02T11:00:04.000Z msg #general <alicia> another alicia
2026-12-02T11:30:00.000Z msg #general <bob> hello again";

    fn shown(args: FilterArgs) -> Vec<usize> {
        let filter = Filter::new(&args, now(), &tz()).unwrap();
        let mut m = Matcher::new(&filter);
        LOG.lines()
            .enumerate()
            .filter(|(_, l)| m.matches(&parse_line(l).unwrap()))
            .map(|(i, _)| i + 1)
            .collect()
    }

    fn args() -> FilterArgs {
        FilterArgs::default()
    }

    #[test]
    fn each_filter_and_their_combination() {
        assert_eq!(shown(args()), (1..=15).collect::<Vec<_>>());
        let room = |r: &str| FilterArgs {
            rooms: vec![r.into()],
            ..args()
        };
        assert_eq!(shown(room("#lab")), vec![4, 5, 6]);
        assert_eq!(shown(room("LAB")), vec![4, 5, 6], "# added, case folded");
        // alice, then as alicia until alicia leaves; the next alicia is not her.
        let user = FilterArgs {
            users: vec!["Alice".into()],
            ..args()
        };
        assert_eq!(shown(user), vec![1, 3, 4, 5, 6, 7, 10, 11, 12]);
        let dm = FilterArgs {
            dms: vec!["bob,alice".into()],
            ..args()
        };
        assert_eq!(shown(dm), vec![7, 8]);
        let since = FilterArgs {
            since: Some("2h".into()),
            ..args()
        };
        assert_eq!(shown(since), vec![6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        let until = FilterArgs {
            until: Some("2026-12-02T09:30:00Z".into()),
            ..args()
        };
        assert_eq!(shown(until), vec![1, 2, 3], "until is exclusive");
        let grep = FilterArgs {
            grep: Some("hello".into()),
            ..args()
        };
        assert_eq!(shown(grep), vec![3, 9, 15]);
        let events = FilterArgs {
            events: vec!["join,create".into(), "nick".into()],
            ..args()
        };
        assert_eq!(shown(events), vec![1, 2, 4, 5, 10, 13]);
        let all = FilterArgs {
            rooms: vec!["#general".into()],
            users: vec!["bob".into()],
            since: Some("2026-12-02 11:00".into()),
            grep: Some("HELLO".into()),
            events: vec!["msg".into()],
            ..args()
        };
        assert_eq!(shown(all), vec![15]);
        let dm_and_user = FilterArgs {
            dms: vec!["alice,bob".into()],
            users: vec!["bob".into()],
            ..args()
        };
        assert_eq!(shown(dm_and_user), vec![8]);
    }

    #[test]
    fn times_dates_and_ages() {
        let p = |s: &str, until| parse_time(s, until, now(), &tz());
        let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        assert_eq!(p("2026-12-02T10:00:00Z", false), at("2026-12-02T10:00:00Z"));
        assert_eq!(
            p("2026-12-02T10:00:00+02:00", false),
            at("2026-12-02T08:00:00Z")
        );
        // A date is a day in the reader's time zone (here UTC+2).
        assert_eq!(p("2026-12-02", false), at("2026-12-01T22:00:00Z"));
        assert_eq!(p("2026-12-02", true), at("2026-12-02T22:00:00Z"));
        assert_eq!(p("2026-12-02 10:30", false), at("2026-12-02T08:30:00Z"));
        assert_eq!(p("2026-12-02T10:30:15", false), at("2026-12-02T08:30:15Z"));
        assert_eq!(p("90s", false), at("2026-12-02T11:58:30Z"));
        assert_eq!(p("30m", false), at("2026-12-02T11:30:00Z"));
        assert_eq!(p("2h", false), at("2026-12-02T10:00:00Z"));
        assert_eq!(p("3d", false), at("2026-11-29T12:00:00Z"));
        assert_eq!(p("1w", false), at("2026-11-25T12:00:00Z"));
        for bad in ["", "yesterday", "2x", "h", "-2h", "99999999999999999d"] {
            assert_eq!(p(bad, false), None, "{bad}");
        }
        let e = Filter::new(
            &FilterArgs {
                since: Some("soon".into()),
                ..args()
            },
            now(),
            &tz(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--since \"soon\": give an RFC 3339"),
            "{e}"
        );
        let e = Filter::new(
            &FilterArgs {
                events: vec!["msg,talk".into()],
                ..args()
            },
            now(),
            &tz(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"talk\" is not an event"), "{e}");
        assert!(e.to_string().contains("dm-action"), "{e}");
        for bad in ["alice", "alice,", ",bob", "a,b,c"] {
            let e = Filter::new(
                &FilterArgs {
                    dms: vec![bad.into()],
                    ..args()
                },
                now(),
                &tz(),
            );
            assert!(matches!(e, Err(FilterError::Dm(_))), "{bad}");
        }
    }
}
