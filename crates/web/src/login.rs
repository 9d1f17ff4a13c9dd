//! Signing in, shared by the API and the login page: throttled, then locked, never revealing
//! more than "wrong pair" to someone who does not know the password.

use crate::AppState;
use keping_domain::auth;
use keping_domain::now_millis;
use keping_store::{accounts, tokens, StoreError};
use std::time::Duration;

pub enum LoginError {
    WrongPair,
    Locked { minutes: i64 },
    Disabled,
    Store(StoreError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Store(e)
    }
}

/// A hash to verify against when the username is unknown, so both cases take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| auth::hash_password("keping-decoy-password"))
}

pub async fn hash(password: String) -> String {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .expect("hashing does not panic")
}

async fn verify(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .unwrap_or(false)
}

/// Checks the pair and opens a session. Returns (session secret, user id, username, name).
pub async fn attempt(
    state: &AppState,
    username: &str,
    password: &str,
    client: &str,
) -> Result<(String, i64, String, String), LoginError> {
    let Some(user) = accounts::credentials(&state.db, username).await? else {
        verify(decoy_hash().to_string(), password.to_string()).await;
        return Err(LoginError::WrongPair);
    };
    if let Some(until) = user.locked_until.filter(|u| *u > now_millis()) {
        return Err(LoginError::Locked {
            minutes: ((until - now_millis()) / 60_000).max(1),
        });
    }
    if !verify(user.password_hash.clone(), password.to_string()).await {
        let failures = accounts::record_login_failure(&state.db, &user).await?;
        tokio::time::sleep(Duration::from_millis(auth::login_delay_ms(failures))).await;
        if failures >= auth::LOCK_AFTER_FAILURES {
            return Err(LoginError::Locked {
                minutes: auth::LOCK_MINUTES,
            });
        }
        return Err(LoginError::WrongPair);
    }
    if user.enabled == 0 {
        return Err(LoginError::Disabled);
    }
    accounts::record_login_success(&state.db, &user).await?;
    let secret = tokens::create_session(&state.db, user.id, client).await?;
    Ok((secret, user.id, user.username, user.name))
}
