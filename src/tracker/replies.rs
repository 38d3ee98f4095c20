//! Every numeric and `FAIL` reply the tracker sends, defined once: its
//! code, its parameters and its text. Handlers call these functions; no
//! handler writes a code or a reply text of its own, so the same refusal
//! reads the same wherever it comes from (as sable's `messages/numeric.rs`).
//!
//! A [`Numeric`] carries the parameters after the target; the sender adds
//! the tracker's name as source and the recipient's nick (or `*` before
//! registration) as the first parameter.

use crate::proto::Message;
use crate::proto::numeric::*;
use crate::proto::sanitize;

/// A numeric reply, not yet addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numeric {
    pub code: &'static str,
    pub params: Vec<String>,
    /// Parameters are the tracker's own (ISUPPORT tokens), not quoted
    /// input: sent whole.
    pub verbatim: bool,
}

impl Numeric {
    fn new<const N: usize>(code: &'static str, params: [&str; N]) -> Numeric {
        Numeric {
            code,
            params: params.iter().map(|p| p.to_string()).collect(),
            verbatim: false,
        }
    }

    /// `:server <code> <target> <params...>`. Parameters are cleaned (error
    /// replies quote what the client sent, which must not carry terminal
    /// escapes back to it) and the middle ones cut, so a quoted name can
    /// never push the line past 512 bytes.
    pub fn to_message(&self, server: &str, target: &str) -> Message {
        let m = Message::new(self.code)
            .with_source(server.to_string())
            .param(target.to_string());
        if self.verbatim {
            return self.params.iter().fold(m, |m, p| m.param(p.clone()));
        }
        let params: Vec<&str> = self.params.iter().map(String::as_str).collect();
        sanitize::reply_params(m, &params)
    }
}

