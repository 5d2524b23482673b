//! A running fingerprint of the input, to tell on resume whether it changed.

use serde::Serialize;

use crate::{Error, to_cbor};

/// A 64-bit running hash over the CBOR encoding of every input item.
///
/// Checkpoints store the fingerprint of the input consumed so far; a resumed
/// job recomputes it over the same prefix and refuses to go on if the two
/// differ. It is not cryptographic: it catches edits, reorders and
/// truncations of the input, not an adversary.
///
/// ```
/// use raygent_core::Fingerprint;
/// let mut a = Fingerprint::new();
/// let mut b = Fingerprint::new();
/// a.update_item(&"x").unwrap();
/// b.update_item(&"y").unwrap();
/// assert_ne!(a.value(), b.value());
/// ```
#[derive(Debug, Clone)]
pub struct Fingerprint {
    state: u64,
    items: u64,
    buf: Vec<u8>,
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// The fingerprint of an empty input.
    pub fn new() -> Self {
        Fingerprint {
            state: K2,
            items: 0,
            buf: Vec::new(),
        }
    }

    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word.wrapping_mul(K1))
            .rotate_left(29)
            .wrapping_mul(K2);
    }

    /// Adds raw bytes (one item's encoding).
    pub fn update_bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length goes in too, so "ab","c" and "a","bc" differ.
        self.mix(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
        self.items += 1;
    }

    /// Adds one item, by its CBOR encoding.
    pub fn update_item<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Error> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        to_cbor(item, &mut buf)?;
        self.update_bytes(&buf);
        self.buf = buf;
        Ok(())
    }

    /// How many items went in.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The fingerprint, as 16 hex digits.
    pub fn value(&self) -> String {
        let mut h = self.state ^ self.items;
        h ^= h >> 33;
        h = h.wrapping_mul(K1);
        h ^= h >> 29;
        format!("{h:016x}")
    }
}
