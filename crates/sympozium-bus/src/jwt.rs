//! NATS decentralized authentication (operator mode): the trust chain the server is
//! configured with and the user credentials the controller mints.
//!
//! ```text
//! operator (self-signed)  ──signs──▶  account "SYS" (system account)
//!                         ──signs──▶  account "SYMPOZIUM" (JetStream on, lists a signing key)
//! account signing key     ──signs──▶  one user per identity (controller, a channel instance,
//!                                     a run, the operator console), with its own subjects
//! ```
//!
//! The installer generates the four nkeys once ([`Trust::generate`]) and keeps their seeds in a
//! Secret; the server gets the operator and account JWTs inline in its configuration
//! ([`Trust::server_config`], resolver `MEMORY` with `resolver_preload`), so the server needs
//! no seed at all. The controller holds only the account *signing* seed ([`Issuer`]) and
//! mints short-lived user JWTs whose permissions come from [`crate::scope::Identity`].
//!
//! A token is `base64url(header) . base64url(claims) . base64url(ed25519 signature of the
//! first two parts)` (no padding), header `{"typ":"JWT","alg":"ed25519-nkey"}`; the claims
//! carry `jti` (base32 of a SHA-512/256 digest of the claims without it), `iat`, `iss` (the
//! signer's public nkey), `sub` (the subject's public nkey), optionally `exp`, and a `nats`
//! object with `type` and `version: 2`.

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::{KeyPair, KeyPairType};
use serde_json::{Value, json};
use sha2::{Digest, Sha512_256};

use crate::auth::Permissions;
use crate::scope::Identity;

/// Errors of key handling and token minting.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// A seed could not be decoded, or is of the wrong kind.
    #[error("{what}: {reason}")]
    Seed {
        /// Which seed.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error("signing a NATS token: {0}")]
    Sign(String),
    /// A credentials text could not be read.
    #[error("NATS credentials: {0}")]
    Credentials(String),
}

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Encodes and signs `claims` (a JSON object) with `signer`, filling in `jti`, `iat` and `iss`.
fn encode(mut claims: Value, signer: &KeyPair) -> Result<String, JwtError> {
    if let Some(map) = claims.as_object_mut() {
        map.insert("iat".into(), json!(now()));
        map.insert("iss".into(), json!(signer.public_key()));
        map.remove("jti");
        let digest = Sha512_256::digest(Value::Object(map.clone()).to_string().as_bytes());
        map.insert("jti".into(), json!(BASE32_NOPAD.encode(&digest)));
    }
    let signed = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(HEADER.as_bytes()),
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
    );
    let signature = signer.sign(signed.as_bytes()).map_err(|e| JwtError::Sign(e.to_string()))?;
    Ok(format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature)))
}

/// The claims of a token (not verified: for inspection and tests).
pub fn decode_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?).ok()
}

fn key_from_seed(seed: &str, kind: KeyPairType, what: &'static str) -> Result<KeyPair, JwtError> {
    let key = KeyPair::from_seed(seed.trim()).map_err(|e| JwtError::Seed { what, reason: e.to_string() })?;
    if key.key_pair_type() != kind {
        return Err(JwtError::Seed { what, reason: format!("expected a {kind:?} seed") });
    }
    Ok(key)
}

fn seed_of(key: &KeyPair) -> String {
    key.seed().unwrap_or_default()
}

/// Account limits with everything unlimited; `jetstream` turns JetStream on for the account.
fn account_limits(jetstream: bool) -> Value {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if jetstream && let Some(map) = limits.as_object_mut() {
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            map.insert(key.into(), json!(-1));
        }
    }
    limits
}

/// The whole trust chain, as the installer holds it (seeds in the Secret `sympozium-nats`).
pub struct Trust {
    operator: KeyPair,
    system_account: KeyPair,
    account: KeyPair,
    signing: KeyPair,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("operator", &self.operator.public_key())
            .field("account", &self.account.public_key())
            .field("seeds", &"<redacted>")
            .finish()
    }
}

/// The seeds of a [`Trust`] (what the installer stores).
#[derive(Clone, PartialEq, Eq)]
pub struct TrustSeeds {
    /// Operator seed (`SO…`).
    pub operator: String,
    /// System account seed (`SA…`).
    pub system_account: String,
    /// Application account seed (`SA…`).
    pub account: String,
    /// Account signing key seed (`SA…`), the only one the controller gets.
    pub signing: String,
}

