//! Accounts as a connection task sees them: checking a login (SASL PLAIN)
//! and hashing a new password, both off the hub's thread.
//!
//! A login reads the account's hash from the store (on the store's thread)
//! and verifies it on tokio's blocking pool; wrong passwords spend the
//! address's allowance of guesses, shared with the server password and
//! `OPER`, so an account cannot be guessed faster than the tracker can.
//! Hashing a new password (`REGISTER`, `ACCOUNT PASSWORD`) runs on the
//! blocking pool too. The hub decides who may do what and tells the store;
//! this module only answers "is this the password" and "what is its hash".

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use argon2::{Argon2, PasswordVerifier};
use thiserror::Error;
use zeroize::Zeroizing;

use super::opers::hash_password;
use super::password::GuessBudget;
use super::shared::ConnId;
use crate::proto::nick::casefold;
use crate::store::{StoreError, StoreHandle};

/// Account passwords shorter than this are refused at `REGISTER`.
pub const MIN_PASSWORD: usize = 8;
/// Account passwords longer than this are refused (Argon2 would take them,
/// but nobody types one; a long one is a mistake or a flood).
pub const MAX_PASSWORD: usize = 300;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LoginRefused {
    #[error("wrong account name or password")]
    Wrong,
    #[error("too many wrong passwords from your address; try again in a minute")]
    Throttled,
    #[error("the account store is not answering; try again later")]
    StoreDown,
}

/// The way to accounts for connection tasks (SASL) and the hub's account
/// jobs: the store's handle and the allowance of wrong guesses.
pub struct AccountGate {
    store: StoreHandle,
    guesses: Arc<GuessBudget>,
}

