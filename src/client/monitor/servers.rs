//! Which trackers the monitor watches, and the passwords it logs in with:
//! `servers.txt` (or `--monitor a,b`), its companion
//! `servers.txt.passwords`, and `--password-file TRACKER=PATH`. Parsing
//! only; reading the files is the caller's.

use std::collections::HashMap;

use thiserror::Error;

use crate::client::known;

/// One tracker to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerSpec {
    pub host: String,
    pub port: u16,
    /// How every line from it is marked: the name given after the address,
    /// else the host, else (when two share a host) `host:port`.
    pub label: String,
}

impl TrackerSpec {
    /// `host:port` (`[v6]:port`), as the known-trackers file names it.
    pub fn address(&self) -> String {
        known::key(&self.host, self.port)
    }

    /// Whether `name` (from a passwords file or `--password-file`) means
    /// this tracker: its label or its `host:port`.
    pub fn is_named(&self, name: &str) -> bool {
        name == self.label || name == self.address()
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ServersError {
    #[error("{source_name} line {line}: {why}")]
    Line {
        source_name: String,
        line: usize,
        why: String,
    },
    #[error("{0}: no trackers listed (one `host[:port] [label]` a line)")]
    Empty(String),
    #[error("{source_name}: the label {label:?} is used twice (lines {first} and {second})")]
    LabelTwice {
        source_name: String,
        label: String,
        first: usize,
        second: usize,
    },
    #[error("{source_name}: {address} is listed twice (lines {first} and {second})")]
    AddressTwice {
        source_name: String,
        address: String,
        first: usize,
        second: usize,
    },
    #[error(
        "--password-file {0:?}: with --monitor, give TRACKER=PATH (TRACKER: a label or host:port)"
    )]
    PasswordFileForm(String),
    #[error("{source_name}: {name:?} is none of the trackers watched (a label or host:port)")]
    UnknownTracker { source_name: String, name: String },
}

/// Splits `host`, `host:port`, `[v6]:port` or a bare IPv6 address; the
/// port is `None` when not given.
pub fn split_host(tracker: &str) -> Result<(String, Option<u16>), String> {
    let bad = || format!("cannot read the port in {tracker:?}");
    if let Some(rest) = tracker.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match tracker.matches(':').count() {
        1 => {
            let (host, p) = tracker.split_once(':').ok_or_else(bad)?;
            if host.is_empty() {
                return Err(format!("no host in {tracker:?}"));
            }
            Ok((host.to_string(), Some(p.parse().map_err(|_| bad())?)))
        }
        _ => Ok((tracker.to_string(), None)),
    }
}

/// A label must be one word that cannot be mistaken for a window name.
fn check_label(label: &str) -> Result<(), String> {
    if label.starts_with('#') || label.contains('/') || label.chars().any(char::is_control) {
        return Err(format!(
            "the label {label:?} may not start with # or hold / (it names windows)"
        ));
    }
    Ok(())
}

/// Reads a servers list: one `host[:port] [label]` a line, `#` starts a
/// comment line, blank lines are skipped. `default_port` is for lines
/// without one. `source_name` names the list in errors.
pub fn parse_servers(
    text: &str,
    default_port: u16,
    source_name: &str,
) -> Result<Vec<TrackerSpec>, ServersError> {
    let mut specs: Vec<(usize, String, u16, Option<String>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| ServersError::Line {
            source_name: source_name.to_string(),
            line: line_no,
            why,
        };
        let mut words = line.split_whitespace();
        let address = words.next().unwrap_or_default();
        let label = words.next().map(str::to_string);
        if let Some(extra) = words.next() {
            return Err(bad(format!(
                "{extra:?} after the label: one `host[:port] [label]` a line"
            )));
        }
        let (host, port) = split_host(address).map_err(bad)?;
        if let Some(l) = &label {
            check_label(l).map_err(bad)?;
        }
        specs.push((line_no, host, port.unwrap_or(default_port), label));
    }
    if specs.is_empty() {
        return Err(ServersError::Empty(source_name.to_string()));
    }
    // The host alone marks lines when it is enough to tell trackers apart.
    let mut per_host: HashMap<&str, usize> = HashMap::new();
    for (_, host, _, _) in &specs {
        *per_host.entry(host.as_str()).or_default() += 1;
    }
    let mut out: Vec<TrackerSpec> = Vec::new();
    let mut lines_of: Vec<usize> = Vec::new();
    for (line_no, host, port, label) in &specs {
        let label = match label {
            Some(l) => l.clone(),
            None if per_host[host.as_str()] == 1 => host.clone(),
            None => known::key(host, *port),
        };
        let address = known::key(host, *port);
        if let Some(j) = out.iter().position(|s| s.address() == address) {
            return Err(ServersError::AddressTwice {
                source_name: source_name.to_string(),
                address,
                first: lines_of[j],
                second: *line_no,
            });
        }
        if let Some(j) = out.iter().position(|s| s.label == label) {
            return Err(ServersError::LabelTwice {
                source_name: source_name.to_string(),
                label,
                first: lines_of[j],
                second: *line_no,
            });
        }
        out.push(TrackerSpec {
            host: host.clone(),
            port: *port,
            label,
        });
        lines_of.push(*line_no);
    }
    Ok(out)
}

/// `--monitor a,b:7000,c`: the same as a file with those lines.
pub fn parse_list(list: &str, default_port: u16) -> Result<Vec<TrackerSpec>, ServersError> {
    let text = list.split(',').collect::<Vec<_>>().join("\n");
    parse_servers(&text, default_port, "--monitor")
}

