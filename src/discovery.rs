//! What a tracker announces on the local network (mDNS / DNS-SD) and how
//! a client reads it back: the service type and the TXT record, both
//! ways, without I/O. The tracker's side (`tracker::announce`) and the
//! client's (`client::discover`) meet only here.
//!
//! The TXT record (RFC 6763 section 6: `key=value` strings):
//!
//! | key | value |
//! | --- | --- |
//! | `txtvers` | `1`, this format |
//! | `tls` | `on` or `off` |
//! | `password` | `on` or `off` |
//! | `fingerprint` | `SHA256:AB:CD:...` (with `tls=on` only): the certificate's, as the client pins it |
//! | `members` | how many users are logged in |
//! | `version` | the tracker's version |
//!
//! An announcement is a claim made by anyone on the network: the client
//! still checks the certificate it is shown against the announced
//! fingerprint and against its known trackers (see SECURITY.md).

use std::net::IpAddr;

use thiserror::Error;

use crate::proto::sanitize;
use crate::tls::Fingerprint;

/// The DNS-SD service type trackers announce.
pub const SERVICE_TYPE: &str = "_confab._tcp.local.";

/// The TXT format's version (`txtvers`).
pub const TXT_VERSION: &str = "1";

/// Longest instance name or version shown: DNS labels are at most 63
/// bytes, so anything longer did not come from a tracker.
const MAX_SHOWN: usize = 63;

/// What a tracker says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub tls: bool,
    pub password: bool,
    /// `Some` exactly when `tls` is on.
    pub fingerprint: Option<Fingerprint>,
    pub members: usize,
    pub version: String,
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

impl Announcement {
    /// The TXT record's `key=value` pairs, in a fixed order.
    pub fn to_txt(&self) -> Vec<(String, String)> {
        let mut txt = vec![
            ("txtvers".to_string(), TXT_VERSION.to_string()),
            ("tls".to_string(), on_off(self.tls).to_string()),
            ("password".to_string(), on_off(self.password).to_string()),
        ];
        if let Some(fp) = &self.fingerprint {
            txt.push(("fingerprint".to_string(), fp.to_string()));
        }
        txt.push(("members".to_string(), self.members.to_string()));
        txt.push(("version".to_string(), self.version.clone()));
        txt
    }
}

/// Why an announcement seen on the network was not listed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BadAnnouncement {
    #[error("no {0} in its TXT record")]
    Missing(&'static str),
    #[error("its TXT record has {key}={value:?}, which is not valid")]
    Invalid { key: &'static str, value: String },
    #[error("it announces TLS without a fingerprint")]
    TlsWithoutFingerprint,
    #[error("it announces a fingerprint without TLS")]
    FingerprintWithoutTls,
    #[error("it announces no address")]
    NoAddress,
}

/// A tracker found on the network, as its announcement describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The instance name (the tracker's `--server-name`, or what the
    /// network made of it to keep names unique), cleaned for a terminal.
    pub name: String,
    /// Every address announced, IPv4 first, then by value.
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub tls: bool,
    pub password: bool,
    pub fingerprint: Option<Fingerprint>,
    pub members: usize,
    pub version: String,
}

