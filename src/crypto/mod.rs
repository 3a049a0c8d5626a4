//! Field encryption, blind indexes and the secret types that carry key material.
//!
//! Every personal value at rest is sealed here with XChaCha20-Poly1305 under its case key, with
//! associated data `<table>.<column>:<row id>` so that a ciphertext copied to another row or column
//! fails to open. Only this module turns a [`Sealed`] value back into plaintext.

pub mod keyring;
pub mod stream;

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

pub use keyring::{KeyService, KeyStatus, Keyring};

/// Format byte in front of every field ciphertext, so the layout can change later.
const FIELD_FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Failures of the cryptographic layer. They never carry key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext does not open under this key and place (tampered, moved or wrong key)")]
    Open,
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("keyring version {0} is not available")]
    UnknownVersion(i64),
    #[error("the case key has been destroyed (case erased)")]
    Erased,
}

/// A 256-bit symmetric key: zeroized on drop, never printed.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Malformed)?;
        Ok(SecretKey(arr))
    }

    /// The raw bytes, for the one place that seals this key under another.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(redacted)")
    }
}

/// A secret string such as a password or a bearer token: zeroized on drop, never printed.
#[derive(Clone, Zeroize, serde::Deserialize)]
#[zeroize(drop)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(redacted)")
    }
}

/// Where a sealed value lives; bound into the ciphertext as associated data.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row: &'a str,
}

impl<'a> Place<'a> {
    pub fn new(table: &'static str, column: &'static str, row: &'a str) -> Self {
        Place { table, column, row }
    }

    fn aad(&self) -> Vec<u8> {
        format!("{}.{}:{}", self.table, self.column, self.row).into_bytes()
    }
}

/// A sealed (encrypted and authenticated) value as stored in the database.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Sealed(bytes)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// Encrypt `plaintext` under `key`, bound to `place`.
pub fn seal(key: &SecretKey, place: Place<'_>, plaintext: &[u8]) -> Sealed {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = place.aad();
    let ct = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Encryption fails only for messages beyond 256 GiB; nothing here comes near that.
        .expect("XChaCha20-Poly1305 encryption of a bounded message");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FIELD_FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Sealed(out)
}

/// Decrypt a value sealed by [`seal`] at the same `place`.
pub fn open(
    key: &SecretKey,
    place: Place<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let bytes = sealed.as_bytes();
    if bytes.len() < 1 + NONCE_LEN + TAG_LEN || bytes[0] != FIELD_FORMAT_V1 {
        return Err(CryptoError::Malformed);
    }
    let nonce = XNonce::from_slice(&bytes[1..1 + NONCE_LEN]);
    let aad = place.aad();
    key.cipher()
        .decrypt(
            nonce,
            Payload {
                msg: &bytes[1 + NONCE_LEN..],
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

/// Seal a serialisable value as JSON.
pub fn seal_json<T: serde::Serialize>(key: &SecretKey, place: Place<'_>, value: &T) -> Sealed {
    let plain = Zeroizing::new(serde_json::to_vec(value).expect("serialising plain data"));
    seal(key, place, &plain)
}

/// Open a value sealed by [`seal_json`].
pub fn open_json<T: serde::de::DeserializeOwned>(
    key: &SecretKey,
    place: Place<'_>,
    sealed: &Sealed,
) -> Result<T, CryptoError> {
    let plain = open(key, place, sealed)?;
    serde_json::from_slice(&plain).map_err(|_| CryptoError::Malformed)
}

/// What a blind index term stands for; part of the keyed hash so terms of different kinds never
/// collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermKind {
    Phone,
    NationalId,
    Name,
}

impl TermKind {
    fn label(self) -> &'static [u8] {
        match self {
            TermKind::Phone => b"phone",
            TermKind::NationalId => b"national_id",
            TermKind::Name => b"name",
        }
    }
}

/// Bytes of HMAC-SHA256 kept per term: 128 bits make accidental collisions negligible while
/// halving the index.
pub const TERM_LEN: usize = 16;

/// The blind index term of an already normalised value.
pub fn blind_term(index_key: &SecretKey, kind: TermKind, normalised: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(index_key.expose())
        .expect("HMAC accepts any key length");
    mac.update(kind.label());
    mac.update(&[0x1f]);
    mac.update(normalised.as_bytes());
    mac.finalize().into_bytes()[..TERM_LEN].to_vec()
}

/// A key for `label` derived from `key` (HMAC-SHA256), so one stored key can serve several
/// purposes without the uses ever sharing a key.
pub fn derive_key(key: &SecretKey, label: &str) -> SecretKey {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC accepts any key length");
    mac.update(label.as_bytes());
    SecretKey(mac.finalize().into_bytes().into())
}

/// SHA-256 of a bearer token or one-time link, which is all the database keeps of them.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A fresh random token (256 bits, URL-safe base64) for bearer tokens and one-time links.
pub fn random_token() -> SecretString {
    use base64::Engine;
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(bytes.as_mut());
    SecretString(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_in_its_place() {
        let key = SecretKey::generate();
        let sealed = seal(&key, Place::new("cases", "donor", "c1"), b"secret");
        assert_eq!(
            &open(&key, Place::new("cases", "donor", "c1"), &sealed).unwrap()[..],
            b"secret"
        );
        assert!(open(&key, Place::new("cases", "donor", "c2"), &sealed).is_err());
        assert!(open(&key, Place::new("cases", "notes", "c1"), &sealed).is_err());
        assert!(open(&key, Place::new("contacts", "donor", "c1"), &sealed).is_err());
        assert!(open(
            &SecretKey::generate(),
            Place::new("cases", "donor", "c1"),
            &sealed
        )
        .is_err());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let key = SecretKey::generate();
        let place = Place::new("cases", "notes", "row");
        let sealed = seal(&key, place, b"a note about the family");
        for i in 0..sealed.as_bytes().len() * 8 {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i / 8] ^= 1 << (i % 8);
            assert!(
                open(&key, place, &Sealed::from_bytes(bytes)).is_err(),
                "bit {i}"
            );
        }
        let truncated = Sealed::from_bytes(sealed.as_bytes()[..20].to_vec());
        assert!(open(&key, place, &truncated).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let key = SecretKey::generate();
        assert_eq!(format!("{key:?}"), "SecretKey(redacted)");
        let s = SecretString::new("hunter2hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn blind_terms_depend_on_kind_and_key() {
        let k = SecretKey::generate();
        let a = blind_term(&k, TermKind::Phone, "13800138000");
        assert_eq!(a, blind_term(&k, TermKind::Phone, "13800138000"));
        assert_ne!(a, blind_term(&k, TermKind::Name, "13800138000"));
        assert_ne!(
            a,
            blind_term(&SecretKey::generate(), TermKind::Phone, "13800138000")
        );
        assert_eq!(a.len(), TERM_LEN);
    }
}
