//! Accounts in the hub: REGISTER, ACCOUNT, registered names, with the
//! account jobs run against a real store in memory.

use std::sync::Arc;
use std::time::Instant;

use super::Rig;
use crate::proto::Message;
use crate::proto::caps::Caps;
use crate::store::{Store, StoreHandle};
use crate::tracker::accounts::AccountGate;
use crate::tracker::hub::users::NewUser;
use crate::tracker::password::GuessBudget;
use crate::tracker::shared::{ConnId, RegisterOutcome};

fn gate() -> AccountGate {
    let (store, _) = StoreHandle::spawn(Store::in_memory().unwrap()).unwrap();
    AccountGate::new(
        store,
        Arc::new(GuessBudget::new(Default::default(), Instant::now())),
    )
}

impl Rig {
    /// Runs the account jobs the hub asked for and hands back their ends.
    async fn run_jobs(&mut self, gate: &AccountGate) {
        while !self.chat.out.jobs.is_empty() {
            for job in std::mem::take(&mut self.chat.out.jobs) {
                let done = gate.run(job).await;
                self.chat.account_done(done);
            }
        }
    }

    fn login(&mut self, nick: &str, account: Option<&str>) -> (RegisterOutcome, ConnId) {
        let id = self.next;
        self.next += 1;
        let outcome = self.chat.register(
            id,
            NewUser {
                nick: nick.into(),
                user: nick.into(),
                realname: nick.into(),
                ip: std::net::IpAddr::from([127, 0, 0, 1]),
                caps: Caps::default(),
                account: account.map(str::to_string),
            },
        );
        self.chat.out.pending.clear();
        (outcome, id)
    }

    fn line(&mut self, id: ConnId, line: &str) {
        self.chat.line(id, Message::parse(line).expect("parses"));
    }
}

#[tokio::test]
async fn register_log_in_and_keep_the_name() {
    let gate = gate();
    let mut rig = Rig::new();
    rig.chat.enable_accounts(Vec::<String>::new());
    let alice = rig.user("alice");

    rig.line(alice, "REGISTER * * short");
    rig.line(alice, "REGISTER bob * :long enough");
    assert_eq!(
        rig.got(alice),
        [
            ":confab FAIL REGISTER WEAK_PASSWORD alice :the password must be at least 8 characters",
            ":confab FAIL REGISTER ACCOUNT_NAME_MUST_BE_NICK bob :An account takes your current name: change to it first (NICK), or use *",
        ]
    );
    rig.line(alice, "REGISTER * * :correct horse");
    rig.line(alice, "REGISTER alice * :correct horse");
    assert_eq!(
        rig.got(alice),
        [":confab FAIL REGISTER ACCOUNT_EXISTS alice :That name is a registered account already"],
        "a second REGISTER while the first is being stored"
    );
    rig.run_jobs(&gate).await;
    assert_eq!(
        rig.got(alice),
        [
            ":confab REGISTER SUCCESS alice :Account alice created; you are logged in. Next time, log in with your account name and this password (confab: client --account alice)",
            ":confab 900 alice alice!alice@127.0.0.1 alice :You are now logged in as alice",
        ]
    );
    assert!(rig.log().contains(&"account alice registered".to_string()));
    rig.line(alice, "REGISTER * * another-one");
    rig.line(alice, "AUTHENTICATE PLAIN");
    assert_eq!(
        rig.got(alice),
        [
            ":confab FAIL REGISTER ALREADY_AUTHENTICATED alice :You are logged in to an account already",
            ":confab 907 alice :You have already authenticated using SASL",
        ]
    );

    // Someone else cannot take the name, at login or by NICK; alice's
    // own login can.
    let bob = rig.user("bob");
    rig.line(bob, "WHOIS alice");
    assert!(
        rig.got(bob)
            .contains(&":confab 330 bob alice alice :is logged in as".to_string())
    );
    rig.chat.remove_user(alice, "Quit");
    rig.got(bob);
    rig.line(bob, "NICK Alice");
    assert_eq!(
        rig.got(bob),
        [":confab 433 bob Alice :is a registered account: log in to it (SASL) to use this name"]
    );
    assert_eq!(rig.login("ALICE", None).0, RegisterOutcome::NickReserved);
    assert_eq!(
        rig.login("alice", Some("alice")).0,
        RegisterOutcome::Welcome
    );
}

