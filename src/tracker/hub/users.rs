//! Users: registration and the welcome burst, NICK, AWAY and statuses,
//! idle detection, leaving.

use std::collections::BTreeSet;

use super::super::replies;
use super::super::shared::{ConnId, RegisterOutcome};
use super::chat::{
    AWAY_LEN, Chat, KICK_LEN, MAX_BANS, MAX_MODES, MAX_ROOMS_PER_USER, MAX_TARGETS, TOPIC_LEN,
};
use super::state::{GENERAL, Link, User, irc_host};
use crate::proto::Message;
use crate::proto::caps::Caps;
use crate::proto::nick::{self, casefold};
use crate::proto::sanitize;
use crate::proto::status;

/// What registration needs of a connection (the handle stays with the
/// runtime).
pub struct NewUser {
    pub nick: String,
    pub user: String,
    pub realname: String,
    pub ip: std::net::IpAddr,
    pub caps: Caps,
    pub account: Option<String>,
}

/// ISUPPORT tokens per `005` line.
const ISUPPORT_PER_LINE: usize = 12;

impl Chat {
    pub fn register(&mut self, id: ConnId, new: NewUser) -> RegisterOutcome {
        if self.stopping {
            return RegisterOutcome::ShuttingDown;
        }
        // An account already connected: this connection joins that user.
        if let Some(user) = new.account.as_deref().and_then(|a| self.account_online(a)) {
            self.attach(user, id, new.caps, new.ip);
            return RegisterOutcome::Welcome;
        }
        let key = casefold(&new.nick);
        if self.state.nicks.contains_key(&key) {
            return RegisterOutcome::NickInUse;
        }
        if self.reserved(&new.nick, new.account.as_deref()) {
            return RegisterOutcome::NickReserved;
        }
        self.state.nicks.insert(key, id);
        self.state.users.insert(
            id,
            User {
                nick: new.nick,
                user: new.user,
                realname: new.realname,
                ip: new.ip,
                links: vec![Link {
                    conn: id,
                    caps: new.caps,
                }],
                away: None,
                away_auto: false,
                signon: self.clock.wall,
                last_active: self.clock.mono,
                rooms: BTreeSet::new(),
                oper: None,
                account: new.account,
                reads_from: Default::default(),
            },
        );
        if let Some(a) = self.state.users.get(&id).and_then(|u| u.account.clone()) {
            self.accounts.online.insert(casefold(&a), id);
        }
        self.state.max_users = self.state.max_users.max(self.state.users.len());
        self.had_member = true;
        self.membership_changes += 1;
        self.console_came(id);
        self.welcome(id);
        self.join(id, GENERAL, None);
        self.history_welcome(id);
        RegisterOutcome::Welcome
    }

    /// The ISUPPORT tokens (`005`), from the limits the handlers enforce.
    pub fn isupport_tokens(&self) -> Vec<String> {
        let mut tokens = vec![
            format!("AWAYLEN={AWAY_LEN}"),
            "CASEMAPPING=rfc1459".into(),
            format!("CHANLIMIT=#:{MAX_ROOMS_PER_USER}"),
            "CHANMODES=b,k,l,imnst".into(),
            format!("CHANNELLEN={}", nick::CHANNEL_MAX),
            "CHANTYPES=#".into(),
            // Vendor token: what `--p2p` allows (allow, relay-only, off).
            format!("CONFAB_P2P={}", self.p2p.policy),
            format!("KICKLEN={KICK_LEN}"),
            format!("MAXLIST=b:{MAX_BANS}"),
            format!("MAXTARGETS={MAX_TARGETS}"),
            format!("MODES={MAX_MODES}"),
            format!("NETWORK={}", self.config.server_name),
            format!("NICKLEN={}", nick::NICK_MAX),
            "PREFIX=(qov)~@+".into(),
            "SAFELIST".into(),
            format!(
                "TARGMAX=PRIVMSG:{t},NOTICE:{t},TAGMSG:{t},JOIN:{t},PART:{t},NAMES:{t},LIST:{t},KICK:{t},WHOIS:1,WHOWAS:1,USERHOST:5",
                t = MAX_TARGETS
            ),
            format!("TOPICLEN={TOPIC_LEN}"),
            "USERLEN=16".into(),
            "UTF8ONLY".into(),
            "WHOX".into(),
        ];
        if self.history.on {
            tokens.push(format!("CHATHISTORY={}", super::history::PAGE_MAX));
            tokens.push("MSGREFTYPES=msgid,timestamp".into());
            tokens.sort();
        }
        tokens
    }

    fn welcome(&mut self, id: ConnId) {
        let mask = self.mask_of(id);
        let server = self.config.server_name.clone();
        let version = concat!("confab-", env!("CARGO_PKG_VERSION"));
        self.reply(id, replies::welcome(&mask));
        self.reply(id, replies::your_host(&server, version));
        self.reply(id, replies::created(self.config.started));
        self.reply(id, replies::my_info(&server, version, "io", "bklimnostv"));
        let tokens = self.isupport_tokens();
        for chunk in tokens.chunks(ISUPPORT_PER_LINE) {
            self.reply(id, replies::isupport(chunk));
        }
        self.lusers(id);
        self.motd(id);
    }

