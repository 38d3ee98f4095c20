//! A real third-party IRC client, irssi, against the real tracker over TLS
//! with a pinned certificate, chatting with a confab client.
//!
//! irssi runs headless inside a private tmux server; input goes in with
//! `tmux send-keys`, output is read from irssi's autolog files and from
//! `tmux capture-pane`. Skipped (with a message) when irssi or tmux is not
//! installed, unless `CI` is set.

use std::path::{Path, PathBuf};

use crate::harness::*;
use crate::tmux::{Tmux, have, poll};

/// Complete lines (terminated by a newline) of a file; irssi writes the text
/// and the newline separately, so a trailing partial line is left out.
fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    lines.pop(); // after the last '\n': empty or partial
    lines
}

/// One irssi process in its own terminal; gone when dropped, so a failing
/// test does not leave irssi running.
pub struct Irssi {
    pub term: Tmux,
    logs: PathBuf,
}

impl Irssi {
    /// Writes `DIR/config` for `nick` connecting to the tracker with TLS,
    /// the test password and `pin` as the pinned certificate fingerprint,
    /// and starts irssi in a detached tmux session.
    pub fn start(dir: &Path, tracker: &Tracker, nick: &str, pin: &str) -> Irssi {
        let home = dir.join("home");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&home).expect("irssi home");
        std::fs::create_dir_all(&logs).expect("irssi logs");
        let config = format!(
            r##"servers = (
  {{
    address = "127.0.0.1";
    chatnet = "test";
    port = "{port}";
    password = "{password}";
    use_tls = "yes";
    tls_verify = "no";
    tls_pinned_cert = "{pin}";
    autoconnect = "yes";
    cmd_queue_speed = "1";
    cmds_max_at_once = "100";
  }}
);
chatnets = {{ test = {{ type = "IRC"; }}; }};
channels = ( {{ name = "#general"; chatnet = "test"; autojoin = "yes"; }} );
settings = {{
  core = {{
    log_timestamp = "%H:%M:%S ";
    real_name = "Irssi User";
    user_name = "{nick}";
    nick = "{nick}";
  }};
  "fe-common/core" = {{
    autolog = "yes";
    autolog_path = "{logs}/$tag/$0.log";
  }};
}};
"##,
            port = tracker.port,
            password = PASSWORD,
            logs = logs.display(),
        );
        std::fs::write(home.join("config"), config).expect("write irssi config");
        let term = Tmux::start(
            &format!("irssi-{nick}"),
            &format!("irssi --home={}", home.display()),
            &[],
            &[],
        );
        Irssi { term, logs }
    }

    /// The autolog file for `target` (a channel or a nick).
    fn log_path(&self, target: &str) -> PathBuf {
        self.logs.join("test").join(format!("{target}.log"))
    }

    /// Waits until the autolog for `target` holds a complete line ending
    /// with `suffix`.
    pub fn wait_log_line(&self, target: &str, suffix: &str) -> String {
        let path = self.log_path(target);
        poll(
            &format!(
                "irssi log {} to get a line ending {suffix:?}",
                path.display()
            ),
            || {
                complete_lines(&path)
                    .into_iter()
                    .find(|l| l.ends_with(suffix))
            },
            || {
                format!(
                    "log:\n{}\nscreen:\n{}",
                    std::fs::read_to_string(&path).unwrap_or_default(),
                    self.term.screen()
                )
            },
        )
    }
}

