//! The server password gate: an Argon2id hash, verified off the async threads.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use thiserror::Error;
use tokio::sync::Semaphore;
use zeroize::Zeroize;

#[derive(Debug, Error)]
pub enum PasswordError {
    #[error("the server password must not be empty")]
    Empty,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Holds only the PHC string of the password's Argon2id hash.
pub struct PasswordGate {
    phc: String,
    /// Each check costs tens of milliseconds of CPU and ~19 MiB of memory, so
    /// checks run on the blocking pool, at most one per core at a time: a
    /// login storm queues here instead of starving the chat or the memory.
    permits: Arc<Semaphore>,
}

impl PasswordGate {
    /// Hashes `plaintext` and wipes it.
    pub fn new(mut plaintext: String) -> Result<Self, PasswordError> {
        if plaintext.is_empty() {
            return Err(PasswordError::Empty);
        }
        let phc = Argon2::default()
            .hash_password(plaintext.as_bytes())
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .to_string();
        plaintext.zeroize();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(PasswordGate {
            phc,
            permits: Arc::new(Semaphore::new(cores)),
        })
    }

    pub async fn verify(&self, mut candidate: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let phc = self.phc.clone();
        tokio::task::spawn_blocking(move || {
            let ok = PasswordHash::new(&phc)
                .map(|hash| {
                    Argon2::default()
                        .verify_password(candidate.as_bytes(), &hash)
                        .is_ok()
                })
                .unwrap_or(false);
            candidate.zeroize();
            ok
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let gate = PasswordGate::new("s3cret pass".to_string()).unwrap();
        assert!(gate.phc.starts_with("$argon2id$"));
        assert!(gate.verify("s3cret pass".into()).await);
        assert!(!gate.verify("s3cret".into()).await);
        assert!(!gate.verify(String::new()).await);
        assert!(matches!(
            PasswordGate::new(String::new()),
            Err(PasswordError::Empty)
        ));
    }
}
