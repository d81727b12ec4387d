//! `Sealed`: private key material encrypted (XChaCha20-Poly1305) before any
//! backend sees it.

use std::any::Any;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use datastore_core::{
    Datastore, Editable, Error, Key, Kind, PrivateKey, RecordId, Result, StoreName, Versioned,
};

use super::{Layer, Layered};

/// The prefix of sealed private key material as stored.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// A datastore whose Key records' private key material is sealed at rest.
pub type Sealed = Layered<Sealer>;

impl Sealed {
    /// Seals the private keys written through `inner` with `key`.
    pub fn wrap(inner: std::sync::Arc<dyn Datastore>, key: SealingKey) -> Self {
        Layered::new(inner, Sealer::new(key))
    }
}

/// A 256-bit sealing key. Its Debug output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealingKey([u8; 32]);

impl SealingKey {
    /// A new random key.
    pub fn generate() -> Self {
        SealingKey(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SealingKey(bytes)
    }

    /// The key as base64 text (the form [`FromStr`] reads). Keep it secret.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// Why a sealing key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("sealing key: {0} (expected 32 bytes as base64 or 64 hex digits)")]
pub struct SealingKeyError(&'static str);

impl FromStr for SealingKey {
    type Err = SealingKeyError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map_err(|_| SealingKeyError("not hex"))?
        } else {
            B64.decode(s)
                .map_err(|_| SealingKeyError("neither hex nor base64"))?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SealingKeyError("wrong length"))?;
        Ok(SealingKey(bytes))
    }
}

/// The [`Layer`] behind [`Sealed`].
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A sealer with `key`.
    pub fn new(key: SealingKey) -> Self {
        Sealer {
            cipher: XChaCha20Poly1305::new(&key.0.into()),
        }
    }

    /// Seals one key's private material, bound to its profile.
    fn seal(&self, key: &mut Key) -> Result<()> {
        let Some(material) = key.private_key.as_ref() else {
            return Ok(());
        };
        if material.expose().starts_with(SEALED_PREFIX) {
            // Sealed text (from an export that kept keys sealed) is stored
            // as it is, if it opens with this key for this profile.
            let mut check = key.clone();
            return self.open(&mut check).map_err(|_| {
                Error::invalid(
                    StoreName::Kind(Kind::Key),
                    key.id.key(),
                    "private_key",
                    "is sealed text that does not open with this store's sealing key (sealed with another key, or for another profile)",
                )
            });
        }
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: material.expose().as_bytes(),
                    aad: key.profile_id.key().as_bytes(),
                },
            )
            .map_err(|_| Error::Backend {
                store: StoreName::Kind(Kind::Key),
                key: key.id.key(),
                source: "sealing failed".into(),
            })?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        key.private_key = Some(PrivateKey::new(format!(
            "{SEALED_PREFIX}{}",
            B64.encode(blob)
        )));
        Ok(())
    }

    /// Opens one key's sealed material; plaintext (written before sealing was
    /// turned on) passes through unchanged.
    fn open(&self, key: &mut Key) -> Result<()> {
        let Some(text) = key
            .private_key
            .as_ref()
            .and_then(|m| m.expose().strip_prefix(SEALED_PREFIX))
        else {
            return Ok(());
        };
        let corrupt = |reason: &str| Error::Corrupt {
            store: StoreName::Kind(Kind::Key),
            key: key.id.key(),
            reason: format!("private key could not be opened: {reason}"),
        };
        let blob = B64
            .decode(text)
            .map_err(|_| corrupt("the sealed text is not base64"))?;
        if blob.len() < 24 {
            return Err(corrupt("the sealed text is truncated"));
        }
        let (nonce, sealed) = blob.split_at(24);
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| corrupt("the sealed text is truncated"))?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: key.profile_id.key().as_bytes(),
                },
            )
            .map_err(|_| {
                corrupt("the sealing key is wrong, or the sealed data was altered or moved to another profile")
            })?;
        let plain =
            String::from_utf8(plain).map_err(|_| corrupt("the opened material is not UTF-8"))?;
        key.private_key = Some(PrivateKey::new(plain));
        Ok(())
    }
}

impl Layer for Sealer {
    fn inbound<R: Editable>(&self, mut record: R) -> Result<R> {
        if let Some(key) = (&mut record as &mut dyn Any).downcast_mut::<Key>() {
            self.seal(key)?;
        }
        Ok(record)
    }

    fn outbound<R: Editable>(&self, mut found: Versioned<R>) -> Result<Versioned<R>> {
        if let Some(key) = (&mut found.value as &mut dyn Any).downcast_mut::<Key>() {
            self.open(key)?;
        }
        Ok(found)
    }
}