/// irssi 1.4 connects over TLS with the tracker's printed fingerprint pinned
/// (so that fingerprint is the real SHA-256 of the certificate), joins
/// #general, chats and exchanges DMs with a confab client, and quits with a
/// reason; a wrong pin is refused before anything reaches the tracker.
#[test]
fn irssi_joins_over_tls_and_chats_with_a_confab_client() {
    if !have(&["irssi", "tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(&dir.path().join("tracker"), &[]);
    let mut bob = ClientProc::join(&tracker, "bob");
    let pin = tracker
        .fingerprint
        .strip_prefix("SHA256:")
        .unwrap_or_else(|| panic!("fingerprint without SHA256: {:?}", tracker.fingerprint));

    // A wrong pin: irssi refuses the certificate and never registers.
    {
        let wrong = vec!["AB"; 32].join(":");
        assert_ne!(wrong, pin);
        let irssi = Irssi::start(&dir.path().join("wrongpin"), &tracker, "wrongpin", &wrong);
        irssi.term.wait_screen("Pinned certificate mismatch");
        let joins: Vec<String> = tracker
            .log_events()
            .into_iter()
            .filter(|e| e.contains("wrongpin"))
            .collect();
        assert!(joins.is_empty(), "wrong pin got in: {joins:?}");
    }

    // The right pin.
    let irssi = Irssi::start(&dir.path().join("irssi"), &tracker, "irssiuser", pin);
    let diag = || {
        format!(
            "irssi screen:\n{}\ntracker stderr:\n{}",
            irssi.term.screen(),
            tracker.stderr_text()
        )
    };
    // bob's expect panics on timeout; show irssi's side too.
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bob.expect("#general --> irssiuser joined");
    }));
    if joined.is_err() {
        panic!("irssi did not join\n{}", diag());
    }

    irssi.term.type_line("/msg #general hello from irssi");
    bob.expect("#general <irssiuser> hello from irssi");

    bob.send("hello irssi");
    irssi.wait_log_line("#general", "< bob> hello irssi");

    bob.send("/msg irssiuser psst from bob");
    irssi.wait_log_line("bob", "<bob> psst from bob");

    irssi.term.type_line("/msg bob hi bob");
    bob.expect("[DM irssiuser] <irssiuser> hi bob");

    irssi.term.type_line("/quit bye now");
    bob.expect("<-- irssiuser left (Quit: bye now)");
    poll(
        "irssi's tmux session to end",
        || (!irssi.term.alive()).then_some(()),
        diag,
    );

    tracker.wait_log("leave irssiuser (Quit: bye now)");
    let events = tracker.log_events();
    let wanted = [
        "join #general irssiuser (127.0.0.1)",
        "msg #general <irssiuser> hello from irssi",
        "msg #general <bob> hello irssi",
        "dm bob -> irssiuser: psst from bob",
        "dm irssiuser -> bob: hi bob",
        "leave irssiuser (Quit: bye now)",
    ];
    let mut from = 0;
    for w in wanted {
        match events[from..].iter().position(|e| e == w) {
            Some(i) => from += i + 1,
            None => panic!(
                "chat.log lacks {w:?} (in order); events:\n{}",
                events.join("\n")
            ),
        }
    }
    assert!(
        !events.iter().any(|e| e.contains("wrongpin")),
        "wrong pin reached the tracker:\n{}",
        events.join("\n")
    );
}

/// irssi creates a room (and becomes its founder), kicks a confab client
/// out of it, and closes it with `/quote CLOSE`: the tracker's rooms are
/// usable from a standard IRC client without anything confab-specific.
#[test]
fn irssi_creates_kicks_and_closes_a_room() {
    if !have(&["irssi", "tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(&dir.path().join("tracker"), &["--stay"]);
    let mut bob = ClientProc::join(&tracker, "bob");
    let pin = tracker
        .fingerprint
        .strip_prefix("SHA256:")
        .unwrap_or_else(|| panic!("fingerprint without SHA256: {:?}", tracker.fingerprint));
    let irssi = Irssi::start(&dir.path().join("irssi"), &tracker, "teacher", pin);
    tracker.wait_log("join #general teacher (127.0.0.1)");

    irssi.term.type_line("/join #classroom");
    tracker.wait_log("create #classroom teacher");
    irssi.wait_log_line(
        "#classroom",
        "-!- Irssi: #classroom: Total of 1 nicks [1 ops, 0 halfops, 0 voices, 0 normal]",
    );
    bob.send("/join #classroom");
    tracker.wait_log("join #classroom bob (127.0.0.1)");
    irssi.wait_log_line(
        "#classroom",
        "-!- bob [bob@127.0.0.1] has joined #classroom",
    );

    irssi.term.type_line("/topic Fractions today");
    tracker.wait_log("topic #classroom teacher: Fractions today");
    irssi.term.type_line("/kick bob too loud");
    tracker.wait_log("kick #classroom teacher -> bob (too loud)");
    irssi.wait_log_line(
        "#classroom",
        "-!- bob was kicked from #classroom by teacher [too loud]",
    );

    bob.send("/join #classroom");
    tracker.wait_log("join #classroom bob (127.0.0.1)");
    irssi.term.type_line("/quote CLOSE #classroom :lesson over");
    tracker.wait_log("close #classroom teacher (lesson over)");
    irssi.wait_log_line(
        "#classroom",
        "-!- teacher was kicked from #classroom by teacher [Room closed by teacher: lesson over]",
    );
    // The room is gone: joining it again creates it anew.
    irssi.term.type_line("/join #classroom");
    poll(
        "a second create of #classroom in chat.log",
        || {
            (tracker
                .log_events()
                .iter()
                .filter(|e| *e == "create #classroom teacher")
                .count()
                == 2)
                .then_some(())
        },
        || tracker.log(),
    );
}