/// Numerics whose text is fixed: `name = CODE (quoted parameters) "text"`.
macro_rules! fixed_replies {
    ($( $(#[$doc:meta])* $name:ident = $code:ident ( $($arg:ident),* ) $text:literal ;)*) => {
        $(
            $(#[$doc])*
            pub fn $name($($arg: &str),*) -> Numeric {
                Numeric::new($code, [$($arg,)* $text])
            }
        )*
    };
}

fixed_replies! {
    unaway = RPL_UNAWAY () "You are no longer marked as being away";
    now_away = RPL_NOWAWAY () "You have been marked as being away";
    now_away_inactive = RPL_NOWAWAY () "You have been marked as being away (inactive)";
    end_of_who = RPL_ENDOFWHO (mask) "End of WHO list";
    end_of_whois = RPL_ENDOFWHOIS (nick) "End of /WHOIS list";
    end_of_whowas = RPL_ENDOFWHOWAS (nick) "End of WHOWAS";
    list_end = RPL_LISTEND () "End of /LIST";
    no_topic = RPL_NOTOPIC (room) "No topic is set";
    end_of_names = RPL_ENDOFNAMES (room) "End of /NAMES list";
    end_of_ban_list = RPL_ENDOFBANLIST (room) "End of room ban list";
    end_of_invite_list = RPL_ENDOFINVITELIST (room) "End of room invite list";
    end_of_motd = RPL_ENDOFMOTD () "End of /MOTD command.";
    end_of_info = RPL_ENDOFINFO () "End of /INFO list";
    you_are_oper = RPL_YOUREOPER () "You are now a tracker operator";
    try_again = RPL_TRYAGAIN (command) "Your earlier requests are still being answered; please wait a while and try again";
    end_of_help = RPL_ENDOFHELP (topic) "End of /HELP";
    whois_operator = RPL_WHOISOPERATOR (nick) "is a tracker operator";
    whois_actually = RPL_WHOISACTUALLY (nick, host) "is connecting from this IP";
    whois_account = RPL_WHOISACCOUNT (nick, account) "is logged in as";
    sasl_success = RPL_SASLSUCCESS () "SASL authentication successful";
    sasl_too_long = ERR_SASLTOOLONG () "SASL message too long";
    sasl_aborted = ERR_SASLABORTED () "SASL authentication aborted";
    sasl_already = ERR_SASLALREADY () "You have already authenticated using SASL";
    sasl_mechs = RPL_SASLMECHS (mechanisms) "are available SASL mechanisms";
    nick_reserved = ERR_NICKNAMEINUSE (nick) "is a registered account: log in to it (SASL) to use this name";

    no_such_nick = ERR_NOSUCHNICK (nick) "No such user";
    no_such_room = ERR_NOSUCHCHANNEL (room) "No such room";
    was_no_such_nick = ERR_WASNOSUCHNICK (nick) "There was no such user";
    too_many_rooms = ERR_TOOMANYCHANNELS (room) "You have joined too many rooms";
    too_many_targets = ERR_TOOMANYTARGETS (target) "Too many targets; the rest were ignored";
    no_text_to_send = ERR_NOTEXTTOSEND () "No text to send";
    input_too_long = ERR_INPUTTOOLONG () "Input line was too long";
    unknown_command = ERR_UNKNOWNCOMMAND (command) "Unknown command";
    no_nickname_given = ERR_NONICKNAMEGIVEN () "No nickname given";
    nickname_in_use = ERR_NICKNAMEINUSE (nick) "Nickname is already in use";
    user_not_in_room = ERR_USERNOTINCHANNEL (nick, room) "They are not in that room";
    not_on_room = ERR_NOTONCHANNEL (room) "You're not in that room";
    user_on_room = ERR_USERONCHANNEL (nick, room) "is already in that room";
    not_registered = ERR_NOTREGISTERED (command) "You have not registered";
    need_more_params = ERR_NEEDMOREPARAMS (command) "Not enough parameters";
    already_registered = ERR_ALREADYREGISTERED () "You may not reregister";
    password_mismatch = ERR_PASSWDMISMATCH () "Password incorrect";
    key_set = ERR_KEYSET (room) "Room key already set";
    room_is_full = ERR_CHANNELISFULL (room) "Cannot join room (+l): it is full";
    unknown_mode = ERR_UNKNOWNMODE (mode) "is not a room mode this tracker knows";
    invite_only = ERR_INVITEONLYCHAN (room) "Cannot join room (+i): invite only";
    banned = ERR_BANNEDFROMCHAN (room) "Cannot join room (+b): you are banned";
    bad_room_key = ERR_BADCHANNELKEY (room) "Cannot join room (+k): wrong or missing key";
    ban_list_full = ERR_BANLISTFULL (room, mask) "The room's ban list is full";
    no_privileges = ERR_NOPRIVILEGES () "Permission denied: you are not a tracker operator";
    cant_kill_server = ERR_CANTKILLSERVER () "You cannot kill the tracker";
    no_oper_host = ERR_NOOPERHOST () "No operator block for your name or password";
    umode_unknown_flag = ERR_UMODEUNKNOWNFLAG () "Unknown user mode flag";
    users_dont_match = ERR_USERSDONTMATCH () "Can't change mode for other users";
    help_not_found = ERR_HELPNOTFOUND (topic) "No help available on this topic";
    invalid_key = ERR_INVALIDKEY (room) "Key is not well-formed: 1 to 23 characters, no spaces or commas";
    invalid_cap_command = ERR_INVALIDCAPCMD (subcommand) "Invalid CAP command";
}

// ---- replies whose text is built --------------------------------------

/// `900`: logged in, with the mask the user has (or will have).
pub fn logged_in(mask: &str, account: &str) -> Numeric {
    Numeric::new(
        RPL_LOGGEDIN,
        [
            mask,
            account,
            &format!("You are now logged in as {account}"),
        ],
    )
}

/// `901`: no longer logged in (the account was deleted).
pub fn logged_out(mask: &str) -> Numeric {
    Numeric::new(RPL_LOGGEDOUT, [mask, "You are now logged out"])
}

/// `904`, with why: a wrong password, a throttled address, a store down.
pub fn sasl_fail(why: &str) -> Numeric {
    Numeric::new(
        ERR_SASLFAIL,
        [&format!("SASL authentication failed: {why}")],
    )
}

pub fn list_start() -> Numeric {
    Numeric::new(RPL_LISTSTART, ["Channel", "Users  Name"])
}

pub fn invalid_room_name(room: &str) -> Numeric {
    Numeric::new(
        ERR_NOSUCHCHANNEL,
        [
            room,
            &format!(
                "Invalid room name: # and up to {} more characters, without spaces, commas or colons",
                crate::proto::nick::CHANNEL_MAX - 1
            ),
        ],
    )
}

pub fn welcome(mask: &str) -> Numeric {
    Numeric::new(
        RPL_WELCOME,
        [&format!("Welcome to the confab tracker, {mask}")],
    )
}

pub fn your_host(server: &str, version: &str) -> Numeric {
    Numeric::new(
        RPL_YOURHOST,
        [&format!("Your host is {server}, running version {version}")],
    )
}

pub fn created(started: jiff::Timestamp) -> Numeric {
    Numeric::new(
        RPL_CREATED,
        [&format!(
            "This tracker was started {}",
            started.strftime("%Y-%m-%d %H:%M:%S UTC")
        )],
    )
}

pub fn my_info(server: &str, version: &str, user_modes: &str, room_modes: &str) -> Numeric {
    Numeric::new(RPL_MYINFO, [server, version, user_modes, room_modes])
}

/// One `005` line of ISUPPORT tokens (the caller splits long lists).
pub fn isupport(tokens: &[String]) -> Numeric {
    let mut params: Vec<String> = tokens.to_vec();
    params.push("are supported by this server".into());
    Numeric {
        code: RPL_ISUPPORT,
        params,
        verbatim: true,
    }
}

pub fn luser_client(users: usize) -> Numeric {
    Numeric::new(
        RPL_LUSERCLIENT,
        [&format!(
            "There are {users} users and 0 invisible on 1 server"
        )],
    )
}

pub fn luser_op(opers: usize) -> Numeric {
    Numeric::new(
        RPL_LUSEROP,
        [&opers.to_string(), "tracker operator(s) online"],
    )
}

pub fn luser_unknown(connecting: usize) -> Numeric {
    Numeric::new(
        RPL_LUSERUNKNOWN,
        [&connecting.to_string(), "unknown connection(s)"],
    )
}

pub fn luser_rooms(rooms: usize) -> Numeric {
    Numeric::new(RPL_LUSERCHANNELS, [&rooms.to_string(), "rooms formed"])
}

pub fn luser_me(users: usize) -> Numeric {
    Numeric::new(
        RPL_LUSERME,
        [&format!("I have {users} clients and 0 servers")],
    )
}

pub fn local_users(users: usize, max: usize) -> Numeric {
    let (u, m) = (users.to_string(), max.to_string());
    Numeric::new(
        RPL_LOCALUSERS,
        [&u, &m, &format!("Current local users {users}, max {max}")],
    )
}

pub fn global_users(users: usize, max: usize) -> Numeric {
    let (u, m) = (users.to_string(), max.to_string());
    Numeric::new(
        RPL_GLOBALUSERS,
        [&u, &m, &format!("Current global users {users}, max {max}")],
    )
}

pub fn motd_start(server: &str) -> Numeric {
    Numeric::new(RPL_MOTDSTART, [&format!("- {server} message of the day -")])
}

pub fn motd(line: &str) -> Numeric {
    Numeric::new(RPL_MOTD, [&format!("- {line}")])
}

pub fn away(nick: &str, text: &str) -> Numeric {
    Numeric::new(RPL_AWAY, [nick, text])
}

pub fn user_host(replies: &[String]) -> Numeric {
    Numeric::new(RPL_USERHOST, [&replies.join(" ")])
}

pub fn is_on(nicks: &[String]) -> Numeric {
    Numeric::new(RPL_ISON, [&nicks.join(" ")])
}

pub fn whois_user(nick: &str, user: &str, host: &str, realname: &str) -> Numeric {
    Numeric::new(RPL_WHOISUSER, [nick, user, host, "*", realname])
}

pub fn whowas_user(nick: &str, user: &str, host: &str, realname: &str) -> Numeric {
    Numeric::new(RPL_WHOWASUSER, [nick, user, host, "*", realname])
}

pub fn whois_host(nick: &str, ip: &str) -> Numeric {
    Numeric::new(
        RPL_WHOISHOST,
        [nick, &format!("is connecting from *@{ip} {ip}")],
    )
}

/// One `319` line: the rooms (with prefixes) must already fit a line.
pub fn whois_rooms(nick: &str, rooms: &str) -> Numeric {
    Numeric::new(RPL_WHOISCHANNELS, [nick, rooms])
}

pub fn whois_server(nick: &str, server: &str, info: &str) -> Numeric {
    Numeric::new(RPL_WHOISSERVER, [nick, server, info])
}

/// `320`: confab's status word (ACTIVE, BUSY, INACTIVE), which plain IRC
/// clients show as a WHOIS line.
pub fn whois_status(nick: &str, status: &str) -> Numeric {
    Numeric::new(RPL_WHOISSPECIAL, [nick, &format!("status {status}")])
}

pub fn whois_idle(nick: &str, idle_secs: u64, signon: i64) -> Numeric {
    Numeric::new(
        RPL_WHOISIDLE,
        [
            nick,
            &idle_secs.to_string(),
            &signon.to_string(),
            "seconds idle, signon time",
        ],
    )
}

pub fn list_item(room: &str, members: usize, topic: &str) -> Numeric {
    Numeric::new(RPL_LIST, [room, &members.to_string(), topic])
}

pub fn room_mode_is(room: &str, modes: &[String]) -> Numeric {
    let mut params = vec![room.to_string()];
    params.extend(modes.iter().cloned());
    Numeric {
        code: RPL_CHANNELMODEIS,
        params,
        verbatim: false,
    }
}

pub fn creation_time(room: &str, created: i64) -> Numeric {
    Numeric::new(RPL_CREATIONTIME, [room, &created.to_string()])
}

pub fn topic(room: &str, text: &str) -> Numeric {
    Numeric::new(RPL_TOPIC, [room, text])
}

pub fn topic_who_time(room: &str, setter: &str, at: i64) -> Numeric {
    Numeric::new(RPL_TOPICWHOTIME, [room, setter, &at.to_string()])
}

pub fn inviting(nick: &str, room: &str) -> Numeric {
    Numeric::new(RPL_INVITING, [nick, room])
}

pub fn invite_list(room: &str, nick: &str) -> Numeric {
    Numeric::new(RPL_INVITELIST, [room, nick])
}

pub fn version(version: &str, server: &str, comment: &str) -> Numeric {
    Numeric::new(RPL_VERSION, [version, server, comment])
}

/// One `352` WHO line.
pub fn who_reply(
    room: &str,
    user: &str,
    host: &str,
    server: &str,
    nick: &str,
    flags: &str,
    realname: &str,
) -> Numeric {
    Numeric::new(
        RPL_WHOREPLY,
        [
            room,
            user,
            host,
            server,
            nick,
            flags,
            &format!("0 {realname}"),
        ],
    )
}

/// One `354` WHOX line: the fields the client asked for, in order.
pub fn whox_reply(fields: Vec<String>) -> Numeric {
    Numeric {
        code: RPL_WHOSPCRPL,
        params: fields,
        verbatim: false,
    }
}

/// One `353` NAMES line (`=` public room, `@` secret room).
pub fn names_reply(kind: &str, room: &str, names: &str) -> Numeric {
    Numeric::new(RPL_NAMREPLY, [kind, room, names])
}

pub fn ban_list(room: &str, mask: &str, setter: &str, at: i64) -> Numeric {
    Numeric::new(RPL_BANLIST, [room, mask, setter, &at.to_string()])
}

pub fn info(line: &str) -> Numeric {
    Numeric::new(RPL_INFO, [line])
}

pub fn time(server: &str, now: jiff::Timestamp) -> Numeric {
    let text = now.strftime("%A %B %d %Y -- %H:%M:%S UTC").to_string();
    Numeric::new(RPL_TIME, [server, &now.as_second().to_string(), "0", &text])
}

pub fn help_start(topic: &str, line: &str) -> Numeric {
    Numeric::new(RPL_HELPSTART, [topic, line])
}

pub fn help_text(topic: &str, line: &str) -> Numeric {
    Numeric::new(RPL_HELPTXT, [topic, line])
}

pub fn umode_is(modes: &str) -> Numeric {
    Numeric::new(RPL_UMODEIS, [modes])
}

pub fn no_recipient(command: &str) -> Numeric {
    Numeric::new(
        ERR_NORECIPIENT,
        [&format!("No recipient given ({command})")],
    )
}

/// `404`, with why in plain words.
pub fn cannot_send(room: &str, why: &str) -> Numeric {
    Numeric::new(
        ERR_CANNOTSENDTOCHAN,
        [room, &format!("Cannot send to room: {why}")],
    )
}

pub fn erroneous_nickname(nick: &str, why: &str) -> Numeric {
    Numeric::new(
        ERR_ERRONEUSNICKNAME,
        [nick, &format!("Erroneous nickname: {why}")],
    )
}

/// `482`, saying who may do it.
pub fn chanop_needed(room: &str, who_may: &str) -> Numeric {
    Numeric::new(ERR_CHANOPRIVSNEEDED, [room, who_may])
}

pub fn bad_room_mask(room: &str) -> Numeric {
    Numeric::new(ERR_BADCHANMASK, [room, "Bad room mask"])
}

pub fn invalid_mode_param(room: &str, mode: char, param: &str, why: &str) -> Numeric {
    Numeric::new(ERR_INVALIDMODEPARAM, [room, &mode.to_string(), param, why])
}

// ---- FAIL replies (IRCv3 standard replies) ----------------------------

/// `FAIL <command> <code> [context...] :<text>` from the tracker.
pub fn fail(server: &str, command: &str, code: &str, context: &[&str], text: &str) -> Message {
    let mut m = Message::new("FAIL")
        .with_source(server.to_string())
        .param(command.to_string())
        .param(code.to_string());
    for c in context {
        m = m.param(sanitize::for_display(sanitize::clip(
            c,
            sanitize::QUOTE_MAX,
        )));
    }
    m.param(text.to_string())
}

pub fn fail_invalid_utf8(server: &str) -> Message {
    fail(
        server,
        "*",
        "INVALID_UTF8",
        &[],
        "Line was not valid UTF-8 and was ignored",
    )
}

pub fn fail_invalid_message(server: &str, why: &str) -> Message {
    fail(
        server,
        "*",
        "INVALID_MESSAGE",
        &[],
        &format!("Line ignored: {why}"),
    )
}

pub fn fail_cannot_record(server: &str, command: &str, target: &str, excerpt: &str) -> Message {
    fail(
        server,
        command,
        "CANNOT_RECORD",
        &[target],
        &format!("Not delivered: the tracker cannot write its chat log ({excerpt})"),
    )
}

/// `#general` cannot be left, and says what leaves the tracker instead.
pub fn fail_cannot_leave_general(server: &str, command: &str, room: &str) -> Message {
    fail(
        server,
        command,
        "CANNOT_LEAVE",
        &[room],
        "Everyone stays in #general, the group room; to leave the tracker, quit (/quit, or exit in confab's client)",
    )
}

/// A tracker operator closed a room they were not in: the KICKs went to
/// its members, this to them.
pub fn closed_for_outsider(server: &str, nick: &str, room: &str, members: usize) -> Message {
    Message::new("NOTICE")
        .with_source(server.to_string())
        .param(nick.to_string())
        .param(format!(
            "{room} is closed; its {members} member(s) were told and removed"
        ))
}

/// An away text that would pass for the tracker's own INACTIVE one.
pub fn fail_away_reserved(server: &str, why: &str) -> Message {
    fail(
        server,
        "AWAY",
        crate::proto::status::RESERVED_AWAY_CODE,
        &[],
        why,
    )
}

/// `REGISTER` done: the account exists and the user is logged in to it.
pub fn register_success(server: &str, nick: &str, account: &str) -> Message {
    Message::new("REGISTER")
        .with_source(server.to_string())
        .param("SUCCESS")
        .param(account.to_string())
        .param(format!(
            "Account {account} created; you are logged in. Next time, log in with your account name and this password (confab: client --account {nick})"
        ))
}

/// A refused `REGISTER` (draft/account-registration's codes).
pub fn fail_register(server: &str, code: &str, account: &str, why: &str) -> Message {
    fail(server, "REGISTER", code, &[account], why)
}

/// A refused `ACCOUNT` subcommand.
pub fn fail_account(server: &str, code: &str, context: &[&str], why: &str) -> Message {
    fail(server, "ACCOUNT", code, context, why)
}

/// `#general` cannot be closed.
pub fn fail_cannot_close_general(server: &str, room: &str) -> Message {
    fail(
        server,
        "CLOSE",
        "CANNOT_CLOSE",
        &[room],
        "#general is the group room everyone is in; it cannot be closed",
    )
}

/// A direct session (DCC offer) refused by the tracker's `--p2p` policy;
/// nothing reached `target`.
pub fn fail_direct_session(
    server: &str,
    command: &str,
    target: &str,
    why: super::policy::DirectRefusal,
) -> Message {
    use super::policy::DirectRefusal;
    match why {
        DirectRefusal::Off => fail(
            server,
            command,
            "DIRECT_SESSIONS_OFF",
            &[target],
            "Direct sessions (DCC) are turned off on this tracker; talk through it with direct messages instead (recorded)",
        ),
        DirectRefusal::RelayOnly => fail(
            server,
            command,
            "DIRECT_SESSIONS_RELAY_ONLY",
            &[target],
            "This tracker allows only relayed sessions: no direct connection (DCC); the session goes through the tracker as direct messages (recorded)",
        ),
    }
}

/// The reply to a line the connection could not accept, the same before
/// and after registration.
pub fn bad_line(server: &str, target: &str, error: &super::shared::BadLine) -> Message {
    use super::shared::BadLine;
    match error {
        BadLine::TooLong => input_too_long().to_message(server, target),
        BadLine::UnknownCommand(c) => unknown_command(c).to_message(server, target),
        BadLine::InvalidUtf8 => fail_invalid_utf8(server),
        BadLine::Malformed(why) => fail_invalid_message(server, why),
    }
}

/// The "while you were away" line before a room's or conversation's
/// unread lines at login (`Unread: ...` for a connection joining an
/// account already connected). `shown`: the room, or the other person.
pub fn unread_summary(
    attached: bool,
    direct: bool,
    shown: &str,
    count: u64,
    mentions: u64,
    sent: usize,
) -> String {
    let head = if attached {
        "Unread"
    } else {
        "While you were away"
    };
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let mut text = if direct {
        format!(
            "{head}: {} from {shown}",
            plural(count, "direct message", "direct messages")
        )
    } else {
        format!(
            "{head}: {} in {shown}",
            plural(count, "message", "messages")
        )
    };
    if mentions > 0 {
        text.push_str(&format!(
            ", {} you",
            if mentions == 1 {
                "1 mentions".to_string()
            } else {
                format!("{mentions} mention")
            }
        ));
    }
    if (sent as u64) < count {
        text.push_str(&format!(" (the last {sent} follow; page back for more)"));
    }
    text
}

/// To the sender of a direct message to a registered account that is not
/// connected.
pub fn held_for_later(nick: &str) -> String {
    format!(
        "{nick} is not connected; your message is kept and will be delivered when {nick} logs in"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_are_addressed_cleaned_and_cut() {
        let m = no_such_nick("b\x1b[31mob").to_message("confab", "alice");
        assert_eq!(m.to_line(), ":confab 401 alice bob :No such user\r\n");
        let long = "x".repeat(400);
        let line = need_more_params(&long)
            .to_message("confab", "alice")
            .to_line();
        assert!(line.len() < 120, "quoted input is cut: {line}");
        assert_eq!(
            need_more_params("JOIN").to_message("confab", "*").to_line(),
            ":confab 461 * JOIN :Not enough parameters\r\n"
        );
    }
}
