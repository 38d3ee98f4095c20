//! The operator's console: commands typed at the tracker's own terminal,
//! or from `tracker console` attached through a Unix socket, answered from
//! the hub's snapshots (`hub::console`) and shown as aligned tables.
//!
//! - this file: the one command table, the parser (with "did you mean"),
//!   the formatting, and [`Executor`], which runs a command against the
//!   hub the same way for every console;
//! - `editor`: the line editor both consoles share (rustyline: history,
//!   Tab completion, diagnostics printed above the prompt);
//! - `diagnostics`: where tracing output goes while consoles are open;
//! - `local`: the console on the tracker's standard input;
//! - `socket`: the Unix socket attached consoles reach, and `attach`, the
//!   `tracker console` side of it.
//!
//! The console never blocks the tracker: the hub answers into a oneshot it
//! never waits on, diagnostics reach consoles through bounded queues that
//! drop lines rather than wait, and each attached console is its own task.

pub mod attach;
pub mod diagnostics;
mod editor;
pub mod local;
pub mod socket;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::hub::console::{ConsoleAnswer, ConsoleQuery, address_text};
use super::shared::HubRequest;
use crate::proto::sanitize;

/// How long a console waits for the hub's answer before saying so.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// The longest topic shown in `rooms` (in characters); `room` shows it whole.
const TOPIC_SHOWN: usize = 48;

/// What a command's argument names, for Tab completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    User,
    Room,
    Command,
    /// Free text: nothing to complete.
    Text,
}

/// One console command: how it is typed and what `help` says of it.
pub struct Spec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// The arguments as `help` shows them (`<user> [reason]`).
    pub usage: &'static str,
    /// Argument kinds in order (the last one takes the rest of the line
    /// when it is `Text`).
    pub args: &'static [Arg],
    /// Arguments that must be given.
    pub required: usize,
    pub help: &'static str,
}

/// Every console command, once: parsing, completion and `help` all read
/// this table.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "users",
        aliases: &["lu"],
        usage: "",
        args: &[],
        required: 0,
        help: "everyone seen this run, online or not: when they came and left",
    },
    Spec {
        name: "online",
        aliases: &["lcu"],
        usage: "",
        args: &[],
        required: 0,
        help: "members connected now: address, status, idle time, rooms",
    },
    Spec {
        name: "sessions",
        aliases: &["ls"],
        usage: "",
        args: &[],
        required: 0,
        help: "direct-message conversations and direct sessions so far: who, how many, when",
    },
    Spec {
        name: "rooms",
        aliases: &["lr"],
        usage: "",
        args: &[],
        required: 0,
        help: "rooms with founder, member count, modes, topic",
    },
    Spec {
        name: "room",
        aliases: &["lru"],
        usage: "<room>",
        args: &[Arg::Room],
        required: 1,
        help: "a room's members and their roles",
    },
    Spec {
        name: "kick",
        aliases: &[],
        usage: "<user> [reason]",
        args: &[Arg::User, Arg::Text],
        required: 1,
        help: "disconnect a user; everyone sees why; recorded in chat.log",
    },
    Spec {
        name: "announce",
        aliases: &[],
        usage: "<text>",
        args: &[Arg::Text],
        required: 1,
        help: "a notice from the tracker to every member; recorded in chat.log",
    },
    Spec {
        name: "close",
        aliases: &[],
        usage: "<room> [reason]",
        args: &[Arg::Room, Arg::Text],
        required: 1,
        help: "close a room: every member is told why and removed",
    },
    Spec {
        name: "stop",
        aliases: &["x"],
        usage: "",
        args: &[],
        required: 0,
        help: "stop the tracker cleanly, as Ctrl+C does",
    },
    Spec {
        name: "help",
        aliases: &["?"],
        usage: "[command]",
        args: &[Arg::Command],
        required: 0,
        help: "this list, or one command's help",
    },
    Spec {
        name: "exit",
        aliases: &["quit"],
        usage: "",
        args: &[],
        required: 0,
        help: "leave this console; the tracker keeps running (also Ctrl+D)",
    },
];

