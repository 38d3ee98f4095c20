//! The tracker announcing itself on the local network with mDNS / DNS-SD
//! (`mdns-sd`, its own thread: no system daemon needed), so `client`
//! with no address finds it. What is announced is `discovery`'s TXT
//! record; the member count in it follows the hub's, at most once per
//! [`REANNOUNCE_EVERY`], from when the name has been probed. Announcing
//! is best effort: a network without multicast costs a warning, never
//! the tracker.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceInfo, UnregisterStatus};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::discovery::{Announcement, SERVICE_TYPE, instance_name};

/// Member counts are re-announced at most this often: a class arriving at
/// once is one update on the network, not thirty.
pub const REANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// How long stopping waits for the mDNS thread to answer.
const GOODBYE_WAIT: Duration = Duration::from_millis(1000);
/// When the mDNS thread has sent its goodbye twice (mdns-sd repeats it
/// after 120 ms).
const GOODBYE_REPEAT: Duration = Duration::from_millis(150);

#[derive(Debug, Error)]
#[error("cannot announce the tracker on the local network: {0}")]
pub struct AnnounceError(#[from] mdns_sd::Error);

/// A running announcement; [`Announcer::stop`] withdraws it.
pub struct Announcer {
    daemon: ServiceDaemon,
    fullname: String,
    service: ServiceTemplate,
    /// True once the daemon has announced the service, i.e. finished
    /// probing its name.
    announced: watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Everything of the DNS-SD record but the member count.
#[derive(Clone)]
struct ServiceTemplate {
    name: String,
    host: String,
    /// `None`: every address of the interfaces announced on (the tracker
    /// listens on all of them).
    address: Option<IpAddr>,
    port: u16,
    announcement: Announcement,
}

impl ServiceTemplate {
    fn info(&self, members: usize) -> Result<ServiceInfo, mdns_sd::Error> {
        let txt: Vec<mdns_sd::TxtProperty> = Announcement {
            members,
            ..self.announcement.clone()
        }
        .to_txt()
        .into_iter()
        .map(mdns_sd::TxtProperty::from)
        .collect();
        let info = match self.address {
            Some(ip) => ServiceInfo::new(SERVICE_TYPE, &self.name, &self.host, ip, self.port, txt)?,
            None => ServiceInfo::new(SERVICE_TYPE, &self.name, &self.host, (), self.port, txt)?
                .enable_addr_auto(),
        };
        Ok(info)
    }
}

impl Announcer {
    /// Announces the tracker `name` listening at `local` (the listener's
    /// address: a wildcard is announced on every interface but loopback,
    /// a specific address, loopback included, on its own interface only).
    /// Must run inside a tokio runtime: the announcement's warnings are
    /// logged from a task.
    pub fn start(
        name: &str,
        local: SocketAddr,
        announcement: Announcement,
    ) -> Result<Announcer, AnnounceError> {
        let daemon = ServiceDaemon::new()?;
        let ip = local.ip();
        if ip.is_unspecified() {
            daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
            if ip.is_ipv4() {
                daemon.disable_interface(IfKind::IPv6)?;
            }
        } else {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(match ip {
                IpAddr::V4(v4) if v4.is_loopback() => IfKind::LoopbackV4,
                IpAddr::V6(v6) if v6.is_loopback() => IfKind::LoopbackV6,
                ip => IfKind::Addr(ip),
            })?;
        }
        let service = ServiceTemplate {
            name: name.to_string(),
            host: host_name(local),
            address: (!ip.is_unspecified()).then_some(ip),
            port: local.port(),
            announcement,
        };
        let info = service.info(service.announcement.members)?;
        let fullname = info.get_fullname().to_string();
        let events = daemon.monitor()?;
        daemon.register(info)?;
        let (announced_tx, announced) = watch::channel(false);
        // The daemon reports trouble (no multicast, a socket it cannot
        // open) as events, not as errors of the calls above.
        let warnings = tokio::spawn(async move {
            // The same news comes once per interface and address family.
            let mut told = std::collections::HashSet::new();
            while let Ok(event) = events.recv_async().await {
                let warning = match event {
                    DaemonEvent::Announce(..) => {
                        announced_tx.send_replace(true);
                        continue;
                    }
                    DaemonEvent::Error(e) => format!("announcing on the local network: {e}"),
                    DaemonEvent::NameChange(change) if change.rr_type == mdns_sd::RRType::SRV => {
                        format!(
                            "another tracker on the local network is called {:?}: this one is announced as {:?}",
                            instance_name(&change.original),
                            instance_name(&change.new_name)
                        )
                    }
                    _ => continue,
                };
                if told.insert(warning.clone()) {
                    tracing::warn!("{warning}");
                }
            }
        });
        Ok(Announcer {
            daemon,
            fullname,
            service,
            announced,
            tasks: vec![warnings],
        })
    }

    /// Keeps the announced member count equal to `members` (the hub's),
    /// from when the first announcement is out.
    pub fn follow(&mut self, members: watch::Receiver<usize>) {
        let daemon = self.daemon.clone();
        let service = self.service.clone();
        let first_count = service.announcement.members;
        let mut announced = self.announced.clone();
        let publish = move |count| {
            // Registering the same name again replaces its records
            // and announces the new TXT. The name was probed when
            // first announced; probing it again would meet our own
            // earlier records.
            let update = service.info(count).map(|mut info| {
                info.set_requires_probe(false);
                daemon.register(info)
            });
            match update {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!("cannot update the announced member count: {e}")
                }
            }
        };
        self.tasks.push(tokio::spawn(async move {
            // Not while the daemon still probes the name (the first
            // second or so): mdns-sd 0.21 then takes the updated records
            // for another tracker's and renames the service ("confab
            // (2)", "(3)", ...) for good, about 30 probes a second on the
            // LAN, its memory growing with every name (the soak's growth
            // in BENCHMARKS.md). A class joining as the tracker starts
            // did exactly that.
            if announced.wait_for(|done| *done).await.is_err() {
                return;
            }
            keep_current(members, first_count, REANNOUNCE_EVERY, publish).await;
        }));
    }

    /// Withdraws the announcement (goodbye packets, so browsers drop it
    /// at once instead of when it expires) and stops the mDNS thread.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Ok(status) = self.daemon.unregister(&self.fullname) {
            match tokio::time::timeout(GOODBYE_WAIT, status.recv_async()).await {
                Ok(Ok(UnregisterStatus::OK)) => {
                    tracing::debug!("withdrew the announcement {}", self.fullname);
                    // The daemon sends the goodbye again 120 ms later for
                    // anyone who missed it; it must still be running then.
                    tokio::time::sleep(GOODBYE_REPEAT).await;
                }
                other => tracing::debug!("withdrawing the announcement: {other:?}"),
            }
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(GOODBYE_WAIT, done.recv_async()).await;
        }
    }
}