impl AccountGate {
    pub fn new(store: StoreHandle, guesses: Arc<GuessBudget>) -> AccountGate {
        AccountGate { store, guesses }
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Checks `password` for `account`: the account's name as registered
    /// when right. An unknown account costs a guess like a wrong password,
    /// and takes as long, so names cannot be probed.
    pub async fn login(
        &self,
        account: &str,
        password: Zeroizing<String>,
        ip: IpAddr,
    ) -> Result<String, LoginRefused> {
        let mut queued = self.guesses.queue(ip, Instant::now());
        let Ok(running) = queued.try_start(Instant::now()) else {
            tracing::warn!(%ip, "login refused unchecked: too many wrong passwords from this address");
            return Err(LoginRefused::Throttled);
        };
        let folded = casefold(account);
        let found = self
            .store
            .call(move |s| s.account(&folded))
            .await
            .map_err(|_| LoginRefused::StoreDown)?
            .map_err(|_| LoginRefused::StoreDown)?;
        // An unknown name is checked against a hash of nothing, so both
        // cost one Argon2 run.
        let (shown, hash) = match found {
            Some(a) => (Some(a.shown), a.password_hash),
            None => (None, UNKNOWN_ACCOUNT_HASH.to_string()),
        };
        let right = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        let ok = right && shown.is_some();
        running.settle(ok, Instant::now());
        match shown.filter(|_| ok) {
            Some(shown) => {
                tracing::info!(%ip, account = %shown, "logged in to an account");
                Ok(shown)
            }
            None => {
                tracing::warn!(%ip, account = %crate::proto::sanitize::for_display(account), "wrong account name or password");
                Err(LoginRefused::Wrong)
            }
        }
    }
}

/// Account work the hub asks for and never waits on: hashing, checking a
/// password, the store. The hub's runtime runs each as a task and hands
/// back an [`AccountDone`]; in-process tests run them and hand the result
/// back themselves.
#[derive(Debug)]
pub enum AccountJob {
    /// `REGISTER`: hash `password`, create `account` (casefolded as `name`).
    Create {
        conn: ConnId,
        account: String,
        password: Zeroizing<String>,
    },
    /// `ACCOUNT PASSWORD`: check `current`, then store a hash of `new`.
    ChangePassword {
        conn: ConnId,
        account: String,
        current: Zeroizing<String>,
        new: Zeroizing<String>,
        ip: IpAddr,
    },
    /// `ACCOUNT RESET` by a tracker operator: store a hash of `new`.
    Reset {
        conn: ConnId,
        account: String,
        new: Zeroizing<String>,
    },
    /// `ACCOUNT DELETE`: check `password`, then delete the account and
    /// what it kept.
    Delete {
        conn: ConnId,
        account: String,
        password: Zeroizing<String>,
        ip: IpAddr,
    },
}

/// How an [`AccountJob`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountDone {
    Created {
        conn: ConnId,
        account: String,
        result: Result<(), AccountFailure>,
    },
    PasswordChanged {
        conn: ConnId,
        account: String,
        result: Result<(), AccountFailure>,
    },
    Reset {
        conn: ConnId,
        account: String,
        result: Result<(), AccountFailure>,
    },
    Deleted {
        conn: ConnId,
        account: String,
        result: Result<(), AccountFailure>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccountFailure {
    #[error("that account exists already")]
    Exists,
    #[error("there is no such account")]
    NoSuchAccount,
    #[error("{0}")]
    Refused(LoginRefused),
    #[error("the account store could not save it ({0}); nothing was changed")]
    Store(String),
}

impl AccountGate {
    /// Does `job`, however long it takes; never fails to answer.
    pub async fn run(&self, job: AccountJob) -> AccountDone {
        match job {
            AccountJob::Create {
                conn,
                account,
                password,
            } => {
                let result = self.create(&account, password).await;
                AccountDone::Created {
                    conn,
                    account,
                    result,
                }
            }
            AccountJob::ChangePassword {
                conn,
                account,
                current,
                new,
                ip,
            } => {
                let result = match self.login(&account, current, ip).await {
                    Ok(_) => self.set_password(&account, new).await,
                    Err(e) => Err(AccountFailure::Refused(e)),
                };
                AccountDone::PasswordChanged {
                    conn,
                    account,
                    result,
                }
            }
            AccountJob::Reset { conn, account, new } => {
                let result = self.set_password(&account, new).await;
                AccountDone::Reset {
                    conn,
                    account,
                    result,
                }
            }
            AccountJob::Delete {
                conn,
                account,
                password,
                ip,
            } => {
                let result = match self.login(&account, password, ip).await {
                    Ok(_) => {
                        let folded = casefold(&account);
                        self.store_result(move |s| s.delete_account(&folded)).await
                    }
                    Err(e) => Err(AccountFailure::Refused(e)),
                };
                AccountDone::Deleted {
                    conn,
                    account,
                    result,
                }
            }
        }
    }

    async fn create(
        &self,
        account: &str,
        password: Zeroizing<String>,
    ) -> Result<(), AccountFailure> {
        let hash = hash_new_password(password)
            .await
            .ok_or_else(|| AccountFailure::Store("cannot hash the password".into()))?;
        let (folded, shown) = (casefold(account), account.to_string());
        let now = jiff::Timestamp::now().as_millisecond();
        self.store_result(move |s| s.create_account(&folded, &shown, &hash, now))
            .await
    }

    async fn set_password(
        &self,
        account: &str,
        password: Zeroizing<String>,
    ) -> Result<(), AccountFailure> {
        let hash = hash_new_password(password)
            .await
            .ok_or_else(|| AccountFailure::Store("cannot hash the password".into()))?;
        let folded = casefold(account);
        self.store_result(move |s| s.set_password_hash(&folded, &hash))
            .await
    }

    async fn store_result(
        &self,
        f: impl FnOnce(&mut crate::store::Store) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), AccountFailure> {
        match self.store.call(f).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(StoreError::AccountExists(_))) => Err(AccountFailure::Exists),
            Ok(Err(StoreError::NoSuchAccount(_))) => Err(AccountFailure::NoSuchAccount),
            Ok(Err(e)) | Err(e) => {
                tracing::error!("account store: {e}");
                Err(AccountFailure::Store(e.to_string()))
            }
        }
    }
}

/// The Argon2id hash of `password` for the store, on the blocking pool.
/// `None` when hashing failed (it does not, for a password in bounds).
pub async fn hash_new_password(password: Zeroizing<String>) -> Option<String> {
    tokio::task::spawn_blocking(move || hash_password(&password).ok())
        .await
        .ok()
        .flatten()
}

/// Why a new account password is refused, if it is.
pub fn password_rule(password: &str) -> Option<&'static str> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        Some("the password must be at least 8 characters")
    } else if password.len() > MAX_PASSWORD {
        Some("the password must be at most 300 bytes")
    } else {
        None
    }
}

/// A valid Argon2id hash no password is known to match (of a random
/// 32-byte string, thrown away): what an unknown account is checked
/// against.
const UNKNOWN_ACCOUNT_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0m7CJr0m7Y7OQy7vZ2mRi5FZ3X2Jv1g5i0w6yK1k1sM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_account_hash_parses_and_matches_nothing_simple() {
        for guess in ["", "password", "alice"] {
            assert!(
                Argon2::default()
                    .verify_password(guess.as_bytes(), UNKNOWN_ACCOUNT_HASH)
                    .is_err()
            );
        }
        assert!(argon2::password_hash::phc::PasswordHash::new(UNKNOWN_ACCOUNT_HASH).is_ok());
    }

    #[test]
    fn password_rules() {
        assert!(password_rule("short").is_some());
        assert!(password_rule("long enough").is_none());
        assert!(password_rule(&"x".repeat(301)).is_some());
    }
}
