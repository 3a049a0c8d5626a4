//! Files (signed consent forms) sealed under the case key with the STREAM construction over
//! XChaCha20-Poly1305: 64 KiB chunks, each authenticated with its position and whether it is the
//! last, so chunks cannot be reordered, dropped or truncated unnoticed. The place (table, column,
//! row) is bound to every chunk as associated data, as for fields.

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, OsRng, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;

use super::{CryptoError, Place, SecretKey};

const MAGIC: &[u8; 4] = b"DCS1";
const NONCE: usize = 19;
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

fn aad(place: Place<'_>) -> Vec<u8> {
    format!("{}.{}:{}", place.table, place.column, place.row).into_bytes()
}

/// Seal a whole file.
pub fn seal_file(key: &SecretKey, place: Place<'_>, plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE];
    OsRng.fill_bytes(&mut nonce);
    let aad = aad(place);
    let mut enc = EncryptorBE32::from_aead(
        XChaCha20Poly1305::new(&(*key.expose()).into()),
        (&nonce).into(),
    );
    let mut out = Vec::with_capacity(plain.len() + plain.len() / CHUNK * TAG + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    let mut rest = plain;
    loop {
        if rest.len() > CHUNK {
            let (head, tail) = rest.split_at(CHUNK);
            let ct = enc
                .encrypt_next(Payload {
                    msg: head,
                    aad: &aad,
                })
                .expect("STREAM encryption of a bounded chunk");
            out.extend_from_slice(&ct);
            rest = tail;
        } else {
            let ct = enc
                .encrypt_last(Payload {
                    msg: rest,
                    aad: &aad,
                })
                .expect("STREAM encryption of a bounded chunk");
            out.extend_from_slice(&ct);
            return out;
        }
    }
}

/// Open a file sealed by [`seal_file`] at the same place.
pub fn open_file(key: &SecretKey, place: Place<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < MAGIC.len() + NONCE + TAG || &sealed[..4] != MAGIC {
        return Err(CryptoError::Malformed);
    }
    let nonce: [u8; NONCE] = sealed[4..4 + NONCE]
        .try_into()
        .map_err(|_| CryptoError::Malformed)?;
    let aad = aad(place);
    let mut dec = DecryptorBE32::from_aead(
        XChaCha20Poly1305::new(&(*key.expose()).into()),
        (&nonce).into(),
    );
    let mut rest = &sealed[4 + NONCE..];
    let mut out = Vec::with_capacity(rest.len());
    loop {
        if rest.len() > CHUNK + TAG {
            let (head, tail) = rest.split_at(CHUNK + TAG);
            out.extend(
                dec.decrypt_next(Payload {
                    msg: head,
                    aad: &aad,
                })
                .map_err(|_| CryptoError::Open)?,
            );
            rest = tail;
        } else {
            out.extend(
                dec.decrypt_last(Payload {
                    msg: rest,
                    aad: &aad,
                })
                .map_err(|_| CryptoError::Open)?,
            );
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_resist_cutting_and_moving() {
        let key = SecretKey::generate();
        let place = Place::new("consent_attachments", "file", "c1");
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal_file(&key, place, &plain);
            assert_eq!(open_file(&key, place, &sealed).unwrap(), plain, "{len}");
            assert!(open_file(
                &key,
                Place::new("consent_attachments", "file", "c2"),
                &sealed
            )
            .is_err());
            if len > CHUNK {
                // Dropping the last chunk makes the previous one look last: refused.
                let cut = &sealed[..4 + NONCE + CHUNK + TAG];
                assert!(open_file(&key, place, cut).is_err(), "{len}");
            }
            let mut flipped = sealed.clone();
            let i = flipped.len() / 2;
            flipped[i] ^= 1;
            assert!(open_file(&key, place, &flipped).is_err());
        }
    }
}
