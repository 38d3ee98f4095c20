//! Accounts in the chat: `REGISTER`, `ACCOUNT`, who may use a registered
//! name, and the answers of the account jobs.
//!
//! The hub decides and never waits: hashing, checking a password and the
//! store run as [`AccountJob`]s outside it (the runtime in `mod.rs` spawns
//! them; in-process tests run them), and their [`AccountDone`] comes back
//! as a request like any other.
//!
//! A registered name is only for a connection logged in to that account
//! (SASL at connect): anyone else is refused it at login and at `NICK` with
//! `433`, which IRC clients answer by trying another name. A second login
//! of an account that is connected joins that user as one more connection
//! (`users.rs`, `attach`).

use std::collections::HashSet;

use super::super::accounts::{
    AccountDone, AccountFailure, AccountJob, LoginRefused, password_rule,
};
use super::super::policy;
use super::super::replies;
use super::super::shared::ConnId;
use super::chat::Chat;
use crate::proto::Message;
use crate::proto::nick::casefold;
use zeroize::Zeroizing;

/// What the hub knows of accounts: whether the tracker keeps them, and
/// every registered name (casefolded), loaded at start and kept current.
#[derive(Default)]
pub struct Accounts {
    pub enabled: bool,
    pub names: HashSet<String>,
    /// Names being created now (`REGISTER` sent, the store not done yet):
    /// a second `REGISTER` of one is refused at once.
    creating: HashSet<String>,
    /// The connected user logged in to each account (casefolded): a second
    /// login joins that user.
    pub online: std::collections::HashMap<String, ConnId>,
}

impl Chat {
    /// The connected user logged in to `account`, if any.
    pub(super) fn account_online(&self, account: &str) -> Option<ConnId> {
        self.accounts
            .online
            .get(&casefold(account))
            .copied()
            .filter(|id| self.state.users.contains_key(id))
    }

    /// The last connection of `account`'s user is gone: the time is kept
    /// (what it missed is counted from there), and its read markers are
    /// let go from memory.
    pub(super) fn account_went(
        &mut self,
        account: &str,
        rooms: &std::collections::BTreeSet<String>,
    ) {
        let folded = casefold(account);
        self.accounts.online.remove(&folded);
        self.history_account_went(&folded, rooms);
    }

    /// Turns accounts on, with the names registered so far.
    pub fn enable_accounts(&mut self, names: impl IntoIterator<Item = String>) {
        self.accounts.enabled = true;
        self.accounts.names = names.into_iter().collect();
    }

    /// Whether `nick` is a registered account that `account` (the user's
    /// login, if any) is not: such a name is refused.
    pub(super) fn reserved(&self, nick: &str, account: Option<&str>) -> bool {
        let folded = casefold(nick);
        self.accounts.names.contains(&folded) && account.map(casefold) != Some(folded)
    }

    fn account_of(&self, id: ConnId) -> Option<String> {
        self.state.users.get(&id).and_then(|u| u.account.clone())
    }

    fn fail_register(&mut self, id: ConnId, code: &str, account: &str, why: &str) {
        let m = replies::fail_register(&self.config.server_name, code, account, why);
        self.send_msg(id, m);
    }

    fn fail_account(&mut self, id: ConnId, code: &str, context: &[&str], why: &str) {
        let m = replies::fail_account(&self.config.server_name, code, context, why);
        self.send_msg(id, m);
    }

    fn server_notice(&mut self, id: ConnId, text: &str) {
        let m = Message::new("NOTICE")
            .with_source(self.config.server_name.clone())
            .param(self.nick_of(id))
            .param(text.to_string());
        self.send_msg(id, m);
    }