    pub(super) fn motd(&mut self, id: ConnId) {
        let nick = self.nick_of(id);
        let server = self.config.server_name.clone();
        let idle = self.config.idle_timeout.as_secs();
        let idle_text = if idle.is_multiple_of(60) {
            format!("{} min", idle / 60)
        } else {
            format!("{idle} s")
        };
        let lines = [
            format!("Welcome to confab, {nick}."),
            format!(
                "This tracker records the whole conversation, direct messages included, in its chat log ({}), which the operator can read.",
                self.config.log_path_shown
            ),
            format!(
                "You are in {GENERAL}, the group room everyone is in. Send HELP (or /help in confab's client) for commands."
            ),
            "Rooms: JOIN #name opens one (you become its founder; only you or a tracker operator can CLOSE it).".to_string(),
            format!(
                "Status: ACTIVE; BUSY while you are AWAY; INACTIVE after {idle_text} without activity, until you act again."
            ),
            self.p2p_welcome_line(),
        ];
        self.reply(id, replies::motd_start(&server));
        for l in &lines {
            self.reply(id, replies::motd(l));
        }
        self.reply(id, replies::end_of_motd());
    }

    /// A second (third...) connection logged in to the account of `user`,
    /// who is connected: it becomes one more connection of that user, not
    /// another member (multiclient). It gets the welcome under the user's
    /// nick, the user's rooms as if just joined (JOIN, topic, names), the
    /// status, and then, from the store, the read markers and what is
    /// unread. Nobody else sees anything: the user was already here.
    fn attach(&mut self, user: ConnId, conn: ConnId, caps: Caps, ip: std::net::IpAddr) {
        let Some(u) = self.state.users.get_mut(&user) else {
            return;
        };
        u.links.push(Link { conn, caps });
        let (nick, mask, away, n) = (u.nick.clone(), u.mask(), u.away.clone(), u.links.len());
        let rooms: Vec<String> = u.rooms.iter().cloned().collect();
        self.attached.insert(conn, user);
        self.acting = Some(conn);
        self.record("attach", &format!("{nick} {n} ({})", irc_host(ip)));
        self.welcome(user);
        for key in rooms {
            let Some(name) = self.state.rooms.get(&key).map(|r| r.name.clone()) else {
                continue;
            };
            self.send_msg(
                user,
                Message::new("JOIN")
                    .with_source(mask.clone())
                    .param(name.clone()),
            );
            self.send_marker(user, &name);
            self.send_topic(user, &name);
            self.names(user, &name);
        }
        if away.is_some() {
            self.reply(user, replies::now_away());
        }
        self.history_welcome(user);
    }

    /// Connection `conn` is gone (or asked to go): one of several of its
    /// user's connections is detached, the last one removes the user.
    pub fn leave(&mut self, conn: ConnId, reason: &str) {
        self.gone.remove(&conn);
        let user = self.act_for(conn);
        let Some(u) = self.state.users.get_mut(&user) else {
            return;
        };
        if !u.links.iter().any(|l| l.conn == conn) {
            return;
        }
        if u.links.len() == 1 {
            return self.remove_user(user, reason);
        }
        u.links.retain(|l| l.conn != conn);
        let (nick, ip, n) = (u.nick.clone(), u.ip, u.links.len());
        let reason = sanitize::for_display(reason);
        self.record("detach", &format!("{nick} {n} ({reason})"));
        self.send_msg(
            user,
            Message::new("ERROR").param(format!("Closing link: {ip} ({reason})")),
        );
        self.attached.remove(&conn);
        self.long_replies.remove(&conn);
        self.out.removed.push(conn);
    }

    /// Removes a user: everyone who shared a room hears `reason` as a QUIT;
    /// each of the user's connections gets `ERROR` and is closed after
    /// delivery.
    pub fn remove_user(&mut self, id: ConnId, reason: &str) {
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let reason = sanitize::for_display(reason);
        let (nick, ip, mask) = (u.nick.clone(), u.ip, u.mask());
        let others = self.state.audience(id, false);
        self.record("leave", &format!("{nick} ({reason})"));
        self.sessions_user_left(id);
        self.console_left(id, &reason);
        let mut quit = self.outgoing(Message::new("QUIT").with_source(mask).param(reason.clone()));
        self.broadcast(&others, &mut quit, |_| true);
        self.send_msg(
            id,
            Message::new("ERROR").param(format!("Closing link: {ip} ({reason})")),
        );
        let Some(u) = self.state.users.remove(&id) else {
            return;
        };
        if let Some(a) = &u.account {
            self.account_went(a, &u.rooms);
        }
        self.state.nicks.remove(&casefold(&u.nick));
        for key in &u.rooms {
            if let Some(room) = self.state.rooms.get_mut(key) {
                room.remove(id);
            }
        }
        self.state
            .rooms
            .retain(|_, room| !room.members.is_empty() || room.outlives_members());
        self.state.remember_departed(&u, self.clock.wall);
        for l in &u.links {
            self.long_replies.remove(&l.conn);
            self.attached.remove(&l.conn);
            self.out.removed.push(l.conn);
        }
        self.membership_changes += 1;
    }

