//! Registered rooms: a room created by someone logged in to an account
//! is registered (`policy::registers_room`). Its founder rights belong to
//! the account, not to the connection: whoever is logged in to it becomes
//! the founder (`~`, and `@`) on joining, after a nick change, a reconnect
//! or a restart. Its topic, modes (key and limit too), bans and creation
//! time are kept in the store and loaded at start, before anyone connects;
//! an empty registered room stays (LIST shows it). CLOSE, by the founder or
//! a tracker operator, drops the registration; deleting the founder's
//! account leaves the room to the members in it, unregistered.
//!
//! A room created without an account is not registered: its founder is
//! the connection that created it, and it is gone when it empties (and at
//! a restart), as before.
//!
//! The hub never waits for the store: handlers mark a registered room as
//! changed (`room_changed`), and at the end of the batch each changed room
//! is saved once, whole, as a [`StoreJob`] the store's thread runs.

use std::collections::BTreeSet;

use super::super::policy;
use super::super::shared::{ConnId, HubRequest};
use super::HistorySink;
use super::chat::Chat;
use super::state::{Ban, Room, RoomModes, Topic};
use crate::proto::Message;
use crate::proto::nick::{self, casefold};
use crate::store::{RegisteredRoom, RoomBan};

/// Work for the store's thread that nobody waits for: registered rooms
/// saved and dropped, and history purged (`retention.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreJob {
    /// Replace what is kept of a registered room with this.
    SaveRoom(RegisteredRoom),
    /// Forget a registered room (casefolded name): closed.
    DropRoom(String),
    /// Delete history older than `before_ms` (`--history-days days`); the
    /// answer comes back as `HubRequest::HistoryPurged`.
    Purge { before_ms: i64, days: u32 },
}

/// What the hub keeps of registered rooms between handlers and the end of
/// the batch.
#[derive(Default)]
pub struct Keep {
    /// Registered rooms changed in this batch (casefolded): each is saved
    /// once, at the end of the batch, as it is then.
    dirty: BTreeSet<String>,
    /// Drops and purges, in the order they were asked for.
    pub(super) jobs: Vec<StoreJob>,
}

impl Chat {
    /// The rooms registered in the store, recreated empty before anyone
    /// connects. A row that does not make a valid room (a name this
    /// version refuses) is skipped and said.
    pub fn load_registered_rooms(&mut self, rooms: Vec<RegisteredRoom>) {
        for kept in rooms {
            let key = casefold(&kept.shown);
            if !nick::valid_channel(&kept.shown) || self.state.rooms.contains_key(&key) {
                tracing::warn!(
                    room = %crate::proto::sanitize::for_display(&kept.shown),
                    "a registered room in the store is not a valid room name here; not loaded"
                );
                continue;
            }
            let room = restore(kept, self.config.started);
            self.state.rooms.insert(key, room);
        }
    }

    /// A room just created by `id`: registered when its creator is logged
    /// in to an account.
    pub(super) fn register_created_room(&mut self, id: ConnId, key: &str) {
        let account = self.state.users.get(&id).and_then(|u| u.account.clone());
        if !policy::registers_room(account.as_deref(), self.accounts.enabled) {
            return;
        }
        if let Some(room) = self.state.rooms.get_mut(key) {
            room.founder_account = account;
            self.keep.dirty.insert(key.to_string());
        }
    }

    /// `REGISTER` made `account` for `id`: the rooms it founded in this
    /// connection become registered to it, as if created logged in.
    pub(super) fn register_founded_rooms(&mut self, id: ConnId, account: &str) {
        if !policy::registers_room(Some(account), self.accounts.enabled) {
            return;
        }
        for (key, room) in self.state.rooms.iter_mut() {
            let founded = room.roles_of(id).is_some_and(|r| r.founder);
            if founded && room.founder_account.is_none() && !room.is_general() {
                room.founder_account = Some(account.to_string());
                self.keep.dirty.insert(key.clone());
            }
        }
    }

    /// The founder account's login `id` just joined `chname` (registered):
    /// everyone in it sees them made founder and operator, as a services
    /// bot would do it on other networks.
    pub(super) fn tell_founder_joined(&mut self, id: ConnId, chname: &str, members: &[ConnId]) {
        let nick = self.nick_of(id);
        let server = self.config.server_name.clone();
        let mut out = self.outgoing(
            Message::new("MODE")
                .with_source(server)
                .param(chname.to_string())
                .param("+qo")
                .param(nick.clone())
                .param(nick),
        );
        self.broadcast(members, &mut out, |_| true);
    }

    /// Something kept of `chname` changed (topic, modes, bans): saved at
    /// the end of the batch if it is registered.
    pub(super) fn room_changed(&mut self, chname: &str) {
        let key = casefold(chname);
        if self
            .state
            .rooms
            .get(&key)
            .is_some_and(|r| r.founder_account.is_some())
        {
            self.keep.dirty.insert(key);
        }
    }

    /// `chname` is being closed: its registration is dropped.
    pub(super) fn room_closed(&mut self, chname: &str) {
        let key = casefold(chname);
        let registered = self
            .state
            .rooms
            .get(&key)
            .is_some_and(|r| r.founder_account.is_some());
        if registered {
            self.keep.dirty.remove(&key);
            self.keep.jobs.push(StoreJob::DropRoom(key));
        }
    }