    /// `REGISTER <account|*> <email|*> <password>`.
    pub(super) fn register_account(&mut self, id: ConnId, msg: &Message) {
        let (wanted, password) = (msg.params[0].as_str(), msg.params[2].as_str());
        let nick = self.nick_of(id);
        let shown = if wanted == "*" { nick.as_str() } else { wanted };
        if !self.accounts.enabled {
            return self.fail_register(
                id,
                "TEMPORARILY_UNAVAILABLE",
                shown,
                "This tracker keeps no accounts",
            );
        }
        if self.account_of(id).is_some() {
            return self.fail_register(
                id,
                "ALREADY_AUTHENTICATED",
                shown,
                "You are logged in to an account already",
            );
        }
        if casefold(shown) != casefold(&nick) {
            return self.fail_register(
                id,
                "ACCOUNT_NAME_MUST_BE_NICK",
                shown,
                "An account takes your current name: change to it first (NICK), or use *",
            );
        }
        let folded = casefold(&nick);
        if self.accounts.names.contains(&folded) || self.accounts.creating.contains(&folded) {
            return self.fail_register(
                id,
                "ACCOUNT_EXISTS",
                &nick,
                "That name is a registered account already",
            );
        }
        if let Some(why) = password_rule(password) {
            return self.fail_register(id, "WEAK_PASSWORD", &nick, why);
        }
        self.accounts.creating.insert(folded);
        self.out.jobs.push(AccountJob::Create {
            conn: id,
            account: nick,
            password: Zeroizing::new(password.to_string()),
        });
    }

    /// `ACCOUNT PASSWORD|DELETE|RESET ...`.
    pub(super) fn account_command(&mut self, id: ConnId, msg: &Message) {
        let sub = msg.params[0].to_ascii_uppercase();
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        if !self.accounts.enabled {
            return self.fail_account(
                id,
                "TEMPORARILY_UNAVAILABLE",
                &[&sub],
                "This tracker keeps no accounts",
            );
        }
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let (ip, is_oper, own) = (u.ip, u.oper.is_some(), u.account.clone());
        let needs = match sub.as_str() {
            "PASSWORD" | "RESET" => 3,
            "DELETE" => 2,
            _ => {
                return self.fail_account(
                    id,
                    "INVALID_PARAMS",
                    &[&sub],
                    "ACCOUNT PASSWORD <current> <new>, ACCOUNT DELETE <password> or ACCOUNT RESET <account> <new>",
                );
            }
        };
        if msg.params.len() < needs {
            return self.reply(id, replies::need_more_params("ACCOUNT"));
        }
        if sub == "RESET" {
            if let Err(n) = policy::can_reset_account(is_oper) {
                return self.reply(id, n);
            }
            let target = p(1).to_string();
            if !self.accounts.names.contains(&casefold(&target)) {
                return self.fail_account(
                    id,
                    "NO_SUCH_ACCOUNT",
                    &[&sub, &target],
                    "No such account",
                );
            }
            if let Some(why) = password_rule(p(2)) {
                return self.fail_account(id, "WEAK_PASSWORD", &[&sub], why);
            }
            self.out.jobs.push(AccountJob::Reset {
                conn: id,
                account: target,
                new: Zeroizing::new(p(2).to_string()),
            });
            return;
        }
        let Some(account) = own else {
            return self.fail_account(
                id,
                "NOT_LOGGED_IN",
                &[&sub],
                "You are not logged in to an account",
            );
        };
        if sub == "PASSWORD" {
            if let Some(why) = password_rule(p(2)) {
                return self.fail_account(id, "WEAK_PASSWORD", &[&sub], why);
            }
            self.out.jobs.push(AccountJob::ChangePassword {
                conn: id,
                account,
                current: Zeroizing::new(p(1).to_string()),
                new: Zeroizing::new(p(2).to_string()),
                ip,
            });
        } else {
            self.out.jobs.push(AccountJob::Delete {
                conn: id,
                account,
                password: Zeroizing::new(p(1).to_string()),
                ip,
            });
        }
    }

    /// `AUTHENTICATE` after registration: SASL happens while connecting.
    pub(super) fn authenticate_registered(&mut self, id: ConnId) {
        if self.account_of(id).is_some() {
            self.reply(id, replies::sasl_already());
        } else {
            self.reply(
                id,
                replies::sasl_fail("log in to an account while connecting (SASL), not after"),
            );
        }
    }

