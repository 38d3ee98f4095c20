//! Accounts with the real tracker: REGISTER, SASL PLAIN at connect, the
//! registered name kept for its owner, the store surviving a restart, and
//! `tracker backup` while the tracker runs.

use base64::Engine;

use crate::harness::*;

fn plain(account: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{account}\0{account}\0{password}"))
}

/// Connects, logs in to `account` with SASL PLAIN as `nick`, and returns
/// the connection after the welcome (or `None` with what the tracker said
/// when the login failed).
fn sasl(port: u16, nick: &str, account: &str, password: &str) -> Result<Raw, String> {
    let mut r = Raw::connect(port);
    r.send("CAP LS 302");
    let ls = r.expect(" LS ");
    assert!(ls.contains("sasl"), "{ls}");
    r.send("CAP REQ :sasl");
    r.expect(" ACK ");
    r.send(&format!("PASS :{PASSWORD}"));
    r.send(&format!("NICK {nick}"));
    r.send(&format!("USER {nick} 0 * :{nick}"));
    r.send("AUTHENTICATE PLAIN");
    r.expect("AUTHENTICATE +");
    r.send(&format!("AUTHENTICATE {}", plain(account, password)));
    let answer = r
        .lines
        .wait_for("900 or 904", |l| l.contains(" 903 ") || l.contains(" 904 "));
    if answer.contains(" 904 ") {
        return Err(answer);
    }
    r.send("CAP END");
    r.expect(" 366 ");
    Ok(r)
}

#[test]
fn register_log_in_keep_the_name_survive_a_restart_and_back_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);

    let mut alice = Raw::register(tracker.port, "alice");
    alice.send("REGISTER * * :river stone 42");
    let success = alice.expect("REGISTER SUCCESS");
    assert!(success.ends_with("REGISTER SUCCESS alice :Account alice created; you are logged in. Next time, log in with your account name and this password (confab: client --account alice)"), "{success}");
    let logged = alice.expect(" 900 ");
    assert!(
        logged.ends_with(" 900 alice alice!alice@127.0.0.1 alice :You are now logged in as alice"),
        "{logged}"
    );
    tracker.wait_log("account alice registered");

    // Someone else is refused the name while alice is away, and told why.
    alice.send("QUIT");
    tracker.wait_log("leave alice (Quit)");
    let mut other = Raw::connect(tracker.port);
    other.send(&format!("PASS :{PASSWORD}"));
    other.send("NICK Alice");
    other.send("USER x 0 * :x");
    let refused = other.expect(" 433 ");
    assert!(
        refused.ends_with(
            " 433 * Alice :is a registered account: log in to it (SASL) to use this name"
        ),
        "{refused}"
    );
    other.send("NICK notalice");
    other.expect(" 001 notalice ");

    // A wrong password is refused; the right one logs in under the name.
    let wrong = sasl(tracker.port, "alice", "alice", "river stone 43")
        .err()
        .expect("refused");
    assert!(
        wrong.ends_with(" 904 alice :SASL authentication failed: wrong account name or password"),
        "{wrong}"
    );
    let mut back = sasl(tracker.port, "alice", "ALICE", "river stone 42").expect("logged in");
    back.send("WHOIS alice");
    back.expect(" 330 alice alice alice :is logged in as");
    tracker.wait_log("join #general alice (127.0.0.1)");

    // A backup while it runs: a private copy holding the account.
    let copy = dir.path().join("backup.db");
    let out = std::process::Command::new(tracker_bin())
        .arg("backup")
        .arg(&copy)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .expect("run tracker backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let store = confab::store::Store::open_existing(&copy).expect("open the copy");
    assert_eq!(store.account_names().expect("names"), ["alice"]);
    let again = std::process::Command::new(tracker_bin())
        .arg("backup")
        .arg(&copy)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .expect("run tracker backup");
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing file is never overwritten"
    );

    // Restarted (after a kill -9), the tracker still knows the account.
    drop(back);
    drop(other);
    drop(tracker);
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut taker = Raw::connect(tracker.port);
    taker.send(&format!("PASS :{PASSWORD}"));
    taker.send("NICK alice");
    taker.send("USER x 0 * :x");
    taker.expect(" 433 * alice :is a registered account");
    sasl(tracker.port, "alice", "alice", "river stone 42").expect("logged in after a restart");
}

/// The real client: `/register` in plain mode, then `--account` with the
/// password from a file (TLS, as users run it); a wrong password refused
/// with exit code 3, and the name refused to someone without the account.
#[test]
fn the_client_registers_and_logs_in_with_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let mut bob = ClientProc::join(&tracker, "bob");
    bob.send("/register correct horse 9");
    bob.expect("*** Account bob created; you are logged in. Next time, log in with your account name and this password (confab: client --account bob)");
    tracker.wait_log("account bob registered");
    bob.send("/quit");
    assert!(bob.wait_exit().success());
    tracker.wait_log("leave bob (Quit: Leaving)");

    let secret = dir.path().join("bob.pw");
    std::fs::write(&secret, "correct horse 9\n").expect("write");
    let wrong = dir.path().join("wrong.pw");
    std::fs::write(&wrong, "correct horse 8\n").expect("write");
    let fp = tracker.fingerprint.clone();
    let (wrong, secret) = (wrong.to_str().unwrap(), secret.to_str().unwrap());
    let mut refused = ClientProc::spawn(
        client_command(
            &tracker,
            &[
                "--account",
                "bob",
                "--fingerprint",
                &fp,
                "--account-password-file",
                wrong,
            ],
        ),
        "bob?",
    );
    assert_eq!(refused.wait_exit().code(), Some(3));
    refused.err.wait_for("the refusal", |l| {
        l == "client: cannot log in to the account: wrong account name or password"
    });

    let mut impostor = ClientProc::spawn(
        client_command(&tracker, &["--user", "bob", "--fingerprint", &fp]),
        "impostor",
    );
    assert_eq!(impostor.wait_exit().code(), Some(2));
    impostor
        .err
        .wait_for("the name refused", |l| l.contains("registered account"));

    let mut back = ClientProc::spawn(
        client_command(
            &tracker,
            &[
                "--account",
                "bob",
                "--fingerprint",
                &fp,
                "--account-password-file",
                secret,
            ],
        ),
        "bob",
    );
    back.expect("#general --> you joined");
    let mut watcher = ClientProc::join(&tracker, "watcher");
    watcher.send("/info bob");
    watcher.expect_matching("bob's account", |l| {
        l.contains("bob") && l.contains("account bob")
    });
}
