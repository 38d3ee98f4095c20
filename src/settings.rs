//! The tracker's settings: built-in defaults, then a TOML configuration
//! file, then command-line flags, each overriding the one before.
//!
//! Every flag has a key of the same name in the file (`--log-dir` is
//! `log-dir`); an unknown key is an error that names it, so a typo never
//! silently leaves a default in place.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::tracker::policy::P2pPolicy;
use crate::tracker::transcript::{LogRotate, LogSync};

/// One layer: what a file or the command line sets (`None`: not set).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layer {
    pub port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub log_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub idle_timeout: Option<u64>,
    pub ping_interval: Option<u64>,
    pub register_timeout: Option<u64>,
    pub stay: Option<bool>,
    pub exit_grace: Option<f64>,
    pub password_file: Option<PathBuf>,
    pub no_password: Option<bool>,
    pub no_tls: Option<bool>,
    pub flood_rate: Option<f64>,
    pub flood_burst: Option<u32>,
    pub sendq: Option<usize>,
    pub sendq_total: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_per_address: Option<usize>,
    pub log_sync: Option<LogSync>,
    pub p2p: Option<P2pPolicy>,
    pub log_rotate: Option<LogRotate>,
    pub server_name: Option<String>,
    pub no_announce: Option<bool>,
    pub replay_max: Option<usize>,
    pub history_days: Option<u32>,
    /// Tracker operators (`[[oper]]` tables; the file only).
    pub oper: Option<Vec<OperEntry>>,
}

/// One `[[oper]]` table: who may become a tracker operator with `OPER`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OperEntry {
    pub name: String,
    /// The Argon2id hash (`tracker hash-password` prints one).
    pub password_hash: String,
}

/// The settings in effect, as `tracker --print-config` shows them (a valid
/// configuration file itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    /// `None`: the default for the transport, 6697 with TLS, 6667 without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub bind: IpAddr,
    pub log_dir: PathBuf,
    pub data_dir: PathBuf,
    pub idle_timeout: u64,
    pub ping_interval: u64,
    pub register_timeout: u64,
    pub stay: bool,
    /// Seconds an emptied tracker waits for someone to join before it
    /// stops (without `stay`); 0 stops it at once.
    pub exit_grace: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub no_password: bool,
    pub no_tls: bool,
    pub flood_rate: f64,
    pub flood_burst: u32,
    pub sendq: usize,
    pub sendq_total: usize,
    pub max_connections: usize,
    pub max_per_address: usize,
    pub log_sync: LogSync,
    /// Direct sessions between clients: allow, relay-only or off.
    pub p2p: P2pPolicy,
    pub log_rotate: LogRotate,
    /// The tracker's name in every message's prefix and as `NETWORK`.
    pub server_name: String,
    /// Not announced on the local network (mDNS).
    pub no_announce: bool,
    /// Unread lines sent per room or conversation at an account's login.
    pub replay_max: usize,
    /// Days of history kept in the store; older is purged at start and
    /// hourly. 0 keeps all of it.
    pub history_days: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oper: Vec<OperEntry>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            port: None,
            bind: IpAddr::from([0, 0, 0, 0]),
            log_dir: PathBuf::from("logs"),
            data_dir: default_data_dir(),
            idle_timeout: 300,
            ping_interval: 90,
            register_timeout: 30,
            stay: false,
            exit_grace: crate::tracker::DEFAULT_EXIT_GRACE.as_secs_f64(),
            password_file: None,
            no_password: false,
            no_tls: false,
            flood_rate: 4.0,
            flood_burst: 20,
            sendq: 2 << 20,
            sendq_total: 256 << 20,
            max_connections: 2000,
            max_per_address: 50,
            log_sync: LogSync::Write,
            p2p: P2pPolicy::Allow,
            log_rotate: LogRotate::Never,
            server_name: "confab".into(),
            no_announce: false,
            replay_max: crate::tracker::hub::REPLAY_MAX,
            history_days: 0,
            oper: Vec::new(),
        }
    }
}

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("in the configuration file {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{0}")]
    Conflict(String),
}