    /// The account `folded` was deleted (the store dropped its rooms with
    /// it): its rooms stay for the members in them, unregistered, and an
    /// empty one is gone. Founder marks held now stay until their holders
    /// leave, as in any unregistered room.
    pub(super) fn unregister_rooms_of(&mut self, folded: &str) {
        for room in self.state.rooms.values_mut() {
            if room
                .founder_account
                .as_deref()
                .is_some_and(|a| casefold(a) == folded)
            {
                room.founder_account = None;
                self.keep.dirty.remove(&casefold(&room.name));
            }
        }
        self.state
            .rooms
            .retain(|_, room| !room.members.is_empty() || room.outlives_members());
    }

    /// This batch's work for the store: drops and purges in order, then
    /// each changed registered room saved as it is now.
    pub fn take_store_jobs(&mut self) -> Vec<StoreJob> {
        let mut jobs = std::mem::take(&mut self.keep.jobs);
        for key in std::mem::take(&mut self.keep.dirty) {
            if let Some(room) = self.state.rooms.get(&key)
                && room.founder_account.is_some()
            {
                jobs.push(StoreJob::SaveRoom(snapshot(room)));
            }
        }
        jobs
    }
}

/// What the store keeps of a registered room.
pub fn snapshot(room: &Room) -> RegisteredRoom {
    let m = &room.modes;
    let modes: String = [
        (m.invite_only, 'i'),
        (m.moderated, 'm'),
        (m.no_outside, 'n'),
        (m.secret, 's'),
        (m.topic_ops_only, 't'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect();
    let topic = room.topic.as_ref();
    RegisteredRoom {
        name: casefold(&room.name),
        shown: room.name.clone(),
        founder: room
            .founder_account
            .as_deref()
            .map(casefold)
            .unwrap_or_default(),
        created_ms: room.created.as_millisecond(),
        topic: topic.map(|t| t.text.clone()).unwrap_or_default(),
        topic_by: topic.map(|t| t.setter.clone()).unwrap_or_default(),
        topic_ms: topic.map_or(0, |t| t.at.as_millisecond()),
        modes,
        key: m.key.clone(),
        limit: m.limit.and_then(|l| u32::try_from(l).ok()),
        bans: room
            .bans
            .iter()
            .map(|b| RoomBan {
                mask: b.mask.clone(),
                set_by: b.setter.clone(),
                set_ms: b.at.as_millisecond(),
            })
            .collect(),
    }
}

/// A registered room as the store kept it, with nobody in it; a time the
/// file holds out of range reads as `fallback`.
pub fn restore(kept: RegisteredRoom, fallback: jiff::Timestamp) -> Room {
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap_or(fallback);
    let mut room = Room::new(&kept.shown, at(kept.created_ms));
    room.founder_nick = Some(kept.founder.clone());
    room.founder_account = Some(kept.founder);
    if !kept.topic.is_empty() {
        room.topic = Some(Topic {
            text: kept.topic,
            setter: kept.topic_by,
            at: at(kept.topic_ms),
        });
    }
    let has = |c: char| kept.modes.contains(c);
    room.modes = RoomModes {
        invite_only: has('i'),
        key: kept.key.filter(|k| !k.is_empty()),
        limit: kept.limit.filter(|l| *l > 0).map(|l| l as usize),
        moderated: has('m'),
        no_outside: has('n'),
        topic_ops_only: has('t'),
        secret: has('s'),
    };
    room.bans = kept
        .bans
        .into_iter()
        .map(|b| Ban {
            mask: b.mask,
            setter: b.set_by,
            at: at(b.set_ms),
        })
        .collect();
    room
}

impl HistorySink {
    /// Hands a [`StoreJob`] to the store's thread; returns at once. A room
    /// that cannot be saved is said in the diagnostics (the room goes on
    /// in memory; the next change saves it whole again).
    pub(super) fn start_store_job(&self, job: StoreJob) {
        match job {
            StoreJob::SaveRoom(room) => {
                let name = room.shown.clone();
                self.store.call_then(
                    move |s| s.save_room(&room),
                    move |r| match r {
                        Ok(Ok(())) => {}
                        // Deleted while the change was on its way: the
                        // hub unregisters the room when it hears.
                        Ok(Err(crate::store::StoreError::NoSuchAccount(a))) => tracing::info!(
                            "registered room {name}: not saved, its founder account {a} was deleted"
                        ),
                        Ok(Err(e)) | Err(e) => {
                            tracing::error!("registered room {name}: cannot save it: {e}")
                        }
                    },
                )
            }
            StoreJob::DropRoom(name) => self.store.call_then(
                move |s| s.drop_room(&name),
                |r| {
                    if let Ok(Err(e)) | Err(e) = r {
                        tracing::error!("registered room: cannot drop it: {e}");
                    }
                },
            ),
            StoreJob::Purge { before_ms, days } => {
                purge_step(self.store.clone(), self.inbox.clone(), before_ms, days, 0)
            }
        }
    }
}

/// One chunk of a purge; the next is queued behind whatever was asked of
/// the store meanwhile (a page, an append), and the last one's answer goes
/// to the hub with the total.
fn purge_step(
    store: crate::store::StoreHandle,
    inbox: tokio::sync::mpsc::WeakSender<HubRequest>,
    before_ms: i64,
    days: u32,
    so_far: usize,
) {
    let again = store.clone();
    store.call_then(
        move |s| s.purge_chunk(before_ms),
        move |r| {
            let removed = match r {
                Ok(Ok(n)) if n == crate::store::PURGE_CHUNK => {
                    return purge_step(again, inbox, before_ms, days, so_far + n);
                }
                Ok(Ok(n)) => Ok(so_far + n),
                Ok(Err(e)) | Err(e) => Err(e.to_string()),
            };
            if let Some(inbox) = inbox.upgrade() {
                let _ = inbox.blocking_send(HubRequest::HistoryPurged {
                    before_ms,
                    days,
                    removed,
                });
            }
        },
    );
}
