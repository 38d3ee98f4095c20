//! Tracker operators: the `[[oper]]` blocks of the config file (a name
//! and the Argon2id hash of a password, printed by `tracker
//! hash-password`), and the check of an `OPER` attempt.
//!
//! The check runs on tokio's blocking pool, not on the hub's thread (an
//! Argon2 check costs tens of milliseconds and ~19 MiB: the hub must never
//! wait for one), and wrong attempts are throttled per address like the
//! server password.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use argon2::password_hash::PasswordHasher;
use argon2::{Argon2, PasswordVerifier};
use thiserror::Error;

use super::password::GuessBudget;

/// One operator block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperBlock {
    pub name: String,
    /// The PHC string of the password's Argon2id hash.
    pub hash: String,
}

#[derive(Debug, Error)]
pub enum OperError {
    #[error(
        "operator {name:?}: the password hash is not an Argon2 PHC string ({why}); make one with `tracker hash-password`"
    )]
    BadHash { name: String, why: String },
    #[error("operator name {0:?} is empty or has spaces")]
    BadName(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The Argon2id hash of `password`, as the config file wants it.
pub fn hash_password(password: &str) -> Result<String, OperError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| OperError::Hash(e.to_string()))
}

pub struct OperGate {
    blocks: Arc<Vec<OperBlock>>,
    /// Wrong attempts spend an allowance, as wrong server passwords do;
    /// with none left an attempt is refused unchecked.
    guesses: Arc<GuessBudget>,
}

impl OperGate {
    /// Checks every block's name and hash up front, so a typo in the
    /// config stops the tracker at start, not the operator at `OPER`.
    pub fn new(blocks: Vec<OperBlock>, guesses: GuessBudget) -> Result<OperGate, OperError> {
        for b in &blocks {
            if b.name.is_empty() || b.name.contains(char::is_whitespace) {
                return Err(OperError::BadName(b.name.clone()));
            }
            argon2::password_hash::phc::PasswordHash::new(&b.hash).map_err(|e| {
                OperError::BadHash {
                    name: b.name.clone(),
                    why: e.to_string(),
                }
            })?;
        }
        Ok(OperGate {
            blocks: Arc::new(blocks),
            guesses: Arc::new(guesses),
        })
    }

    /// The block's name when `name` and `password` match one, else `None`
    /// (also while `ip` is throttled after wrong attempts).
    pub async fn check(&self, name: &str, password: &str, ip: IpAddr) -> Option<String> {
        let mut queued = self.guesses.queue(ip, Instant::now());
        let running = match queued.try_start(Instant::now()) {
            Ok(running) => running,
            Err(_) => {
                tracing::warn!(%ip, "OPER refused unchecked: too many wrong attempts from this address");
                return None;
            }
        };
        let block = self.blocks.iter().find(|b| b.name == name).cloned();
        let password = password.to_string();
        let ok = match block {
            Some(block) => tokio::task::spawn_blocking(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), block.hash.as_str())
                    .is_ok()
                    .then_some(block.name)
            })
            .await
            .ok()
            .flatten(),
            None => None,
        };
        running.settle(ok.is_some(), Instant::now());
        match &ok {
            Some(n) => tracing::info!(%ip, oper = %n, "OPER granted"),
            None => {
                tracing::warn!(%ip, name = %crate::proto::sanitize::for_display(name), "wrong OPER name or password")
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn right_password_grants_wrong_ones_are_throttled() {
        let hash = hash_password("s3cret").expect("hash");
        let gate = OperGate::new(
            vec![OperBlock {
                name: "teacher".into(),
                hash,
            }],
            GuessBudget::new(
                super::super::password::GuessLimits {
                    per_address: super::super::password::Allowance {
                        burst: 2,
                        per_minute: 1,
                    },
                    ..Default::default()
                },
                Instant::now(),
            ),
        )
        .expect("valid");
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            gate.check("teacher", "s3cret", ip).await.as_deref(),
            Some("teacher")
        );
        assert_eq!(gate.check("teacher", "wrong", ip).await, None);
        assert_eq!(gate.check("nobody", "s3cret", ip).await, None);
        // Two wrong attempts spent the allowance: even the right password
        // is not checked now.
        assert_eq!(gate.check("teacher", "s3cret", ip).await, None);
        assert!(
            OperGate::new(
                vec![OperBlock {
                    name: "x".into(),
                    hash: "plain".into()
                }],
                GuessBudget::new(Default::default(), Instant::now())
            )
            .is_err()
        );
    }
}