    pub(super) fn nick(&mut self, id: ConnId, new: &str) {
        if new.is_empty() {
            return self.reply(id, replies::no_nickname_given());
        }
        if let Err(e) = nick::validate_nick(new) {
            return self.reply(id, replies::erroneous_nickname(new, &e.to_string()));
        }
        let key = casefold(new);
        if let Some(owner) = self.state.nicks.get(&key)
            && *owner != id
        {
            return self.reply(id, replies::nickname_in_use(new));
        }
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        if u.nick == new {
            return;
        }
        if self.reserved(new, u.account.as_deref()) {
            return self.reply(id, replies::nick_reserved(new));
        }
        let (old, mask) = (u.nick.clone(), u.mask());
        self.record("nick", &format!("{old} -> {new}"));
        self.sessions_renamed(id, new);
        let recipients = self.state.audience(id, true);
        let mut out = self.outgoing(Message::new("NICK").with_source(mask).param(new));
        self.broadcast(&recipients, &mut out, |_| true);
        self.state.nicks.remove(&casefold(&old));
        self.state.nicks.insert(key, id);
        if let Some(u) = self.state.users.get_mut(&id) {
            u.nick = new.to_string();
        }
    }

    pub(super) fn away(&mut self, id: ConnId, text: Option<&str>) {
        let now = self.clock.mono;
        let Some(u) = self.state.users.get_mut(&id) else {
            return;
        };
        u.last_active = now;
        let was = u.away.clone();
        match text {
            Some(t) => {
                // Kept as the user typed it (cleaned, cut to AWAYLEN
                // bytes); only the tracker's INACTIVE form is refused.
                let reason = match status::user_away(&sanitize::for_display(t)) {
                    Ok(r) => r,
                    Err(refused) => {
                        let fail = replies::fail_away_reserved(
                            &self.config.server_name,
                            &refused.to_string(),
                        );
                        return self.send_msg(id, fail);
                    }
                };
                u.away = Some(sanitize::clip(&reason, AWAY_LEN).to_string());
                u.away_auto = false;
            }
            None => {
                u.away = None;
                u.away_auto = false;
            }
        }
        let changed = was != u.away;
        if u.away.is_some() {
            self.reply(id, replies::now_away());
        } else {
            self.reply(id, replies::unaway());
        }
        if changed {
            self.status_changed(id, false);
        }
    }

    /// Records and announces a status change. `tell_self`: the tracker made
    /// the change, so the user's own client must hear about it too (with
    /// 305/306 as well). A client with both `away-notify` and
    /// `echo-message` also gets its own `AWAY` back when it set the status
    /// itself, as the tracker stored it (cleaned, cut to AWAYLEN): that is
    /// how confab's client shows the user's status as the tracker sees it.
    pub(super) fn status_changed(&mut self, id: ConnId, tell_self: bool) {
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let (nick, mask, away, status) = (u.nick.clone(), u.mask(), u.away.clone(), u.status());
        let caps = self.caps_of(id);
        let echo_self = tell_self || (caps.away_notify && caps.echo_message);
        let detail = match &away {
            Some(r) => format!("{nick} {status} ({r})"),
            None => format!("{nick} {status}"),
        };
        self.record("status", &detail);
        let mut m = Message::new("AWAY").with_source(mask);
        if let Some(r) = &away {
            m = m.param(r.clone());
        }
        let recipients = self.state.audience(id, echo_self);
        let mut out = self.outgoing(m);
        self.broadcast(&recipients, &mut out, |c| c.away_notify);
        if tell_self {
            match away {
                Some(_) => self.reply(id, replies::now_away_inactive()),
                None => self.reply(id, replies::unaway()),
            }
        }
    }

    /// The user did something a person does: clears tracker-set INACTIVE.
    pub(super) fn touch(&mut self, id: ConnId) {
        let now = self.clock.mono;
        let Some(u) = self.state.users.get_mut(&id) else {
            return;
        };
        u.last_active = now;
        if u.away_auto {
            u.away = None;
            u.away_auto = false;
            self.status_changed(id, true);
        }
    }

    /// Marks INACTIVE whoever has been idle for the idle timeout (zero:
    /// never).
    pub fn tick(&mut self) {
        let timeout = self.config.idle_timeout;
        if timeout.is_zero() {
            return;
        }
        let now = self.clock.mono;
        let mut idle: Vec<ConnId> = self
            .state
            .users
            .iter()
            .filter(|(_, u)| {
                u.away.is_none() && now.saturating_duration_since(u.last_active) >= timeout
            })
            .map(|(id, _)| *id)
            .collect();
        idle.sort();
        for id in idle {
            if let Some(u) = self.state.users.get_mut(&id) {
                let secs = now.saturating_duration_since(u.last_active).as_secs();
                u.away = Some(status::inactive_reason(secs));
                u.away_auto = true;
            }
            self.status_changed(id, true);
        }
    }
}