impl std::fmt::Debug for TrustSeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrustSeeds(<redacted>)")
    }
}

impl Trust {
    /// Fresh random keys.
    pub fn generate() -> Self {
        Self {
            operator: KeyPair::new_operator(),
            system_account: KeyPair::new_account(),
            account: KeyPair::new_account(),
            signing: KeyPair::new_account(),
        }
    }

    /// The chain from stored seeds.
    pub fn from_seeds(seeds: &TrustSeeds) -> Result<Self, JwtError> {
        Ok(Self {
            operator: key_from_seed(&seeds.operator, KeyPairType::Operator, "operator seed")?,
            system_account: key_from_seed(
                &seeds.system_account,
                KeyPairType::Account,
                "system account seed",
            )?,
            account: key_from_seed(&seeds.account, KeyPairType::Account, "account seed")?,
            signing: key_from_seed(&seeds.signing, KeyPairType::Account, "account signing seed")?,
        })
    }

    /// The seeds, to store.
    pub fn seeds(&self) -> TrustSeeds {
        TrustSeeds {
            operator: seed_of(&self.operator),
            system_account: seed_of(&self.system_account),
            account: seed_of(&self.account),
            signing: seed_of(&self.signing),
        }
    }

    /// The application account's public key (every user belongs to it).
    pub fn account_public_key(&self) -> String {
        self.account.public_key()
    }

    /// What the controller needs to mint users.
    pub fn issuer(&self) -> Issuer {
        Issuer { account: self.account.public_key(), signing: clone_key(&self.signing) }
    }

    fn operator_jwt(&self) -> Result<String, JwtError> {
        let op = self.operator.public_key();
        encode(
            json!({
                "sub": op,
                "name": "sympozium",
                "nats": {"type": "operator", "version": 2, "system_account": self.system_account.public_key()},
            }),
            &self.operator,
        )
    }

    fn account_jwt(
        &self,
        key: &KeyPair,
        name: &str,
        jetstream: bool,
        signing_keys: &[String],
    ) -> Result<String, JwtError> {
        encode(
            json!({
                "sub": key.public_key(),
                "name": name,
                "nats": {
                    "type": "account", "version": 2,
                    "limits": account_limits(jetstream),
                    "signing_keys": signing_keys,
                    "default_permissions": {"pub": {}, "sub": {}},
                },
            }),
            &self.operator,
        )
    }

    /// The `nats.conf` of operator mode: the operator JWT, the system account and both account
    /// JWTs preloaded into the `MEMORY` resolver. There are no users in it and no anonymous
    /// access: a client needs a user JWT signed by the account's signing key (and the seed
    /// matching it) to connect. Port, JetStream and its store directory come from the command
    /// line (`-js -sd <dir>`).
    pub fn server_config(&self) -> Result<String, JwtError> {
        let sys = self.system_account.public_key();
        let app = self.account.public_key();
        let sys_jwt = self.account_jwt(&self.system_account, "SYS", false, &[])?;
        let app_jwt = self.account_jwt(&self.account, "SYMPOZIUM", true, &[self.signing.public_key()])?;
        // A run's JWT names its subjects and the four API grants of each of its five consumers,
        // which can make its CONNECT line longer than NATS's default limit of 4 KiB.
        Ok(format!(
            "max_control_line: 65536\noperator: \"{}\"\nsystem_account: \"{sys}\"\nresolver: MEMORY\nresolver_preload: {{\n  {sys}: \"{sys_jwt}\"\n  {app}: \"{app_jwt}\"\n}}\n",
            self.operator_jwt()?
        ))
    }
}

fn clone_key(key: &KeyPair) -> KeyPair {
    // A seed of a key we generated or decoded always decodes again.
    KeyPair::from_seed(&seed_of(key)).unwrap_or_else(|_| KeyPair::new_account())
}

/// Mints user credentials: the account's public key and its signing key (the controller's).
pub struct Issuer {
    account: String,
    signing: KeyPair,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("account", &self.account).field("signing", &"<redacted>").finish()
    }
}

fn list(items: &[String]) -> Value {
    json!(items)
}