    /// An account job ended.
    pub fn account_done(&mut self, done: AccountDone) {
        match done {
            AccountDone::Created {
                conn,
                account,
                result,
            } => {
                let folded = casefold(&account);
                self.accounts.creating.remove(&folded);
                match result {
                    Ok(()) => {
                        self.accounts.names.insert(folded.clone());
                        self.record("account", &format!("{account} registered"));
                        self.register_founded_rooms(conn, &account);
                        if let Some(u) = self.state.users.get_mut(&conn) {
                            u.account = Some(account.clone());
                            self.accounts.online.insert(folded.clone(), conn);
                            let mask = u.mask();
                            let nick = u.nick.clone();
                            let m = replies::register_success(
                                &self.config.server_name,
                                &nick,
                                &account,
                            );
                            self.send_msg(conn, m);
                            self.reply(conn, replies::logged_in(&mask, &account));
                            self.history_account_began(conn);
                        }
                    }
                    Err(e) => {
                        let code = failure_code(&e, "ACCOUNT_EXISTS");
                        self.fail_register(conn, code, &account, &capitalized(&e));
                    }
                }
            }
            AccountDone::PasswordChanged {
                conn,
                account,
                result,
            } => match result {
                Ok(()) => {
                    self.record("account", &format!("{account} changed its password"));
                    self.server_notice(conn, "Your account's password was changed");
                }
                Err(e) => {
                    let code = failure_code(&e, "NO_SUCH_ACCOUNT");
                    self.fail_account(conn, code, &["PASSWORD"], &capitalized(&e));
                }
            },
            AccountDone::Reset {
                conn,
                account,
                result,
            } => match result {
                Ok(()) => {
                    let by = self.nick_of(conn);
                    self.record("account", &format!("{account}'s password reset by {by}"));
                    self.server_notice(
                        conn,
                        &format!("The password of account {account} was reset"),
                    );
                }
                Err(e) => {
                    let code = failure_code(&e, "NO_SUCH_ACCOUNT");
                    self.fail_account(conn, code, &["RESET", &account], &capitalized(&e));
                }
            },
            AccountDone::Deleted {
                conn,
                account,
                result,
            } => match result {
                Ok(()) => {
                    let folded = casefold(&account);
                    self.accounts.names.remove(&folded);
                    self.accounts.online.remove(&folded);
                    self.record("account", &format!("{account} deleted"));
                    self.unregister_rooms_of(&folded);
                    // Everyone logged in to it is logged out (a second
                    // login too).
                    let logged_in: Vec<ConnId> = self
                        .state
                        .users
                        .iter()
                        .filter(|(_, u)| u.account.as_deref().map(casefold) == Some(folded.clone()))
                        .map(|(id, _)| *id)
                        .collect();
                    for id in logged_in {
                        if let Some(u) = self.state.users.get_mut(&id) {
                            u.account = None;
                            let mask = u.mask();
                            self.reply(id, replies::logged_out(&mask));
                        }
                    }
                    self.server_notice(
                        conn,
                        &format!("Account {account} and everything it kept were deleted; you are logged out"),
                    );
                }
                Err(e) => {
                    let code = failure_code(&e, "NO_SUCH_ACCOUNT");
                    self.fail_account(conn, code, &["DELETE"], &capitalized(&e));
                }
            },
        }
    }
}

/// The `FAIL` code for a failed job; `other` for the failure that has its
/// own code in that command.
fn failure_code(e: &AccountFailure, other: &'static str) -> &'static str {
    match e {
        AccountFailure::Exists | AccountFailure::NoSuchAccount => other,
        AccountFailure::Refused(LoginRefused::Wrong) => "WRONG_PASSWORD",
        AccountFailure::Refused(LoginRefused::Throttled) => "RATE_LIMITED",
        AccountFailure::Refused(LoginRefused::StoreDown) | AccountFailure::Store(_) => {
            "TEMPORARILY_UNAVAILABLE"
        }
    }
}

fn capitalized(e: &AccountFailure) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}