/// A parsed console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Users,
    Online,
    Sessions,
    Rooms,
    Room(String),
    Kick {
        user: String,
        reason: Option<String>,
    },
    Announce(String),
    Close {
        room: String,
        reason: Option<String>,
    },
    Stop,
    Help(Option<String>),
    Exit,
}

/// Why a line is not a command; the text says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown command {typed:?}; did you mean {meant:?}?")]
    DidYouMean { typed: String, meant: &'static str },
    #[error("unknown command {0:?}; type help for the commands")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(String),
}

/// The command named `word` (a name or an alias, any case).
pub fn find(word: &str) -> Option<&'static Spec> {
    let word = word.to_lowercase();
    COMMANDS
        .iter()
        .find(|s| s.name == word || s.aliases.contains(&word.as_str()))
}

/// Edit distance (insertions, deletions, substitutions, and swaps of two
/// neighbours each count one), over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, first) in d[0].iter_mut().enumerate() {
        *first = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The command `typed` most likely meant: the one whose name it is the
/// start of (when only one is), else the closest name or alias within one
/// edit for short words and two for longer ones.
pub fn did_you_mean(typed: &str) -> Option<&'static str> {
    let typed = typed.to_lowercase();
    let mut starts = COMMANDS.iter().filter(|s| s.name.starts_with(&typed));
    if let (Some(only), None) = (starts.next(), starts.next())
        && typed.len() >= 2
    {
        return Some(only.name);
    }
    let allowed = if typed.chars().count() <= 3 { 1 } else { 2 };
    let mut best: Option<(usize, &'static str)> = None;
    for spec in COMMANDS {
        for word in std::iter::once(&spec.name).chain(spec.aliases.iter()) {
            let d = edit_distance(&typed, word);
            if d <= allowed && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, spec.name));
            }
        }
    }
    best.map(|(_, name)| name)
}

/// Splits off the first word of `s` (after leading blanks) and the rest,
/// trimmed.
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (s, ""),
    }
}

/// Parses one console line (not empty).
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let (word, rest) = first_word(line);
    let Some(spec) = find(word) else {
        return Err(match did_you_mean(word) {
            Some(meant) => ParseError::DidYouMean {
                typed: word.to_string(),
                meant,
            },
            None => ParseError::Unknown(word.to_string()),
        });
    };
    let usage = || {
        ParseError::Usage(
            format!("{} {}", spec.name, spec.usage)
                .trim_end()
                .to_string(),
        )
    };
    if spec.args.is_empty() && !rest.is_empty() {
        return Err(usage());
    }
    if spec.required > 0 && rest.is_empty() {
        return Err(usage());
    }
    let (first, tail) = first_word(rest);
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(match spec.name {
        "users" => Command::Users,
        "online" => Command::Online,
        "sessions" => Command::Sessions,
        "rooms" => Command::Rooms,
        "room" if tail.is_empty() => Command::Room(first.to_string()),
        "kick" => Command::Kick {
            user: first.to_string(),
            reason: opt(tail),
        },
        "announce" => Command::Announce(rest.to_string()),
        "close" => Command::Close {
            room: first.to_string(),
            reason: opt(tail),
        },
        "stop" => Command::Stop,
        "help" if tail.is_empty() => Command::Help(opt(first)),
        "exit" => Command::Exit,
        _ => return Err(usage()),
    })
}

/// `help`: every command, or one.
pub fn help(topic: Option<&str>) -> Vec<String> {
    let row = |s: &Spec| {
        vec![
            format!("{} {}", s.name, s.usage).trim_end().to_string(),
            s.aliases.join(" "),
            s.help.to_string(),
        ]
    };
    match topic {
        Some(t) => match find(t) {
            Some(spec) => table(&["COMMAND", "ALIASES", ""], vec![row(spec)]),
            None => vec![match did_you_mean(t) {
                Some(meant) => format!("no command {t:?}; did you mean {meant:?}?"),
                None => format!("no command {t:?}"),
            }],
        },
        None => {
            let mut out = table(
                &["COMMAND", "ALIASES", ""],
                COMMANDS.iter().map(row).collect(),
            );
            out.push(
                "Tab completes commands, users and rooms; Up and Down walk the history.".into(),
            );
            out
        }
    }
}