fn permissions_json(p: &Permissions) -> Value {
    let side = |allow: &[String], deny: &[String]| {
        let mut m = serde_json::Map::new();
        if !allow.is_empty() {
            m.insert("allow".into(), list(allow));
        }
        if !deny.is_empty() {
            m.insert("deny".into(), list(deny));
        }
        Value::Object(m)
    };
    json!({
        "pub": side(&p.publish_allow, &p.publish_deny),
        "sub": side(&p.subscribe_allow, &p.subscribe_deny),
    })
}

impl Issuer {
    /// The issuer from the account's public key and the signing seed (the controller's Secret).
    pub fn from_seed(account_public_key: &str, signing_seed: &str) -> Result<Self, JwtError> {
        let account = account_public_key.trim();
        if KeyPair::from_public_key(account).map(|k| k.key_pair_type()).ok() != Some(KeyPairType::Account) {
            return Err(JwtError::Seed {
                what: "account public key",
                reason: "not an account public key".into(),
            });
        }
        Ok(Self {
            account: account.into(),
            signing: key_from_seed(signing_seed, KeyPairType::Account, "account signing seed")?,
        })
    }

    /// The public key of the account this issuer mints users of.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Credentials for `identity`: a fresh user nkey and a JWT granting exactly the identity's
    /// permissions (with its own reply inbox, derived from the user's public key), valid until
    /// `expires_at` (Unix seconds; `None` for no expiry).
    pub fn mint(&self, identity: &Identity, expires_at: Option<i64>) -> Result<UserCredentials, JwtError> {
        let user = KeyPair::new_user();
        let inbox = inbox_prefix(&user.public_key());
        let permissions = identity.permissions(&inbox);
        let mut nats = permissions_json(&permissions);
        if let Some(map) = nats.as_object_mut() {
            map.insert("issuer_account".into(), json!(self.account));
            map.insert("subs".into(), json!(-1));
            map.insert("data".into(), json!(-1));
            map.insert("payload".into(), json!(-1));
            map.insert("type".into(), json!("user"));
            map.insert("version".into(), json!(2));
        }
        let mut claims = json!({"sub": user.public_key(), "name": identity.to_string(), "nats": nats});
        if let (Some(exp), Some(map)) = (expires_at, claims.as_object_mut()) {
            map.insert("exp".into(), json!(exp));
        }
        Ok(UserCredentials { jwt: encode(claims, &self.signing)?, seed: seed_of(&user) })
    }
}

/// The reply-inbox prefix of the user with public key `user`: nobody else may read it.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// A user's JWT and nkey seed: what a client connects with.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// The user JWT.
    pub jwt: String,
    /// The user's nkey seed (`SU…`), signs the server's nonce.
    pub seed: String,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.public_key())
            .field("seed", &"<redacted>")
            .finish()
    }
}

const JWT_BEGIN: &str = "-----BEGIN NATS USER JWT-----";
const JWT_END: &str = "------END NATS USER JWT------";
const SEED_BEGIN: &str = "-----BEGIN USER NKEY SEED-----";
const SEED_END: &str = "------END USER NKEY SEED------";

impl UserCredentials {
    /// The user's public key (empty if the seed is broken).
    pub fn public_key(&self) -> String {
        KeyPair::from_seed(&self.seed).map(|k| k.public_key()).unwrap_or_default()
    }

    /// The reply-inbox prefix this user may read.
    pub fn inbox_prefix(&self) -> String {
        inbox_prefix(&self.public_key())
    }

    /// The standard `.creds` text (what the Secret key holds).
    pub fn to_creds(&self) -> String {
        format!(
            "{JWT_BEGIN}\n{}\n{JWT_END}\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\nNKEYs are sensitive and should be treated as secrets.\n\n{SEED_BEGIN}\n{}\n{SEED_END}\n",
            self.jwt, self.seed
        )
    }

    /// Reads a `.creds` text.
    pub fn from_creds(text: &str) -> Result<Self, JwtError> {
        let between = |begin: &str, end: &str| -> Option<String> {
            let start = text.find(begin)? + begin.len();
            let stop = start + text.get(start..)?.find(end)?;
            Some(text.get(start..stop)?.trim().to_string())
        };
        let jwt = between(JWT_BEGIN, JWT_END)
            .filter(|j| j.split('.').count() == 3)
            .ok_or_else(|| JwtError::Credentials("no user JWT between the markers".into()))?;
        let seed = between(SEED_BEGIN, SEED_END)
            .ok_or_else(|| JwtError::Credentials("no user nkey seed between the markers".into()))?;
        key_from_seed(&seed, KeyPairType::User, "user nkey seed")?;
        Ok(Self { jwt, seed })
    }

