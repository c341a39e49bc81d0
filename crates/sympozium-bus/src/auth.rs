//! NATS permissions and secrets shared by the bus's users.
//!
//! NATS runs in operator mode ([`crate::jwt`]): every client connects as a user minted for
//! one identity ([`crate::scope::Identity`]) whose JWT carries its [`Permissions`]. A
//! connection without a user JWT of the installation's account is refused.

/// NATS permissions of one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish on.
    pub publish_allow: Vec<String>,
    /// Subjects it may not publish on (deny wins).
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe_allow: Vec<String>,
    /// Subjects it may not subscribe to (deny wins).
    pub subscribe_deny: Vec<String>,
}

/// A random secret (32 bytes, hex): origin master keys.
pub fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_random_and_long() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