/// The companion passwords file of `servers.txt`: `servers.txt.passwords`.
pub fn passwords_path(servers: &std::path::Path) -> std::path::PathBuf {
    let mut name = servers.as_os_str().to_owned();
    name.push(".passwords");
    std::path::PathBuf::from(name)
}

/// Reads a passwords file: `TRACKER password` a line (TRACKER: a label or
/// `host:port`; the password is the rest of the line, spaces inside
/// kept), `#` comments and blank lines skipped. Returns each tracker's
/// password by its index in `specs`.
pub fn parse_passwords(
    text: &str,
    specs: &[TrackerSpec],
    source_name: &str,
) -> Result<HashMap<usize, String>, ServersError> {
    let mut out = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, password) = line
            .split_once(char::is_whitespace)
            .map(|(n, p)| (n, p.trim_start()))
            .unwrap_or((line, ""));
        let password = password.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(ServersError::Line {
                source_name: source_name.to_string(),
                line: i + 1,
                why: format!("no password after {name:?}"),
            });
        }
        let idx = tracker_named(specs, name, source_name)?;
        out.insert(idx, password.to_string());
    }
    Ok(out)
}

/// Which of `specs` `name` means.
pub fn tracker_named(
    specs: &[TrackerSpec],
    name: &str,
    source_name: &str,
) -> Result<usize, ServersError> {
    specs
        .iter()
        .position(|s| s.is_named(name))
        .ok_or_else(|| ServersError::UnknownTracker {
            source_name: source_name.to_string(),
            name: name.to_string(),
        })
}

/// `--password-file TRACKER=PATH`: the tracker's index and the path.
pub fn split_password_file(
    arg: &str,
    specs: &[TrackerSpec],
) -> Result<(usize, std::path::PathBuf), ServersError> {
    let (name, path) = arg
        .split_once('=')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| ServersError::PasswordFileForm(arg.to_string()))?;
    let idx = tracker_named(specs, name, "--password-file")?;
    Ok((idx, std::path::PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, port: u16, label: &str) -> TrackerSpec {
        TrackerSpec {
            host: host.into(),
            port,
            label: label.into(),
        }
    }

    #[test]
    fn servers_file_with_comments_ports_and_labels() {
        let text = "# the lab\n\
                    \n\
                    lab.example.org\n\
                    10.0.0.5:7000   hall\n\
                    \t[::1]:6000\n\
                    # end\n";
        assert_eq!(
            parse_servers(text, 6697, "servers.txt"),
            Ok(vec![
                spec("lab.example.org", 6697, "lab.example.org"),
                spec("10.0.0.5", 7000, "hall"),
                spec("::1", 6000, "::1"),
            ])
        );
    }

    #[test]
    fn a_shared_host_is_told_apart_by_its_port() {
        let specs = parse_list("127.0.0.1:4000,127.0.0.1:4001,other", 6667).unwrap();
        let labels: Vec<&str> = specs.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["127.0.0.1:4000", "127.0.0.1:4001", "other"]);
        assert_eq!(specs[2].port, 6667);
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse_servers("a\nb:x\n", 6697, "s.txt")
                .unwrap_err()
                .to_string(),
            "s.txt line 2: cannot read the port in \"b:x\""
        );
        assert_eq!(
            parse_servers("a one two\n", 6697, "s.txt")
                .unwrap_err()
                .to_string(),
            "s.txt line 1: \"two\" after the label: one `host[:port] [label]` a line"
        );
        assert_eq!(
            parse_servers("# nothing\n\n", 6697, "s.txt")
                .unwrap_err()
                .to_string(),
            "s.txt: no trackers listed (one `host[:port] [label]` a line)"
        );
        assert_eq!(
            parse_servers("a x\nb x\n", 6697, "s.txt")
                .unwrap_err()
                .to_string(),
            "s.txt: the label \"x\" is used twice (lines 1 and 2)"
        );
        assert_eq!(
            parse_servers("a:1 x\n\na:1 y\n", 6697, "s.txt")
                .unwrap_err()
                .to_string(),
            "s.txt: a:1 is listed twice (lines 1 and 3)"
        );
        assert!(parse_servers("a #x\n", 6697, "s.txt").is_err());
        assert!(parse_servers(":7000\n", 6697, "s.txt").is_err());
        assert!(parse_list("a,,b", 6697).is_ok(), "empty items are skipped");
    }

    #[test]
    fn passwords_by_label_or_address() {
        let specs = vec![spec("10.0.0.5", 7000, "hall"), spec("lab", 6697, "lab")];
        let got = parse_passwords(
            "# secrets\nhall   correct horse \nlab:6697 x\n",
            &specs,
            "p",
        )
        .unwrap();
        assert_eq!(got[&0], "correct horse ");
        assert_eq!(got[&1], "x");
        assert_eq!(
            parse_passwords("nope x\n", &specs, "p")
                .unwrap_err()
                .to_string(),
            "p: \"nope\" is none of the trackers watched (a label or host:port)"
        );
        assert!(parse_passwords("hall\n", &specs, "p").is_err());
        assert_eq!(
            split_password_file("10.0.0.5:7000=/tmp/pw", &specs),
            Ok((0, "/tmp/pw".into()))
        );
        assert!(matches!(
            split_password_file("/tmp/pw", &specs),
            Err(ServersError::PasswordFileForm(_))
        ));
        assert_eq!(
            passwords_path(std::path::Path::new("/x/servers.txt")),
            std::path::PathBuf::from("/x/servers.txt.passwords")
        );
    }
}
