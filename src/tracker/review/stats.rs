//! `tracker log --stats`: what a teacher reviewing a class wants at a
//! glance. Per user: messages in rooms, DMs sent, first and last seen
//! (anything they did: a join counts, so someone who never spoke is
//! listed with 0), a rename (`nick`) counted with the name before it
//! until the new name leaves; per room: messages, how many people spoke, first and
//! last event; the busiest hours (messages and DMs per clock hour).

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

use super::Style;
use super::format::{Entry, Event};
use crate::proto::nick::casefold;

/// How many of the busiest hours are listed.
pub const BUSIEST: usize = 5;

#[derive(Default)]
struct Person {
    name: String,
    /// Names taken later with `nick`.
    also: Vec<String>,
    messages: u64,
    dms: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

#[derive(Default)]
struct Room {
    name: String,
    messages: u64,
    speakers: HashSet<String>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

/// Counts, fed one matching line at a time.
#[derive(Default)]
pub struct Stats {
    lines: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    people: HashMap<String, Person>,
    /// A name taken with `nick` → the person (their first name, folded),
    /// until that name leaves.
    renamed: HashMap<String, String>,
    rooms: HashMap<String, Room>,
    /// Messages per hour, by the hour's start.
    hours: BTreeMap<Timestamp, u64>,
}

fn seen(first: &mut Option<Timestamp>, last: &mut Option<Timestamp>, t: Timestamp) {
    if first.is_none_or(|f| t < f) {
        *first = Some(t);
    }
    if last.is_none_or(|l| t > l) {
        *last = Some(t);
    }
}

impl Stats {
    /// `hour_of`: the start of the clock hour `t` is in (in the reader's
    /// time zone).
    pub fn add(&mut self, e: &Entry, hour_of: impl Fn(Timestamp) -> Timestamp) {
        self.lines += 1;
        seen(&mut self.first, &mut self.last, e.time);
        let f = e.fields();
        let kind = e.kind;
        let said = kind.is_some_and(|k| k.is_room_message() || k.is_dm());
        if let Some(user) = &f.user {
            let folded = casefold(user);
            let who = self.renamed.get(&folded).cloned().unwrap_or(folded.clone());
            match (kind, &f.target) {
                (Some(Event::Nick), Some(new)) => {
                    self.renamed.remove(&folded);
                    self.renamed.insert(casefold(new), who.clone());
                    let p = self.people.entry(who.clone()).or_default();
                    if !p.also.iter().any(|a| casefold(a) == casefold(new)) && casefold(new) != who
                    {
                        p.also.push(new.clone());
                    }
                }
                (Some(Event::Leave), _) => {
                    self.renamed.remove(&folded);
                }
                _ => {}
            }
            let p = self.people.entry(who.clone()).or_default();
            if p.name.is_empty() {
                p.name = user.clone();
            }
            seen(&mut p.first, &mut p.last, e.time);
            match kind {
                Some(k) if k.is_room_message() => p.messages += 1,
                Some(k) if k.is_dm() => p.dms += 1,
                _ => {}
            }
        }
        if let Some(room) = &f.room {
            let r = self.rooms.entry(casefold(room)).or_default();
            if r.name.is_empty() {
                r.name = room.clone();
            }
            seen(&mut r.first, &mut r.last, e.time);
            if kind.is_some_and(Event::is_room_message) {
                r.messages += 1;
                if let Some(user) = &f.user {
                    let folded = casefold(user);
                    r.speakers
                        .insert(self.renamed.get(&folded).cloned().unwrap_or(folded));
                }
            }
        }
        if said {
            *self.hours.entry(hour_of(e.time)).or_default() += 1;
        }
    }

    fn people(&self) -> Vec<&Person> {
        let mut v: Vec<&Person> = self.people.values().collect();
        v.sort_by(|a, b| {
            (b.messages + b.dms)
                .cmp(&(a.messages + a.dms))
                .then_with(|| casefold(&a.name).cmp(&casefold(&b.name)))
        });
        v
    }