    /// Credentials given as `.creds` text (a Secret's value in an env var) or as the path of
    /// a `.creds` file (the operator console's `--nats-creds`).
    pub fn load(text_or_path: &str) -> Result<Self, JwtError> {
        let value = text_or_path.trim();
        if value.contains(JWT_BEGIN) {
            return Self::from_creds(value);
        }
        let text = std::fs::read_to_string(value)
            .map_err(|e| JwtError::Credentials(format!("reading the credentials file {value}: {e}")))?;
        Self::from_creds(&text)
    }

    /// The identity the JWT was minted for (its `name` claim, e.g. `channel/<ns>/<instance>`).
    pub fn name(&self) -> Option<String> {
        decode_claims(&self.jwt)?.get("name")?.as_str().map(str::to_string)
    }

    /// The account that issued the JWT.
    pub fn issuer_account(&self) -> Option<String> {
        decode_claims(&self.jwt)?.get("nats")?.get("issuer_account")?.as_str().map(str::to_string)
    }

    /// The expiry the JWT states (Unix seconds).
    pub fn expires_at(&self) -> Option<i64> {
        decode_claims(&self.jwt)?.get("exp")?.as_i64()
    }

    pub(crate) fn key_pair(&self) -> Result<KeyPair, JwtError> {
        key_from_seed(&self.seed, KeyPairType::User, "user nkey seed")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_are_signed_by_their_issuer_and_carry_the_nats_claims() {
        let trust = Trust::generate();
        let creds = trust.issuer().mint(&Identity::channel("team-a", "support"), Some(now() + 60)).unwrap();
        let [header, payload, signature]: [&str; 3] =
            creds.jwt.split('.').collect::<Vec<_>>().try_into().unwrap();
        assert_eq!(BASE64URL_NOPAD.decode(header.as_bytes()).unwrap(), HEADER.as_bytes());
        let claims = decode_claims(&creds.jwt).unwrap();
        assert_eq!(claims["iss"], KeyPair::from_seed(&trust.seeds().signing).unwrap().public_key());
        assert_eq!(claims["sub"], creds.public_key());
        assert_eq!(claims["nats"]["type"], "user");
        assert_eq!(claims["nats"]["issuer_account"], trust.account_public_key());
        assert!(claims["jti"].as_str().unwrap().len() > 20);
        let signer = KeyPair::from_public_key(claims["iss"].as_str().unwrap()).unwrap();
        signer
            .verify(
                format!("{header}.{payload}").as_bytes(),
                &BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap(),
            )
            .unwrap();
        assert!(creds.expires_at().unwrap() > now());
    }

    #[test]
    fn creds_text_round_trips_and_seeds_are_never_printed() {
        let trust = Trust::generate();
        let creds = trust.issuer().mint(&Identity::Controller, None).unwrap();
        assert_eq!(UserCredentials::from_creds(&creds.to_creds()).unwrap(), creds);
        // Seeds are compared whole: a public key's random base32 may well contain "SU".
        let printed = format!("{creds:?}{trust:?}{:?}{:?}", trust.seeds(), trust.issuer());
        let seeds = trust.seeds();
        let user_seed =
            creds.to_creds().split_whitespace().find(|w| w.starts_with("SU")).unwrap().to_string();
        for seed in [&seeds.operator, &seeds.system_account, &seeds.account, &seeds.signing, &user_seed] {
            assert!(seed.len() > 40 && !printed.contains(seed.as_str()), "a seed was printed");
        }
        assert!(UserCredentials::from_creds("garbage").unwrap_err().to_string().contains("no user JWT"));
        let again = Trust::from_seeds(&trust.seeds()).unwrap();
        assert_eq!(again.account_public_key(), trust.account_public_key());
        let mut wrong = trust.seeds();
        wrong.operator = wrong.account.clone();
        assert!(Trust::from_seeds(&wrong).unwrap_err().to_string().contains("operator seed"));
        assert!(Issuer::from_seed("nope", &trust.seeds().signing).is_err());
    }
}