/// The addresses an announcement for a tracker listening on `local` goes
/// out with now: a specific address itself; for a wildcard, the addresses
/// of the machine's interfaces but loopback, of its family (`::` takes
/// both). Empty when the machine has no network yet: the announcement
/// then starts when one comes up.
pub fn addresses_now(local: IpAddr) -> Vec<IpAddr> {
    if !local.is_unspecified() {
        return vec![local];
    }
    let mut addrs: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|iface| iface.ip())
        .filter(|ip| !ip.is_loopback() && (local.is_ipv6() || ip.is_ipv4()))
        .collect();
    addrs.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    addrs.dedup();
    addrs
}

/// Calls `publish` with the value of `members` whenever it differs from
/// what was last published (`announced` at first), but never twice
/// within `min_gap`: changes in between are folded into the next call,
/// and changes that cancel out are not published at all. Ends when the
/// sender is gone.
pub async fn keep_current(
    mut members: watch::Receiver<usize>,
    mut announced: usize,
    min_gap: Duration,
    mut publish: impl FnMut(usize),
) {
    let mut last: Option<Instant> = None;
    loop {
        if *members.borrow_and_update() != announced {
            if let Some(last) = last {
                tokio::time::sleep_until(last + min_gap).await;
            }
            let current = *members.borrow_and_update();
            if current != announced {
                publish(current);
                announced = current;
                last = Some(Instant::now());
            }
            continue;
        }
        if members.changed().await.is_err() {
            return;
        }
    }
}

/// The host name the service's address records are under: unique per
/// tracker (machines of a lab are often all called the same, and two
/// trackers sharing a host name would merge their addresses), from the
/// machine's name where it has one.
fn host_name(local: SocketAddr) -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let machine: String = machine
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(30)
        .collect();
    let mut seed = Sha256::new();
    seed.update(std::process::id().to_le_bytes());
    seed.update(local.to_string());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        seed.update(since.as_nanos().to_le_bytes());
    }
    let tag = hex::encode(&seed.finalize()[..4]);
    let machine = if machine.is_empty() {
        "confab".to_string()
    } else {
        machine
    };
    format!("{machine}-{tag}.local.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test(start_paused = true)]
    async fn member_counts_are_announced_at_most_once_per_gap() {
        let (members, rx) = watch::channel(0);
        let published = Arc::new(Mutex::new(Vec::new()));
        let seen = published.clone();
        let start = Instant::now();
        let task = tokio::spawn(keep_current(rx, 0, Duration::from_secs(2), move |n| {
            seen.lock().unwrap().push((n, start.elapsed().as_millis()));
        }));
        let settle = || tokio::time::sleep(Duration::from_millis(10));
        // The first change goes out at once.
        members.send_replace(1);
        settle().await;
        // A class arriving: four changes within the gap are one update,
        // with the latest count, when the gap is over.
        for n in 2..=5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            members.send_replace(n);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Later, a lone change after a quiet spell goes out at once.
        members.send_replace(4);
        settle().await;
        // Changes that cancel out within the gap are not announced.
        members.send_replace(5);
        members.send_replace(4);
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(members);
        task.await.unwrap();
        assert_eq!(
            *published.lock().unwrap(),
            vec![(1, 0), (5, 2000), (4, 5410)]
        );
    }

    #[test]
    fn host_names_are_dns_labels_and_differ_per_tracker() {
        let a = host_name("10.0.0.1:6697".parse().unwrap());
        let b = host_name("10.0.0.1:6698".parse().unwrap());
        assert_ne!(a, b);
        let label = a.strip_suffix(".local.").unwrap();
        assert!(label.len() <= 63, "{a}");
        assert!(
            label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{a}"
        );
    }
}