impl Found {
    /// Reads an announcement: `fullname` is the DNS-SD instance's full
    /// name (`lab._confab._tcp.local.`), `txt` its TXT record's pairs
    /// (a key without `=` has the value `None`). Unknown keys are ignored
    /// (a later version may add some).
    pub fn from_announcement(
        fullname: &str,
        mut addresses: Vec<IpAddr>,
        port: u16,
        txt: &[(String, Option<String>)],
    ) -> Result<Found, BadAnnouncement> {
        let get = |key: &'static str| {
            txt.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone().unwrap_or_default())
        };
        let flag = |key: &'static str| -> Result<bool, BadAnnouncement> {
            match get(key).ok_or(BadAnnouncement::Missing(key))?.as_str() {
                "on" => Ok(true),
                "off" => Ok(false),
                other => Err(BadAnnouncement::Invalid {
                    key,
                    value: other.to_string(),
                }),
            }
        };
        let tls = flag("tls")?;
        let password = flag("password")?;
        let fingerprint = match get("fingerprint") {
            None => None,
            Some(text) => {
                Some(
                    Fingerprint::parse(&text).map_err(|_| BadAnnouncement::Invalid {
                        key: "fingerprint",
                        value: text.clone(),
                    })?,
                )
            }
        };
        match (tls, fingerprint.is_some()) {
            (true, false) => return Err(BadAnnouncement::TlsWithoutFingerprint),
            (false, true) => return Err(BadAnnouncement::FingerprintWithoutTls),
            _ => {}
        }
        let members_text = get("members").ok_or(BadAnnouncement::Missing("members"))?;
        let members = members_text.parse().map_err(|_| BadAnnouncement::Invalid {
            key: "members",
            value: members_text.clone(),
        })?;
        let version = get("version").unwrap_or_default();
        let version = sanitize::clip(&sanitize::for_display(&version), MAX_SHOWN).to_string();
        if addresses.is_empty() {
            return Err(BadAnnouncement::NoAddress);
        }
        addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        addresses.dedup();
        Ok(Found {
            name: instance_name(fullname),
            addresses,
            port,
            tls,
            password,
            fingerprint,
            members,
            version,
        })
    }

    /// The address to connect to: the first IPv4 one, else the first
    /// IPv6 one that needs no interface named (not link-local), else the
    /// first.
    pub fn address(&self) -> IpAddr {
        let usable = |ip: &&IpAddr| match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        };
        // from_announcement refuses an empty list.
        let first = self.addresses[0];
        self.addresses.iter().find(usable).copied().unwrap_or(first)
    }

    /// `10.0.0.1:6697`, `[2001:db8::1]:6697`: what `client` takes.
    pub fn target(&self) -> String {
        match self.address() {
            IpAddr::V4(v4) => format!("{v4}:{}", self.port),
            IpAddr::V6(v6) => format!("[{v6}]:{}", self.port),
        }
    }
}