/// Completion candidates for `line` with the cursor at `pos`: where the
/// word being completed starts, and what it may become. `names` gives the
/// users and rooms online now (asked only when an argument is completed).
pub fn complete(
    line: &str,
    pos: usize,
    names: impl FnOnce() -> (Vec<String>, Vec<String>),
) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let start = before.rfind(char::is_whitespace).map_or(0, |i| {
        i + before[i..].chars().next().map_or(1, char::len_utf8)
    });
    let word = &before[start..];
    let earlier: Vec<&str> = before[..start].split_whitespace().collect();
    let fold = |s: &str| crate::proto::nick::casefold(s);
    let matching = |options: Vec<String>| -> Vec<String> {
        options
            .into_iter()
            .filter(|o| fold(o).starts_with(&fold(word)))
            .collect()
    };
    let Some(command) = earlier.first() else {
        let mut words: Vec<String> = COMMANDS.iter().map(|s| s.name.to_string()).collect();
        words.retain(|w| w.starts_with(&word.to_lowercase()));
        return (start, words);
    };
    let Some(spec) = find(command) else {
        return (start, Vec::new());
    };
    let kind = spec.args.get(earlier.len() - 1).copied();
    let options = match kind {
        Some(Arg::User) => names().0,
        Some(Arg::Room) => names().1,
        Some(Arg::Command) => COMMANDS.iter().map(|s| s.name.to_string()).collect(),
        Some(Arg::Text) | None => return (start, Vec::new()),
    };
    (start, matching(options))
}

/// Text from the network made safe for the operator's terminal.
fn cell(s: &str) -> String {
    sanitize::for_display(s)
}