    fn rooms(&self) -> Vec<&Room> {
        let mut v: Vec<&Room> = self.rooms.values().collect();
        v.sort_by(|a, b| {
            b.messages
                .cmp(&a.messages)
                .then_with(|| casefold(&a.name).cmp(&casefold(&b.name)))
        });
        v
    }

    fn busiest(&self) -> Vec<(Timestamp, u64)> {
        let mut v: Vec<(Timestamp, u64)> = self.hours.iter().map(|(h, n)| (*h, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(BUSIEST);
        v
    }

    /// The tables, aligned.
    pub fn to_text(&self, style: &Style) -> String {
        let t = |ts: Option<Timestamp>| {
            ts.map(|ts| style.time(ts, &super::super::transcript::timestamp(ts)))
                .unwrap_or_default()
        };
        let zone = if style.utc { "UTC" } else { "local time" };
        let mut out = format!(
            "{} {}, {} to {} ({zone})\n",
            self.lines,
            super::plural(self.lines, "line", "lines"),
            t(self.first),
            t(self.last)
        );
        let people: Vec<Vec<String>> = self
            .people()
            .iter()
            .map(|p| {
                vec![
                    if p.also.is_empty() {
                        p.name.clone()
                    } else {
                        format!("{} ({})", p.name, p.also.join(", "))
                    },
                    p.messages.to_string(),
                    p.dms.to_string(),
                    t(p.first),
                    t(p.last),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &["user", "messages", "DMs sent", "first seen", "last seen"],
            &[false, true, true, false, false],
            &people,
        ));
        let rooms: Vec<Vec<String>> = self
            .rooms()
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.messages.to_string(),
                    r.speakers.len().to_string(),
                    t(r.first),
                    t(r.last),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &["room", "messages", "speakers", "first", "last"],
            &[false, true, true, false, false],
            &rooms,
        ));
        let hours: Vec<Vec<String>> = self
            .busiest()
            .iter()
            .map(|(h, n)| {
                let start = t(Some(*h));
                vec![start[..start.len().min(16)].to_string(), n.to_string()]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &["busiest hours", "messages"],
            &[false, true],
            &hours,
        ));
        out
    }

    /// The same as one JSON object (times RFC 3339 in UTC; an hour's start
    /// with the reader's offset unless `--utc`).
    pub fn to_json(&self, style: &Style) -> String {
        let utc = |t: Option<Timestamp>| t.map(super::super::transcript::timestamp);
        let people = self
            .people()
            .iter()
            .map(|p| JsonUser {
                user: &p.name,
                also: &p.also,
                messages: p.messages,
                dms_sent: p.dms,
                first_seen: utc(p.first),
                last_seen: utc(p.last),
            })
            .collect();
        let rooms = self
            .rooms()
            .iter()
            .map(|r| JsonRoom {
                room: &r.name,
                messages: r.messages,
                speakers: r.speakers.len() as u64,
                first: utc(r.first),
                last: utc(r.last),
            })
            .collect();
        let hours = self
            .busiest()
            .iter()
            .map(|(h, n)| JsonHour {
                hour: if style.utc {
                    super::super::transcript::timestamp(*h)
                } else {
                    h.to_zoned(style.tz.clone())
                        .strftime("%Y-%m-%dT%H:%M:%S%:z")
                        .to_string()
                },
                messages: *n,
            })
            .collect();
        serde_json::to_string(&JsonStats {
            lines: self.lines,
            first: utc(self.first),
            last: utc(self.last),
            users: people,
            rooms,
            busiest_hours: hours,
        })
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[derive(Serialize)]
struct JsonStats<'a> {
    lines: u64,
    first: Option<String>,
    last: Option<String>,
    users: Vec<JsonUser<'a>>,
    rooms: Vec<JsonRoom<'a>>,
    busiest_hours: Vec<JsonHour>,
}

#[derive(Serialize)]
struct JsonUser<'a> {
    user: &'a str,
    /// Names they took later (`nick`).
    also: &'a [String],
    messages: u64,
    dms_sent: u64,
    first_seen: Option<String>,
    last_seen: Option<String>,
}

#[derive(Serialize)]
struct JsonRoom<'a> {
    room: &'a str,
    messages: u64,
    speakers: u64,
    first: Option<String>,
    last: Option<String>,
}

#[derive(Serialize)]
struct JsonHour {
    hour: String,
    messages: u64,
}

/// An aligned table: columns two spaces apart, numbers to the right.
fn table(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.width());
            if i > 0 {
                s.push_str("  ");
            }
            if right[i] {
                s.push_str(&pad);
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < cells.len() {
                    s.push_str(&pad);
                }
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::format::parse_line;
    use super::*;
    use jiff::tz::TimeZone;

    const LOG: &str = "\
2026-12-02T09:00:00.000Z start tracker listening on 0.0.0.0:6697 (TLS, password required)
2026-12-02T09:00:05.000Z join #general alice (10.0.0.1)
2026-12-02T09:00:06.000Z join #general bob (10.0.0.2)
2026-12-02T09:00:07.000Z join #general Zoë (10.0.0.3)
2026-12-02T09:10:00.000Z msg #general <alice> hello
2026-12-02T09:20:00.000Z action #general * bob waves
2026-12-02T09:30:00.000Z create #lab alice
2026-12-02T09:30:00.000Z join #lab alice (10.0.0.1)
2026-12-02T10:05:00.000Z msg #lab <alice> fractions
2026-12-02T10:06:00.000Z msg #lab <Alice> decimals
2026-12-02T10:07:00.000Z dm bob -> alice: help?
2026-12-02T10:08:00.000Z notice #general -bob- break
2026-12-02T10:09:00.000Z nick bob -> bobby
2026-12-02T10:10:00.000Z msg #general <bobby> back
2026-12-02T11:00:00.000Z leave alice (Quit: bye)";

    fn stats() -> Stats {
        let tz = TimeZone::fixed(jiff::tz::offset(1));
        let mut s = Stats::default();
        for l in LOG.lines() {
            s.add(&parse_line(l).unwrap(), |t| hour_start(t, &tz));
        }
        s
    }

    fn hour_start(t: Timestamp, tz: &TimeZone) -> Timestamp {
        super::super::hour_start(t, tz)
    }

    #[test]
    fn table_per_user_room_and_hour() {
        let style = Style {
            json: false,
            utc: false,
            tz: TimeZone::fixed(jiff::tz::offset(1)),
        };
        assert_eq!(
            stats().to_text(&style),
            "\
15 lines, 2026-12-02 10:00:00 to 2026-12-02 12:00:00 (local time)

user         messages  DMs sent  first seen           last seen
bob (bobby)         3         1  2026-12-02 10:00:06  2026-12-02 11:10:00
alice               3         0  2026-12-02 10:00:05  2026-12-02 12:00:00
Zoë                 0         0  2026-12-02 10:00:07  2026-12-02 10:00:07

room      messages  speakers  first                last
#general         4         2  2026-12-02 10:00:05  2026-12-02 11:10:00
#lab             2         1  2026-12-02 10:30:00  2026-12-02 11:06:00

busiest hours     messages
2026-12-02 11:00         5
2026-12-02 10:00         2
"
        );
    }

    #[test]
    fn json_parses_back() {
        let style = Style {
            json: true,
            utc: true,
            tz: TimeZone::UTC,
        };
        let v: serde_json::Value = serde_json::from_str(&stats().to_json(&style)).unwrap();
        assert_eq!(v["lines"], 15);
        assert_eq!(v["users"][0]["user"], "bob");
        assert_eq!(v["users"][0]["also"], serde_json::json!(["bobby"]));
        assert_eq!(v["users"][0]["messages"], 3);
        assert_eq!(v["users"][0]["dms_sent"], 1);
        assert_eq!(v["users"][1]["user"], "alice");
        assert_eq!(v["users"][1]["also"], serde_json::json!([]));
        assert_eq!(v["users"][2]["first_seen"], "2026-12-02T09:00:07.000Z");
        assert_eq!(v["rooms"][1]["room"], "#lab");
        assert_eq!(v["rooms"][0]["speakers"], 2);
        assert_eq!(v["busiest_hours"][0]["hour"], "2026-12-02T10:00:00.000Z");
        assert_eq!(v["busiest_hours"][0]["messages"], 5);
    }
}