/// The instance's own name out of its full DNS-SD name: the service type
/// taken off, DNS escapes (`\.`, `\\`, `\DDD`) undone, and cleaned for a
/// terminal (anyone may announce anything).
pub fn instance_name(fullname: &str) -> String {
    let suffix = format!(".{SERVICE_TYPE}");
    let escaped = fullname
        .strip_suffix(&suffix)
        .or_else(|| fullname.strip_suffix(&suffix[..suffix.len() - 1]))
        .unwrap_or(fullname);
    let mut name = Vec::with_capacity(escaped.len());
    let bytes = escaped.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let digits = &bytes[i + 1..(i + 4).min(bytes.len())];
            if digits.len() == 3 && digits.iter().all(u8::is_ascii_digit) {
                let value = digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(value) {
                    name.push(b);
                    i += 4;
                    continue;
                }
            }
            name.push(bytes[i + 1]);
            i += 2;
            continue;
        }
        name.push(bytes[i]);
        i += 1;
    }
    let name = sanitize::for_display(&String::from_utf8_lossy(&name));
    sanitize::clip(name.trim(), MAX_SHOWN).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(txt: &[(String, String)]) -> Vec<(String, Option<String>)> {
        txt.iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_tls_announcement_reads_back_as_it_was_made() {
        let fp = Fingerprint([0xAB; 32]);
        let a = Announcement {
            tls: true,
            password: true,
            fingerprint: Some(fp),
            members: 12,
            version: "0.1.0 (abc1234)".into(),
        };
        let txt = a.to_txt();
        assert_eq!(
            txt.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [
                "txtvers",
                "tls",
                "password",
                "fingerprint",
                "members",
                "version"
            ]
        );
        assert_eq!(txt[1].1, "on");
        assert_eq!(txt[3].1, fp.to_string());
        // Every string fits one TXT string (a length byte: 255 at most).
        assert!(txt.iter().all(|(k, v)| k.len() + 1 + v.len() <= 255));
        let found = Found::from_announcement(
            "lab._confab._tcp.local.",
            vec![ip("fe80::1"), ip("10.0.0.7"), ip("10.0.0.7")],
            6697,
            &pairs(&txt),
        )
        .unwrap();
        assert_eq!(
            found,
            Found {
                name: "lab".into(),
                addresses: vec![ip("10.0.0.7"), ip("fe80::1")],
                port: 6697,
                tls: true,
                password: true,
                fingerprint: Some(fp),
                members: 12,
                version: "0.1.0 (abc1234)".into(),
            }
        );
        assert_eq!(found.target(), "10.0.0.7:6697");
    }

    #[test]
    fn a_plain_announcement_has_no_fingerprint() {
        let a = Announcement {
            tls: false,
            password: false,
            fingerprint: None,
            members: 0,
            version: "0.1.0".into(),
        };
        let txt = a.to_txt();
        assert!(!txt.iter().any(|(k, _)| k == "fingerprint"));
        let found = Found::from_announcement(
            "open._confab._tcp.local.",
            vec![ip("2001:db8::5")],
            6667,
            &pairs(&txt),
        )
        .unwrap();
        assert!(!found.tls && !found.password && found.fingerprint.is_none());
        assert_eq!(found.members, 0);
        assert_eq!(found.target(), "[2001:db8::5]:6667");
    }

    #[test]
    fn bad_announcements_are_refused_with_the_reason() {
        let good = Announcement {
            tls: true,
            password: false,
            fingerprint: Some(Fingerprint([1; 32])),
            members: 3,
            version: "x".into(),
        }
        .to_txt();
        let with = |key: &str, value: Option<&str>| -> Vec<(String, Option<String>)> {
            let mut txt: Vec<_> = pairs(&good).into_iter().filter(|(k, _)| k != key).collect();
            if let Some(v) = value {
                txt.push((key.to_string(), Some(v.to_string())));
            }
            txt
        };
        let read = |txt: Vec<(String, Option<String>)>| {
            Found::from_announcement("x._confab._tcp.local.", vec![ip("10.0.0.1")], 1, &txt)
        };
        assert_eq!(
            read(with("tls", None)),
            Err(BadAnnouncement::Missing("tls"))
        );
        assert_eq!(
            read(with("password", Some("yes"))),
            Err(BadAnnouncement::Invalid {
                key: "password",
                value: "yes".into()
            })
        );
        assert_eq!(
            read(with("fingerprint", None)),
            Err(BadAnnouncement::TlsWithoutFingerprint)
        );
        assert_eq!(
            read(with("fingerprint", Some("SHA256:12:34"))),
            Err(BadAnnouncement::Invalid {
                key: "fingerprint",
                value: "SHA256:12:34".into()
            })
        );
        assert_eq!(
            read(with("tls", Some("off"))),
            Err(BadAnnouncement::FingerprintWithoutTls)
        );
        assert_eq!(
            read(with("members", Some("-1"))),
            Err(BadAnnouncement::Invalid {
                key: "members",
                value: "-1".into()
            })
        );
        assert_eq!(
            read(with("members", None)),
            Err(BadAnnouncement::Missing("members"))
        );
        assert_eq!(
            Found::from_announcement("x._confab._tcp.local.", vec![], 1, &pairs(&good)),
            Err(BadAnnouncement::NoAddress)
        );
        // Unknown keys and a missing version are fine.
        let mut extra = with("version", None);
        extra.push(("future".into(), None));
        assert_eq!(read(extra).unwrap().version, "");
    }

    #[test]
    fn the_address_to_join_is_ipv4_first_and_never_needs_an_interface_named() {
        let txt = pairs(
            &Announcement {
                tls: false,
                password: true,
                fingerprint: None,
                members: 0,
                version: String::new(),
            }
            .to_txt(),
        );
        let read = |addrs: &[&str]| {
            Found::from_announcement(
                "x._confab._tcp.local.",
                addrs.iter().map(|a| ip(a)).collect(),
                7000,
                &txt,
            )
            .unwrap()
        };
        assert_eq!(
            read(&["fe80::1", "2001:db8::1", "192.168.1.20"]).target(),
            "192.168.1.20:7000"
        );
        assert_eq!(
            read(&["fe80::1", "2001:db8::1"]).target(),
            "[2001:db8::1]:7000"
        );
        // Only link-local: shown as it is (a person can add the interface).
        assert_eq!(read(&["fe80::1"]).target(), "[fe80::1]:7000");
    }

    #[test]
    fn instance_names_are_unescaped_and_cleaned() {
        assert_eq!(instance_name("lab._confab._tcp.local."), "lab");
        assert_eq!(instance_name("lab._confab._tcp.local"), "lab");
        assert_eq!(instance_name("room\\.b12._confab._tcp.local."), "room.b12");
        assert_eq!(instance_name("a\\032b._confab._tcp.local."), "a b");
        // Escape sequences and controls from the network never reach the
        // terminal.
        assert_eq!(
            instance_name("evil\u{1b}[2J\u{7}._confab._tcp.local."),
            "evil"
        );
        assert_eq!(instance_name(&"x".repeat(300)).len(), MAX_SHOWN);
    }
}
