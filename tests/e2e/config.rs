//! The tracker's configuration file: defaults < file < flags, unknown keys
//! refused by name, the default path, and a real start from a file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::*;

fn tracker(dir: &std::path::Path) -> Command {
    let mut c = Command::new(tracker_bin());
    c.env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env_remove("STATE_DIRECTORY")
        .env("CONFAB_PASSWORD", PASSWORD)
        .stdin(Stdio::null());
    c
}

#[test]
fn configuration_file_precedence_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let file = d.join("tracker.toml");
    std::fs::write(
        &file,
        "idle-timeout = 5\nlog-dir = \"/srv/confab/logs\"\nstay = true\nflood-rate = 0\n",
    )
    .unwrap();

    // Flags beat the file, the file beats the defaults.
    let out = tracker(d)
        .arg("--config")
        .arg(&file)
        .args(["--idle-timeout", "7", "--print-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "bind = \"0.0.0.0\"\nlog-dir = \"/srv/confab/logs\"\ndata-dir = \"{}\"\nidle-timeout = 7\n\
         ping-interval = 90\nregister-timeout = 30\nstay = true\nexit-grace = 60.0\nno-password = false\nno-tls = false\n\
         flood-rate = 0.0\nflood-burst = 20\nsendq = 2097152\nsendq-total = 268435456\nmax-connections = 2000\nmax-per-address = 50\n\
         log-sync = \"write\"\np2p = \"allow\"\nlog-rotate = \"never\"\nserver-name = \"confab\"\nno-announce = false\nreplay-max = 200\nhistory-days = 0\n",
            d.join("xdg-data").join("confab").display()
        )
    );

    // An unknown key (a typo) is an error naming it; nothing starts.
    std::fs::write(&file, "idle_timeout = 5\n").unwrap();
    let out = tracker(d).arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "tracker: in the configuration file {}:",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("unknown field `idle_timeout`"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    // A missing --config file is an error too; conflicting settings as well.
    let out = tracker(d)
        .arg("--config")
        .arg(d.join("nope.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(&file, "no-password = true\npassword-file = \"/etc/pw\"\n").unwrap();
    let out = tracker(d).arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("both no-password and password-file"));

    // Without --config, ~/.config/confab/tracker.toml (XDG) is used.
    let xdg = d.join("xdg").join("confab");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::write(xdg.join("tracker.toml"), "max-per-address = 3\n").unwrap();
    let out = tracker(d).arg("--print-config").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("max-per-address = 3\n"));
}

/// A tracker started from a configuration file really uses it.
#[test]
fn tracker_runs_from_a_configuration_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let file = d.join("tracker.toml");
    std::fs::write(
        &file,
        format!(
            "port = 0\nbind = \"127.0.0.1\"\nno-tls = true\nlog-dir = \"{}\"\ndata-dir = \"{}\"\n",
            d.join("cfg-logs").display(),
            d.join("cfg-data").display()
        ),
    )
    .unwrap();
    let mut child = tracker(d)
        .arg("--config")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read the banner and keep the pipe open.
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let lines: Vec<String> = out.by_ref().map_while(Result::ok).take(4).collect();
    let log = d.join("cfg-logs").join("chat.log");
    crate::tmux::poll(
        "chat.log in the configured folder",
        || log.exists().then_some(()),
        || format!("{lines:?}"),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines[0].starts_with("listening on 127.0.0.1:"), "{lines:?}");
    assert_eq!(lines[1], "fingerprint none (plain TCP)");
    assert_eq!(
        lines[2],
        format!("chat log {}", d.join("cfg-logs").join("chat.log").display())
    );
}