#[tokio::test]
async fn change_reset_and_delete() {
    let gate = gate();
    let mut rig = Rig::new();
    rig.chat.enable_accounts(Vec::<String>::new());
    let carol = rig.user("carol");
    rig.line(carol, "ACCOUNT PASSWORD x yyyyyyyy");
    rig.line(carol, "REGISTER * * first-password");
    rig.run_jobs(&gate).await;
    rig.got(carol);
    assert_eq!(
        rig.chat.state.users[&carol].account.as_deref(),
        Some("carol")
    );

    rig.line(carol, "ACCOUNT PASSWORD wrong-one second-password");
    rig.run_jobs(&gate).await;
    rig.line(carol, "ACCOUNT PASSWORD first-password second-password");
    rig.run_jobs(&gate).await;
    rig.line(carol, "ACCOUNT FROB");
    assert_eq!(
        rig.got(carol),
        [
            ":confab FAIL ACCOUNT WRONG_PASSWORD PASSWORD :Wrong account name or password",
            ":confab NOTICE carol :Your account's password was changed",
            ":confab FAIL ACCOUNT INVALID_PARAMS FROB :ACCOUNT PASSWORD <current> <new>, ACCOUNT DELETE <password> or ACCOUNT RESET <account> <new>",
        ]
    );
    // The old password no longer logs in, the new one does.
    let ip = std::net::IpAddr::from([10, 0, 0, 9]);
    let pw = |p: &str| zeroize::Zeroizing::new(p.to_string());
    assert!(gate.login("carol", pw("first-password"), ip).await.is_err());
    assert_eq!(
        gate.login("CAROL", pw("second-password"), ip)
            .await
            .as_deref(),
        Ok("carol")
    );

    // Only a tracker operator resets someone else's password.
    let dan = rig.user("dan");
    let teach = rig.oper("teach");
    rig.line(dan, "ACCOUNT RESET carol third-password");
    rig.line(teach, "ACCOUNT RESET nobody third-password");
    rig.line(teach, "ACCOUNT RESET carol third-password");
    rig.run_jobs(&gate).await;
    let [to_dan, to_teach] = rig.got_each(&[dan, teach]).try_into().unwrap();
    assert_eq!(
        to_dan,
        [":confab 481 dan :Permission denied: you are not a tracker operator"]
    );
    assert_eq!(
        to_teach,
        [
            ":confab FAIL ACCOUNT NO_SUCH_ACCOUNT RESET nobody :No such account",
            ":confab NOTICE teach :The password of account carol was reset",
        ]
    );
    assert!(gate.login("carol", pw("third-password"), ip).await.is_ok());

    rig.line(carol, "ACCOUNT DELETE third-password");
    rig.run_jobs(&gate).await;
    assert_eq!(
        rig.got(carol),
        [
            ":confab 901 carol carol!carol@127.0.0.1 :You are now logged out",
            ":confab NOTICE carol :Account carol and everything it kept were deleted; you are logged out",
        ]
    );
    assert_eq!(rig.chat.state.users[&carol].account, None);
    assert!(!rig.chat.reserved("carol", None), "the name is free again");
    let log = rig.log();
    for line in [
        "account carol registered",
        "account carol changed its password",
        "account carol's password reset by teach",
        "account carol deleted",
    ] {
        assert!(log.contains(&line.to_string()), "{line} in {log:?}");
    }
    assert!(
        !log.iter()
            .any(|l| l.contains("password") && l.contains("third")),
        "no password is ever logged"
    );
}

#[test]
fn without_a_store_there_are_no_accounts() {
    let mut rig = Rig::new();
    let eve = rig.user("eve");
    rig.line(eve, "REGISTER * * long-enough-pw");
    rig.line(eve, "ACCOUNT PASSWORD a bbbbbbbbbb");
    assert_eq!(
        rig.got(eve),
        [
            ":confab FAIL REGISTER TEMPORARILY_UNAVAILABLE eve :This tracker keeps no accounts",
            ":confab FAIL ACCOUNT TEMPORARILY_UNAVAILABLE PASSWORD :This tracker keeps no accounts",
        ]
    );
    rig.line(eve, "CAP LS");
    let ls = rig.got(eve);
    assert!(!ls[0].contains("sasl"), "{ls:?}");
}
