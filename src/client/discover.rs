//! Finding trackers on the local network: `client` with no address and
//! `client --list`. Browses for the announcements `discovery` describes,
//! lists what it found, and asks which one to join. Trust is not decided
//! here: the chosen tracker's announced fingerprint goes to the login
//! ([`super::session::Announced`]), which checks it against the
//! certificate the connection presents, and then against the known
//! trackers as for any address.

use std::collections::BTreeMap;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceEvent};
use thiserror::Error;
use tokio::time::Instant;

use super::session::{ClientError, Prompter};
use crate::discovery::{BadAnnouncement, Found, SERVICE_TYPE};
use crate::prompt::PromptError;

/// How long `client` listens for announcements by default.
pub const DEFAULT_BROWSE: Duration = Duration::from_secs(3);

#[derive(Debug, Error)]
#[error("cannot look for trackers on the local network: {0}")]
pub struct BrowseError(#[from] mdns_sd::Error);

/// What a browse heard.
#[derive(Debug, Default)]
pub struct Heard {
    /// Trackers, by name, then address.
    pub found: Vec<Found>,
    /// Announcements of our service type that could not be read: the
    /// instance's name and why.
    pub ignored: Vec<(String, BadAnnouncement)>,
}

/// Listens for trackers' announcements for `wait`.
pub async fn browse(wait: Duration) -> Result<Heard, BrowseError> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE_TYPE)?;
    let deadline = Instant::now() + wait;
    // By full name: a tracker that announces again (its member count
    // changed) replaces what it said before.
    let mut heard: BTreeMap<String, Result<Found, BadAnnouncement>> = BTreeMap::new();
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv_async()).await {
        match event {
            ServiceEvent::ServiceResolved(service) => {
                let txt: Vec<(String, Option<String>)> = service
                    .get_properties()
                    .iter()
                    .map(|p| {
                        (
                            p.key().to_string(),
                            p.val().map(|v| String::from_utf8_lossy(v).into_owned()),
                        )
                    })
                    .collect();
                let addresses = service
                    .get_addresses()
                    .iter()
                    .map(|a| a.to_ip_addr())
                    .collect();
                let read =
                    Found::from_announcement(&service.fullname, addresses, service.port, &txt);
                heard.insert(service.fullname.clone(), read);
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                heard.remove(&fullname);
            }
            _ => {}
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    if let Ok(done) = daemon.shutdown() {
        let _ = tokio::time::timeout(Duration::from_millis(500), done.recv_async()).await;
    }
    let mut result = Heard::default();
    for (fullname, read) in heard {
        match read {
            Ok(found) => result.found.push(found),
            Err(why) => result
                .ignored
                .push((crate::discovery::instance_name(&fullname), why)),
        }
    }
    result
        .found
        .sort_by(|a, b| (&a.name, a.address()).cmp(&(&b.name, b.address())));
    Ok(result)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `TLS, password`, `no TLS, no password`.
fn security(found: &Found) -> String {
    format!(
        "{}, {}",
        if found.tls { "TLS" } else { "no TLS" },
        if found.password {
            "password"
        } else {
            "no password"
        }
    )
}

/// The trackers as a numbered list for people, two lines each:
///
/// ```text
///   1. lab  10.0.0.1:6697  3 members  TLS, password
///      fingerprint SHA256:45:90:...
/// ```
pub fn render_list(found: &[Found]) -> String {
    let width = found
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(0);
    let target_width = found.iter().map(|f| f.target().len()).max().unwrap_or(0);
    let members = |f: &Found| plural(f.members, "member", "members");
    let members_width = found.iter().map(|f| members(f).len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, f) in found.iter().enumerate() {
        out.push_str(&format!(
            "  {}. {:width$}  {:target_width$}  {:members_width$}  {}\n",
            i + 1,
            f.name,
            f.target(),
            members(f),
            security(f),
        ));
        let pad = " ".repeat(format!("  {}. ", i + 1).len());
        match &f.fingerprint {
            Some(fp) => out.push_str(&format!("{pad}fingerprint {fp}\n")),
            None => out.push_str(&format!(
                "{pad}no fingerprint: without TLS anyone on the network can read and change the traffic\n"
            )),
        }
    }
    out
}

/// One JSON object per tracker, one a line (`client --list --json`):
/// `name`, `address` (the one `client` would connect to), `port`,
/// `addresses` (every one announced), `tls`, `password`, `fingerprint`
/// (`null` without TLS), `members`, `version`.
pub fn render_json(found: &[Found]) -> String {
    let mut out = String::new();
    for f in found {
        let object = serde_json::json!({
            "name": f.name,
            "address": f.address().to_string(),
            "port": f.port,
            "addresses": f.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "tls": f.tls,
            "password": f.password,
            "fingerprint": f.fingerprint.map(|fp| fp.to_string()),
            "members": f.members,
            "version": f.version,
        });
        out.push_str(&object.to_string());
        out.push('\n');
    }
    out
}

/// What nobody found is told.
pub fn none_found(wait: Duration) -> String {
    format!(
        "No tracker found on the local network in {} s.\n\
         Give the tracker's address instead, as it printed it (`clients join with: ...`): client 192.168.1.20\n\
         (a tracker started with --no-announce, on another network, or behind a firewall that drops mDNS is not found; --browse-time SECS listens longer)",
        wait.as_secs_f64()
    )
}

/// An answer to `[Y/n]`: Enter is yes; `None` for anything else.
pub fn yes_or_no(answer: &str) -> Option<bool> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "" | "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

/// An answer to the numbered choice.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// The index (from 0) of the tracker chosen.
    Join(usize),
    Cancel,
    /// Not an answer: say this and ask again.
    Again(String),
}

/// Reads the answer to "Join which one? [1-N, Enter to cancel]".
pub fn choice(answer: &str, count: usize) -> Choice {
    let answer = answer.trim();
    if answer.is_empty() || matches!(answer.to_ascii_lowercase().as_str(), "n" | "no" | "q") {
        return Choice::Cancel;
    }
    match answer.parse::<usize>() {
        Ok(n) if (1..=count).contains(&n) => Choice::Join(n - 1),
        _ => Choice::Again(format!(
            "Type a number from 1 to {count}, or press Enter to cancel."
        )),
    }
}

/// Shows `found` on stderr and asks which to join; `None` when the
/// person declines. Nobody to ask is a usage error that says what to do.
pub fn ask_which(found: &[Found], prompt: &mut dyn Prompter) -> Result<Option<usize>, ClientError> {
    let heading = match found.len() {
        1 => "Found 1 tracker on the local network:".to_string(),
        n => format!("Found {n} trackers on the local network:"),
    };
    eprint!("{heading}\n{}", render_list(found));
    if !prompt.interactive() {
        return Err(ClientError::Usage(
            "no terminal to ask which tracker to join: give its address (client ADDRESS), see them with client --list".into(),
        ));
    }
    let answer = |result: Result<String, PromptError>| {
        result.map_err(|e| match e {
            PromptError::Interrupted | PromptError::Eof => ClientError::Cancelled,
            e => ClientError::Usage(format!("cannot read the terminal: {e}")),
        })
    };
    if let [only] = found {
        let question = format!("Join {} at {}? [Y/n] ", only.name, only.target());
        loop {
            match yes_or_no(&answer(prompt.line(&question))?) {
                Some(true) => return Ok(Some(0)),
                Some(false) => return Ok(None),
                None => eprintln!("Answer y or n (Enter is yes)."),
            }
        }
    }
    let question = format!("Join which one? [1-{}, Enter to cancel] ", found.len());
    loop {
        match choice(&answer(prompt.line(&question))?, found.len()) {
            Choice::Join(i) => return Ok(Some(i)),
            Choice::Cancel => return Ok(None),
            Choice::Again(why) => eprintln!("{why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Fingerprint;

    fn tracker(name: &str, ip: &str, tls: bool) -> Found {
        Found {
            name: name.into(),
            addresses: vec![ip.parse().unwrap()],
            port: 6697,
            tls,
            password: tls,
            fingerprint: tls.then_some(Fingerprint([0x0F; 32])),
            members: 1,
            version: "0.1.0 (abc)".into(),
        }
    }

    struct Scripted {
        answers: Vec<&'static str>,
        asked: Vec<String>,
        interactive: bool,
    }

    impl Prompter for Scripted {
        fn interactive(&self) -> bool {
            self.interactive
        }
        fn line(&mut self, prompt: &str) -> Result<String, PromptError> {
            self.asked.push(prompt.to_string());
            if self.answers.is_empty() {
                return Err(PromptError::Eof);
            }
            Ok(self.answers.remove(0).to_string())
        }
        fn secret(&mut self, _: &str) -> Result<String, PromptError> {
            unreachable!("discovery asks no secret")
        }
    }

    fn scripted(answers: &[&'static str]) -> Scripted {
        Scripted {
            answers: answers.to_vec(),
            asked: Vec::new(),
            interactive: true,
        }
    }

    #[test]
    fn one_tracker_is_joined_on_enter_or_yes_and_not_on_no() {
        let one = [tracker("lab", "10.0.0.1", true)];
        let mut p = scripted(&[""]);
        assert_eq!(ask_which(&one, &mut p).unwrap(), Some(0));
        assert_eq!(p.asked, ["Join lab at 10.0.0.1:6697? [Y/n] "]);
        let mut p = scripted(&["maybe", "YES"]);
        assert_eq!(ask_which(&one, &mut p).unwrap(), Some(0));
        assert_eq!(p.asked.len(), 2, "asked again after a non-answer");
        let mut p = scripted(&["n"]);
        assert_eq!(ask_which(&one, &mut p).unwrap(), None);
        let mut p = scripted(&[]);
        assert!(matches!(
            ask_which(&one, &mut p),
            Err(ClientError::Cancelled)
        ));
    }

    #[test]
    fn several_trackers_are_a_numbered_choice() {
        let three = [
            tracker("a", "10.0.0.1", true),
            tracker("b", "10.0.0.2", true),
            tracker("c", "10.0.0.3", false),
        ];
        let mut p = scripted(&["0", "4", "x", " 3 "]);
        assert_eq!(ask_which(&three, &mut p).unwrap(), Some(2));
        assert_eq!(p.asked.len(), 4);
        assert_eq!(p.asked[0], "Join which one? [1-3, Enter to cancel] ");
        let mut p = scripted(&[""]);
        assert_eq!(ask_which(&three, &mut p).unwrap(), None);
        assert_eq!(choice("2", 3), Choice::Join(1));
        assert_eq!(choice("q", 3), Choice::Cancel);
        assert_eq!(
            choice("-1", 3),
            Choice::Again("Type a number from 1 to 3, or press Enter to cancel.".into())
        );
    }

    #[test]
    fn without_a_terminal_nothing_is_joined() {
        let one = [tracker("lab", "10.0.0.1", true)];
        let mut p = scripted(&["y"]);
        p.interactive = false;
        let err = ask_which(&one, &mut p).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("client ADDRESS"), "{err}");
        assert!(p.asked.is_empty());
    }

    #[test]
    fn yes_or_no_defaults_to_yes() {
        for yes in ["", " ", "y", "Y", "yes", "Yes"] {
            assert_eq!(yes_or_no(yes), Some(true), "{yes:?}");
        }
        for no in ["n", "NO"] {
            assert_eq!(yes_or_no(no), Some(false), "{no:?}");
        }
        assert_eq!(yes_or_no("yep"), None);
    }

    #[test]
    fn the_list_for_people_and_for_scripts() {
        let two = [
            tracker("lab", "10.0.0.1", true),
            tracker("open-house", "10.0.0.22", false),
        ];
        let fp = Fingerprint([0x0F; 32]).to_string();
        assert_eq!(
            render_list(&two),
            format!(
                "  1. lab         10.0.0.1:6697   1 member  TLS, password\n     fingerprint {fp}\n\
                 \x20 2. open-house  10.0.0.22:6697  1 member  no TLS, no password\n     \
                 no fingerprint: without TLS anyone on the network can read and change the traffic\n"
            )
        );
        let json = render_json(&two);
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            serde_json::json!({
                "name": "lab", "address": "10.0.0.1", "port": 6697,
                "addresses": ["10.0.0.1"], "tls": true, "password": true,
                "fingerprint": fp, "members": 1, "version": "0.1.0 (abc)",
            })
        );
        assert_eq!(lines[1]["fingerprint"], serde_json::Value::Null);
        assert_eq!(lines[1]["tls"], false);
    }
}
