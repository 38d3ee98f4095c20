//! Trusted tracker fingerprints, one `host:port SHA256:...` per line, like
//! ssh's known_hosts: trust on first use, refuse a change loudly.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::tls::Fingerprint;

#[derive(Debug, PartialEq, Eq)]
pub enum Known {
    Match,
    Unknown,
    /// Pinned before with a different fingerprint.
    Changed(Fingerprint),
}

/// The default file: `$XDG_CONFIG_HOME/confab/known_trackers`, else
/// `~/.config/confab/known_trackers`.
pub fn default_path() -> Option<PathBuf> {
    Some(crate::config_dir()?.join("known_trackers"))
}

pub struct KnownTrackers {
    path: PathBuf,
}

impl KnownTrackers {
    pub fn new(path: PathBuf) -> Self {
        KnownTrackers { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn check(&self, tracker: &str, fp: &Fingerprint) -> io::Result<Known> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Known::Unknown),
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(host), Some(stored)) = (parts.next(), parts.next()) else {
                continue;
            };
            if host != tracker {
                continue;
            }
            let Ok(stored) = Fingerprint::parse(stored) else {
                continue;
            };
            return Ok(if stored == *fp {
                Known::Match
            } else {
                Known::Changed(stored)
            });
        }
        Ok(Known::Unknown)
    }

    pub fn remember(&self, tracker: &str, fp: &Fingerprint) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{tracker} {fp}")
    }
}

/// How a tracker is named in the file: `host:port`, `[v6]:port`.
pub fn key(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl KnownTrackers {
    /// Removes the lines for `host` (at `port`, or at any port when
    /// `None`), keeping every other line as it was; returns the names
    /// removed. The file is replaced whole (written aside, then renamed),
    /// so a crash midway leaves the old file, never half of one.
    pub fn forget(&self, host: &str, port: Option<u16>) -> io::Result<Vec<String>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let wanted = |name: &str| match port {
            Some(p) => name == key(host, p),
            None => name.rsplit_once(':').is_some_and(|(h, p)| {
                h.trim_matches(['[', ']']) == host && p.parse::<u16>().is_ok()
            }),
        };
        let mut removed = Vec::new();
        let mut kept = String::with_capacity(text.len());
        for line in text.lines() {
            match line.split_whitespace().next() {
                Some(name) if wanted(name) => removed.push(name.to_string()),
                _ => {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
        }
        if !removed.is_empty() {
            let aside = self.path.with_extension("new");
            fs::write(&aside, kept)?;
            fs::rename(&aside, &self.path)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_on_first_use_then_detect_change() {
        let dir = tempfile::tempdir().unwrap();
        let k = KnownTrackers::new(dir.path().join("sub/known"));
        let a = Fingerprint([1; 32]);
        let b = Fingerprint([2; 32]);
        assert_eq!(k.check("h:1", &a).unwrap(), Known::Unknown);
        k.remember("h:1", &a).unwrap();
        assert_eq!(k.check("h:1", &a).unwrap(), Known::Match);
        assert_eq!(k.check("h:1", &b).unwrap(), Known::Changed(a));
        assert_eq!(k.check("h:2", &b).unwrap(), Known::Unknown);
    }

    #[test]
    fn forget_removes_only_that_tracker() {
        let dir = tempfile::tempdir().unwrap();
        let k = KnownTrackers::new(dir.path().join("known"));
        assert!(k.forget("h", None).unwrap().is_empty(), "no file yet");
        let a = Fingerprint([1; 32]);
        k.remember("h:1", &a).unwrap();
        k.remember("h:2", &a).unwrap();
        k.remember("hh:1", &a).unwrap();
        k.remember("[::1]:1", &a).unwrap();
        assert_eq!(k.forget("h", Some(1)).unwrap(), vec!["h:1"]);
        assert_eq!(k.check("h:1", &a).unwrap(), Known::Unknown);
        assert_eq!(k.check("h:2", &a).unwrap(), Known::Match);
        assert_eq!(k.forget("::1", None).unwrap(), vec!["[::1]:1"]);
        assert_eq!(k.forget("h", None).unwrap(), vec!["h:2"]);
        assert_eq!(k.check("hh:1", &a).unwrap(), Known::Match);
        assert!(k.forget("h", None).unwrap().is_empty());
    }
}