impl Layer {
    /// Parses a configuration file's text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Layer, SettingsError> {
        toml::from_str(text).map_err(|e| SettingsError::Invalid {
            path: path.display().to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    pub fn read(path: &Path) -> Result<Layer, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Layer::parse(&text, path)
    }
}

impl Settings {
    /// Applies `layer` over these settings.
    pub fn apply(mut self, layer: &Layer) -> Settings {
        let l = layer.clone();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = l.$f { self.$f = v; } )* };
        }
        set!(
            bind,
            log_dir,
            data_dir,
            idle_timeout,
            ping_interval,
            register_timeout,
            stay,
            exit_grace,
            no_password,
            no_tls,
            flood_rate,
            flood_burst,
            sendq,
            sendq_total,
            max_connections,
            max_per_address,
            log_sync,
            p2p,
            log_rotate,
            server_name,
            no_announce,
            replay_max,
            history_days,
            oper
        );
        if l.port.is_some() {
            self.port = l.port;
        }
        if l.password_file.is_some() {
            self.password_file = l.password_file;
        }
        self
    }

    /// Checks combinations no single layer can: a password file and no
    /// password at once.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.no_password && self.password_file.is_some() {
            return Err(SettingsError::Conflict(
                "both no-password and password-file are set; keep one".into(),
            ));
        }
        if !self.flood_rate.is_finite() || self.flood_rate < 0.0 {
            return Err(SettingsError::Conflict(
                "flood-rate must be 0 (off) or a positive number of lines per second".into(),
            ));
        }
        // 0 would mean "at once" to some readers and "never" to others; the
        // tracker would have quietly used 1. Refused, with what to do.
        let at_least_one = [
            (
                "idle-timeout",
                self.idle_timeout,
                " (for no INACTIVE status in practice, give a long time, e.g. 86400)",
            ),
            ("ping-interval", self.ping_interval, ""),
            ("register-timeout", self.register_timeout, ""),
        ];
        for (key, value, hint) in at_least_one {
            if value == 0 {
                return Err(SettingsError::Conflict(format!(
                    "{key} must be at least 1 second{hint}"
                )));
            }
        }
        for (key, value) in [
            ("max-connections", self.max_connections),
            ("max-per-address", self.max_per_address),
        ] {
            if value == 0 {
                return Err(SettingsError::Conflict(format!("{key} must be at least 1")));
            }
        }
        if !valid_server_name(&self.server_name) {
            return Err(SettingsError::Conflict(format!(
                "server-name {:?} must be 1 to 63 letters, digits, dots and dashes (it is sent as every message's source)",
                self.server_name
            )));
        }
        let max_days = crate::tracker::hub::MAX_HISTORY_DAYS;
        if self.history_days > max_days {
            return Err(SettingsError::Conflict(format!(
                "history-days must be at most {max_days} (a century), or 0 to keep all history"
            )));
        }
        if self.exit_grace_duration().is_none() {
            return Err(SettingsError::Conflict(
                "exit-grace must be 0 (stop at once) or a positive number of seconds".into(),
            ));
        }
        Ok(())
    }

    /// `exit-grace` as a duration (`None`: negative, not a number, or too
    /// large to represent).
    pub fn exit_grace_duration(&self) -> Option<std::time::Duration> {
        std::time::Duration::try_from_secs_f64(self.exit_grace).ok()
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.no_tls { 6667 } else { 6697 })
    }

    /// The settings as a configuration file.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot show the settings: {e}\n"))
    }
}

/// A name IRC clients accept as a server's: a host-name-like word, so it
/// can never be taken for a user (`nick!user@host`) or a parameter.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with(['-', '.'])
}

/// Where the tracker keeps its certificate and key when `data-dir` is not
/// set, so its fingerprint is the same wherever it is started: the
/// service's state folder under systemd (`STATE_DIRECTORY`, the first if
/// several), else the per-user data folder ([`crate::data_dir`]), else
/// (no home folder) `data` in the current folder.
pub fn default_data_dir() -> PathBuf {
    if let Some(state) = std::env::var_os("STATE_DIRECTORY") {
        let first = std::env::split_paths(&state).next();
        if let Some(dir) = first.filter(|d| d.is_absolute()) {
            return dir;
        }
    }
    crate::data_dir().unwrap_or_else(|| PathBuf::from(LEGACY_DATA_DIR))
}

/// Where versions before the per-user folder kept the certificate: `data`
/// in the folder the tracker was started from.
pub const LEGACY_DATA_DIR: &str = "data";

/// Where the tracker looks for its configuration file when `--config` is
/// not given: `$XDG_CONFIG_HOME/confab/tracker.toml`, else
/// `~/.config/confab/tracker.toml`. Used only if it exists.
pub fn default_config_path() -> Option<PathBuf> {
    Some(crate::config_dir()?.join("tracker.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_override_defaults() {
        let file = Layer::parse(
            "port = 7000\nlog-dir = \"/var/log/confab\"\nstay = true\nflood-rate = 10.0\nlog-rotate = \"size:10M\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let flags = Layer {
            port: Some(7001),
            max_per_address: Some(5),
            log_sync: Some(LogSync::Fsync),
            ..Layer::default()
        };
        let s = Settings::default().apply(&file).apply(&flags);
        assert_eq!(s.history_days, 0, "history is kept whole by default");
        assert!(
            s.to_toml().contains("history-days = 0\n"),
            "print-config shows it"
        );
        let days = Layer::parse("history-days = 30\n", Path::new("t.toml")).unwrap();
        assert_eq!(Settings::default().apply(&days).history_days, 30);
        assert_eq!(s.port, Some(7001), "flag beats file");
        assert_eq!(
            s.log_dir,
            PathBuf::from("/var/log/confab"),
            "file beats default"
        );
        assert!(s.stay);
        assert_eq!(s.flood_rate, 10.0);
        assert_eq!(s.max_per_address, 5);
        assert_eq!(s.log_sync, LogSync::Fsync);
        assert_eq!(s.log_rotate, LogRotate::Size(10 << 20));
        assert_eq!(s.data_dir, default_data_dir(), "default kept");
        // What --print-config shows reads back as the same settings.
        let again = Settings::default().apply(&Layer::parse(&s.to_toml(), Path::new("p")).unwrap());
        assert_eq!(again, s);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Layer::parse("log_dir = \"x\"\n", Path::new("t.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("unknown field `log_dir`"), "{msg}");
        assert!(
            msg.starts_with("in the configuration file t.toml:"),
            "{msg}"
        );
        let e = Layer::parse("log-rotate = \"weekly\"\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("daily, size:BYTES"), "{e}");
        let e = Layer::parse("port = \"many\"\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
        let both = Settings {
            no_password: true,
            password_file: Some("pw".into()),
            ..Settings::default()
        };
        assert!(both.validate().is_err());
        let forever = Settings {
            history_days: 40_000,
            ..Settings::default()
        };
        let e = forever.validate().unwrap_err().to_string();
        assert!(e.contains("history-days must be at most 36500"), "{e}");
    }
}