/// Rows under headers, each column as wide as its widest cell, two spaces
/// apart; the last column is not padded.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Vec<String> {
    use unicode_width::UnicodeWidthStr;
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(c.width());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(widths[i] - c.width() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for r in &rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// A time as the console shows it: the local clock, with the date when it
/// is not today.
pub fn clock_text(at: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let tz = jiff::tz::TimeZone::system();
    let (at, now) = (at.to_zoned(tz.clone()), now.to_zoned(tz));
    if at.date() == now.date() {
        at.strftime("%H:%M:%S").to_string()
    } else {
        at.strftime("%Y-%m-%d %H:%M").to_string()
    }
}

/// A length of time, short: `42s`, `3m05s`, `2h07m`, `3d04h`.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The hub's answer as the lines the console shows, at `now`.
pub fn format_answer(answer: ConsoleAnswer, now: jiff::Timestamp) -> Vec<String> {
    match answer {
        ConsoleAnswer::Users(rows) if rows.is_empty() => vec!["nobody has come yet".into()],
        ConsoleAnswer::Users(rows) => {
            let online = rows.iter().filter(|r| r.left.is_none()).count();
            let mut out = table(
                &["USER", "ADDRESS", "CAME", "LEFT", "REASON"],
                rows.into_iter()
                    .map(|r| {
                        let (left, why) = match r.left {
                            Some((at, why)) => (clock_text(at, now), cell(&why)),
                            None => ("online".into(), String::new()),
                        };
                        vec![
                            cell(&r.nick),
                            address_text(r.address),
                            clock_text(r.came, now),
                            left,
                            why,
                        ]
                    })
                    .collect(),
            );
            out.push(format!("{} seen, {online} online", out.len() - 1));
            out
        }
        ConsoleAnswer::Online(rows) if rows.is_empty() => vec!["nobody is online".into()],
        ConsoleAnswer::Online(rows) => {
            let n = rows.len();
            let mut out = table(
                &["USER", "ADDRESS", "STATUS", "IDLE", "ROOMS"],
                rows.into_iter()
                    .map(|r| {
                        let mut status = r.status.to_string();
                        if let Some(a) = r
                            .away
                            .filter(|_| r.status == crate::proto::status::Status::Busy)
                        {
                            status = format!("{status} ({})", shorten(&cell(&a), 24));
                        }
                        if r.oper.is_some() {
                            status.push_str(", operator");
                        }
                        vec![
                            cell(&r.nick),
                            address_text(r.address),
                            status,
                            duration_text(r.idle),
                            r.rooms
                                .iter()
                                .map(|x| cell(x))
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect(),
            );
            out.push(format!("{n} online"));
            out
        }
        ConsoleAnswer::Sessions { dms, direct } => {
            let mut out = if dms.is_empty() {
                vec!["no direct messages yet".into()]
            } else {
                table(
                    &["BETWEEN", "MESSAGES", "FIRST", "LAST"],
                    dms.into_iter()
                        .map(|r| {
                            vec![
                                format!("{} and {}", cell(&r.between.0), cell(&r.between.1)),
                                r.messages.to_string(),
                                clock_text(r.first, now),
                                clock_text(r.last, now),
                            ]
                        })
                        .collect(),
                )
            };
            // Direct sessions (/session, DCC): their course, never their
            // content, which the tracker does not see.
            if !direct.is_empty() {
                out.push(String::new());
                out.extend(table(
                    &["DIRECT SESSION", "KIND", "STATE", "OPENED", "ENDED"],
                    direct
                        .into_iter()
                        .map(|s| {
                            vec![
                                format!("{} -> {}", cell(&s.from), cell(&s.to)),
                                s.kind.to_string(),
                                s.state.to_string(),
                                clock_text(s.opened_at, now),
                                s.closed_at.map_or("-".into(), |t| clock_text(t, now)),
                            ]
                        })
                        .collect(),
                ));
            }
            out
        }
        ConsoleAnswer::Rooms(rows) => table(
            &["ROOM", "FOUNDER", "MEMBERS", "MODES", "TOPIC"],
            rows.into_iter()
                .map(|r| {
                    vec![
                        cell(&r.name),
                        r.founder.as_deref().map_or("-".into(), cell),
                        r.members.to_string(),
                        r.modes,
                        r.topic
                            .as_deref()
                            .map_or(String::new(), |t| shorten(&cell(t), TOPIC_SHOWN)),
                    ]
                })
                .collect(),
        ),
        ConsoleAnswer::Room(detail) => {
            let r = detail.room;
            let mut out = vec![format!(
                "{}: {} member(s), modes {}, founder {}",
                cell(&r.name),
                r.members,
                r.modes,
                r.founder.as_deref().map_or("-".into(), cell)
            )];
            if let Some(t) = r.topic {
                out.push(format!("topic: {}", cell(&t)));
            }
            out.extend(table(
                &["USER", "ROLES", "STATUS"],
                detail
                    .members
                    .into_iter()
                    .map(|m| {
                        vec![
                            cell(&m.nick),
                            if m.roles.is_empty() {
                                "-".into()
                            } else {
                                m.roles
                            },
                            m.status.to_string(),
                        ]
                    })
                    .collect(),
            ));
            out
        }
        ConsoleAnswer::Names { users, rooms } => users.into_iter().chain(rooms).collect(),
        ConsoleAnswer::Done(text) => vec![text],
        ConsoleAnswer::Refused(text) => vec![format!("refused: {text}")],
    }
}

/// Which console a command came from (named in the stop line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The tracker's own terminal.
    Terminal,
    /// `tracker console`, attached through the socket.
    Attached,
}

/// What running a line did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub lines: Vec<String>,
    /// `exit`: this console should close (the tracker keeps running).
    pub exit: bool,
}

/// Runs console commands against the hub; shared by every console.
#[derive(Clone)]
pub struct Executor {
    hub: mpsc::Sender<HubRequest>,
    /// Asks `tracker::run` to stop, with the reason for the stop line.
    stop: mpsc::Sender<String>,
}

impl Executor {
    pub fn new(hub: mpsc::Sender<HubRequest>, stop: mpsc::Sender<String>) -> Executor {
        Executor { hub, stop }
    }

    /// Asks the hub; `None` when it is gone or did not answer in time.
    pub async fn ask(&self, query: ConsoleQuery) -> Option<ConsoleAnswer> {
        let (reply, answer) = oneshot::channel();
        self.hub
            .send(HubRequest::Console { query, reply })
            .await
            .ok()?;
        tokio::time::timeout(ANSWER_WAIT, answer).await.ok()?.ok()
    }

    /// Users online and rooms, for completion (empty if the hub is gone).
    pub async fn names(&self) -> (Vec<String>, Vec<String>) {
        match self.ask(ConsoleQuery::Names).await {
            Some(ConsoleAnswer::Names { users, rooms }) => (users, rooms),
            _ => (Vec::new(), Vec::new()),
        }
    }

    /// Runs one typed line.
    pub async fn run(&self, line: &str, origin: Origin) -> Outcome {
        let line = line.trim();
        if line.is_empty() {
            return Outcome::default();
        }
        let command = match parse(line) {
            Ok(c) => c,
            Err(e) => {
                return Outcome {
                    lines: vec![e.to_string()],
                    exit: false,
                };
            }
        };
        let query = match command {
            Command::Help(topic) => {
                return Outcome {
                    lines: help(topic.as_deref()),
                    exit: false,
                };
            }
            Command::Exit => {
                return Outcome {
                    lines: Vec::new(),
                    exit: true,
                };
            }
            Command::Stop => {
                let reason = match origin {
                    Origin::Terminal => "stopped by the operator (console)",
                    Origin::Attached => "stopped by the operator (tracker console)",
                };
                // Capacity one: a stop already asked for is enough.
                let _ = self.stop.try_send(reason.to_string());
                return Outcome {
                    lines: vec!["stopping the tracker".into()],
                    exit: false,
                };
            }
            Command::Users => ConsoleQuery::Users,
            Command::Online => ConsoleQuery::Online,
            Command::Sessions => ConsoleQuery::Sessions,
            Command::Rooms => ConsoleQuery::Rooms,
            Command::Room(name) => ConsoleQuery::Room(name),
            Command::Kick { user, reason } => ConsoleQuery::Kick { user, reason },
            Command::Announce(text) => ConsoleQuery::Announce(text),
            Command::Close { room, reason } => ConsoleQuery::Close { room, reason },
        };
        let lines = match self.ask(query).await {
            Some(answer) => format_answer(answer, jiff::Timestamp::now()),
            None => vec!["the tracker did not answer (it is stopping or very busy)".into()],
        };
        Outcome { lines, exit: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_parse_to_the_same_command() {
        for (typed, want) in [
            ("users", Command::Users),
            ("lu", Command::Users),
            ("LCU", Command::Online),
            ("online", Command::Online),
            ("ls", Command::Sessions),
            ("lr", Command::Rooms),
            ("lru #maths", Command::Room("#maths".into())),
            ("  room   #maths  ", Command::Room("#maths".into())),
            ("x", Command::Stop),
            ("quit", Command::Exit),
            ("help kick", Command::Help(Some("kick".into()))),
            (
                "kick bob  being  rude ",
                Command::Kick {
                    user: "bob".into(),
                    reason: Some("being  rude".into()),
                },
            ),
            (
                "kick bob",
                Command::Kick {
                    user: "bob".into(),
                    reason: None,
                },
            ),
            (
                "announce  back in 5 minutes",
                Command::Announce("back in 5 minutes".into()),
            ),
            (
                "close #maths lesson over",
                Command::Close {
                    room: "#maths".into(),
                    reason: Some("lesson over".into()),
                },
            ),
        ] {
            assert_eq!(parse(typed), Ok(want), "{typed:?}");
        }
    }

    #[test]
    fn wrong_arguments_say_the_usage() {
        let usage = |s: &str| Err(ParseError::Usage(s.into()));
        assert_eq!(parse("kick"), usage("kick <user> [reason]"));
        assert_eq!(parse("room"), usage("room <room>"));
        assert_eq!(parse("room #a #b"), usage("room <room>"));
        assert_eq!(parse("users now"), usage("users"));
        assert_eq!(parse("announce"), usage("announce <text>"));
        assert_eq!(
            parse("kick").unwrap_err().to_string(),
            "usage: kick <user> [reason]"
        );
    }

    #[test]
    fn a_mistyped_command_says_what_was_meant() {
        for (typed, meant) in [
            ("onlin", "online"),
            ("romos", "rooms"),
            ("uers", "users"),
            ("kcik", "kick"),
            ("annonce", "announce"),
            ("lcx", "lcu"),
            ("sto", "stop"),
            ("sess", "sessions"),
        ] {
            let meant_name = find(meant).map(|s| s.name).unwrap_or(meant);
            assert_eq!(
                parse(&format!("{typed} x")).unwrap_err(),
                ParseError::DidYouMean {
                    typed: typed.into(),
                    meant: meant_name,
                },
                "{typed}"
            );
        }
        assert_eq!(
            parse("onlin").unwrap_err().to_string(),
            "unknown command \"onlin\"; did you mean \"online\"?"
        );
        assert_eq!(
            parse("frobnicate").unwrap_err().to_string(),
            "unknown command \"frobnicate\"; type help for the commands"
        );
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("rooms", "rooms"), 0);
        assert_eq!(edit_distance("romos", "rooms"), 1);
        assert_eq!(edit_distance("kick", "kcik"), 1);
        assert_eq!(edit_distance("", "stop"), 4);
        assert_eq!(edit_distance("online", "onlin"), 1);
        assert_eq!(edit_distance("users", "rooms"), 4);
    }

    #[test]
    fn completion_of_commands_users_and_rooms() {
        let names = || {
            (
                vec!["alice".to_string(), "Albert".to_string(), "bob".to_string()],
                vec!["#general".to_string(), "#maths".to_string()],
            )
        };
        assert_eq!(
            complete("ro", 2, names),
            (0, vec!["rooms".to_string(), "room".to_string()])
        );
        assert_eq!(complete("", 0, names).1.len(), COMMANDS.len());
        assert_eq!(
            complete("kick al", 7, names),
            (5, vec!["alice".to_string(), "Albert".to_string()])
        );
        assert_eq!(
            complete("lru #m", 6, names),
            (4, vec!["#maths".to_string()])
        );
        assert_eq!(complete("close #", 7, names).1.len(), 2);
        // The reason is free text; nothing to complete.
        assert_eq!(complete("kick bob sp", 11, names), (9, Vec::new()));
        assert_eq!(
            complete("help an", 7, names),
            (5, vec!["announce".to_string()])
        );
        assert_eq!(complete("users x", 7, names), (6, Vec::new()));
    }

    #[test]
    fn tables_align_columns_and_help_lists_every_command() {
        assert_eq!(
            table(
                &["USER", "ROOMS"],
                vec![
                    vec!["al".into(), "#general".into()],
                    vec!["bérénice".into(), "".into()],
                ]
            ),
            vec!["USER      ROOMS", "al        #general", "bérénice"]
        );
        let h = help(None);
        for spec in COMMANDS {
            assert!(
                h.iter().any(|l| l.starts_with(spec.name)),
                "{} missing from help",
                spec.name
            );
        }
        assert_eq!(
            help(Some("lru")),
            vec![
                "COMMAND      ALIASES",
                "room <room>  lru      a room's members and their roles"
            ]
        );
        assert_eq!(
            help(Some("romo")),
            vec!["no command \"romo\"; did you mean \"room\"?"]
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration_text(Duration::from_secs(42)), "42s");
        assert_eq!(duration_text(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration_text(Duration::from_secs(7620)), "2h07m");
        assert_eq!(duration_text(Duration::from_secs(273_600)), "3d04h");
    }
}
