//! A running fingerprint of the input, to tell on resume whether it changed.

use serde::Serialize;
use serde::ser;

use crate::Error;

/// A 64-bit running hash over every input item, fed straight from the
/// item's `Serialize` implementation (no encoding step, so it costs a few
/// nanoseconds for a number).
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
    /// Words go round-robin into four independent hash chains, so the CPU
    /// overlaps their multiplications instead of waiting on one chain;
    /// `lanes[0]` is the next to take a word.
    lanes: [u64; LANES],
    /// Words mixed so far (also picks the lane).
    words: u64,
    items: u64,
}

const LANES: usize = 4;

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const K3: u64 = 0x1656_67B1_9E37_79F9;

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// The fingerprint of an empty input.
    pub fn new() -> Self {
        Fingerprint {
            lanes: [K2, K2 ^ K1, K2 ^ K3, K1 ^ K3],
            words: 0,
            items: 0,
        }
    }

    /// Mixes a word into the oldest lane, which then becomes the newest:
    /// round robin over the lanes, written as a shift of the array rather
    /// than an index so the lanes stay in registers (a third faster than
    /// indexing them, with the same values).
    #[inline]
    fn mix(&mut self, word: u64) {
        let [a, b, c, d] = self.lanes;
        self.lanes = [
            b,
            c,
            d,
            (a ^ word.wrapping_mul(K1)).rotate_left(29).wrapping_mul(K2),
        ];
        self.words += 1;
    }

    /// Mixes a tag (which kind of value follows) and a value as one word:
    /// one multiply per number instead of two. Two different pairs give the
    /// same word only for one specific value per pair of kinds, which an
    /// edit of the input hits with odds of 2^-64.
    #[inline]
    fn tagged(&mut self, tag: u64, word: u64) {
        self.mix(word.wrapping_add(tag.wrapping_mul(K3)));
    }

    fn bytes(&mut self, tag: u64, bytes: &[u8]) {
        // The length goes in first, so "ab","c" and "a","bc" differ.
        self.tagged(tag, bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w));
        }
    }

    /// Adds one item given as raw bytes.
    pub fn update_bytes(&mut self, bytes: &[u8]) {
        self.bytes(T_ITEM, bytes);
        self.items += 1;
    }

    /// Adds one item, through its `Serialize` implementation.
    pub fn update_item<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Error> {
        // No separator between items: every value's encoding is
        // self-delimiting (tags, lengths, end markers), and the item count
        // goes into `value`.
        item.serialize(&mut *self)
            .map_err(|e| Error::codec("fingerprinting an input item", e))?;
        self.items += 1;
        Ok(())
    }

    /// How many items went in.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The fingerprint, as 16 hex digits.
    pub fn value(&self) -> String {
        let mut h = self.words ^ self.items.rotate_left(32);
        // Lanes in the order they first took a word (the array is rotated
        // by `words` mixes), so values match those of earlier versions.
        let shift = (self.words % LANES as u64) as usize;
        for i in 0..LANES {
            h = (h ^ self.lanes[(i + LANES - shift) % LANES])
                .rotate_left(31)
                .wrapping_mul(K1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(K1);
        h ^= h >> 29;
        format!("{h:016x}")
    }
}

// Tags keep values of different kinds apart (0u8 vs false vs None ...).
const T_ITEM: u64 = 1;
const T_BOOL: u64 = 2;
const T_INT: u64 = 3;
const T_FLOAT: u64 = 4;
const T_STR: u64 = 5;
const T_BYTES: u64 = 6;
const T_NONE: u64 = 7;
const T_SOME: u64 = 8;
const T_UNIT: u64 = 9;
const T_VARIANT: u64 = 10;
const T_SEQ: u64 = 11;
const T_MAP: u64 = 12;
const T_END: u64 = 13;
const T_I128: u64 = 14;

/// The error type the serializer needs; hashing itself cannot fail, but a
/// `Serialize` implementation may report its own error.
#[derive(Debug)]
#[doc(hidden)]
pub struct FingerprintError(String);

impl std::fmt::Display for FingerprintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FingerprintError {}

impl ser::Error for FingerprintError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        FingerprintError(msg.to_string())
    }
}

type R = Result<(), FingerprintError>;

impl ser::Serializer for &mut Fingerprint {
    type Ok = ();
    type Error = FingerprintError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> R {
        self.tagged(T_BOOL, u64::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> R {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> R {
        self.tagged(T_INT, v as u64);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> R {
        self.tagged(T_I128, v as u64);
        self.mix((v >> 64) as u64);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> R {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> R {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> R {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> R {
        self.tagged(T_INT, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> R {
        self.tagged(T_I128, v as u64);
        self.mix((v >> 64) as u64);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> R {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> R {
        self.tagged(T_FLOAT, v.to_bits());
        Ok(())
    }
    fn serialize_char(self, v: char) -> R {
        let mut buf = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> R {
        self.bytes(T_STR, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        self.bytes(T_BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> R {
        self.mix(T_NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
        self.mix(T_SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        self.mix(T_UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _name: &'static str, index: u32, _variant: &'static str) -> R {
        self.tagged(T_VARIANT, u64::from(index));
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> R {
        self.tagged(T_VARIANT, u64::from(index));
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, FingerprintError> {
        self.mix(T_SEQ);
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, FingerprintError> {
        self.mix(T_SEQ);
        Ok(self)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self, FingerprintError> {
        self.mix(T_SEQ);
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, FingerprintError> {
        self.tagged(T_VARIANT, u64::from(index));
        self.mix(T_SEQ);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, FingerprintError> {
        self.mix(T_MAP);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, FingerprintError> {
        self.mix(T_MAP);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, FingerprintError> {
        self.tagged(T_VARIANT, u64::from(index));
        self.mix(T_MAP);
        Ok(self)
    }
}

macro_rules! compound {
    ($($tr:ident :: $method:ident),*) => {$(
        impl ser::$tr for &mut Fingerprint {
            type Ok = ();
            type Error = FingerprintError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
                value.serialize(&mut **self)
            }
            fn end(self) -> R {
                self.mix(T_END);
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Fingerprint {
    type Ok = ();
    type Error = FingerprintError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        value.serialize(&mut **self)
    }
    fn end(self) -> R {
        self.mix(T_END);
        Ok(())
    }
}

macro_rules! fields {
    ($($tr:ident),*) => {$(
        impl ser::$tr for &mut Fingerprint {
            type Ok = ();
            type Error = FingerprintError;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
                self.bytes(T_STR, key.as_bytes());
                value.serialize(&mut **self)
            }
            fn end(self) -> R {
                self.mix(T_END);
                Ok(())
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;

    fn fp<T: Serialize>(items: &[T]) -> String {
        let mut f = Fingerprint::new();
        for i in items {
            f.update_item(i).unwrap();
        }
        f.value()
    }

    #[test]
    fn equal_inputs_agree_and_edits_differ() {
        assert_eq!(fp(&[1u64, 2, 3]), fp(&[1u64, 2, 3]));
        assert_ne!(fp(&[1u64, 2, 3]), fp(&[1u64, 3, 2]));
        assert_ne!(fp(&[1u64, 2, 3]), fp(&[1u64, 2]));
        assert_ne!(fp(&["ab", "c"]), fp(&["a", "bc"]));
        assert_ne!(fp(&[Some(0u8)]), fp(&[None::<u8>]));
        assert_ne!(fp(&[vec![1u8, 2], vec![3]]), fp(&[vec![1u8], vec![2, 3]]));
        assert_ne!(fp(&[(1u32, "x")]), fp(&[(1u32, "y")]));
        assert_ne!(fp::<u64>(&[]), fp(&[0u64]));
        // Kinds stay apart although tags share a mixing step with values.
        assert_ne!(fp(&[1u64]), fp(&[true]));
        assert_ne!(fp(&[0u64]), fp(&[0.0f64]));
        assert_ne!(fp(&[Some(0u64)]), fp(&[0u64]));
        assert_ne!(fp(&["\u{1}"]), fp(&[1u64]));
        // Item boundaries matter though no separator is mixed in.
        assert_ne!(fp(&[vec![1u8, 2]]), fp(&[vec![1u8], vec![2]]));
        assert_ne!(fp(&[(1u8, 2u8)]), fp(&[1u8, 2u8].map(|x| (x, x))));
    }

    /// The fingerprint of earlier versions, which indexed its lanes: the
    /// rotating lanes give the same values, so their checkpoints resume.
    fn indexed_lanes(words: &[u64], items: u64) -> String {
        let mut lanes = [K2, K2 ^ K1, K2 ^ K3, K1 ^ K3];
        for (n, w) in words.iter().enumerate() {
            let lane = &mut lanes[n % LANES];
            *lane = (*lane ^ w.wrapping_mul(K1))
                .rotate_left(29)
                .wrapping_mul(K2);
        }
        let mut h = words.len() as u64 ^ items.rotate_left(32);
        for lane in lanes {
            h = (h ^ lane).rotate_left(31).wrapping_mul(K1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(K1);
        h ^= h >> 29;
        format!("{h:016x}")
    }

    #[test]
    fn values_match_earlier_versions_for_every_lane_offset() {
        for n in 0..12u64 {
            let items: Vec<u64> = (0..n).map(|i| i * 7 + 1).collect();
            let words: Vec<u64> = items
                .iter()
                .map(|v| v.wrapping_add(T_INT.wrapping_mul(K3)))
                .collect();
            assert_eq!(fp(&items), indexed_lanes(&words, n), "{n} items");
        }
        // A value recorded by the earlier version (five u64 items 1..=5).
        assert_eq!(fp(&[1u64, 2, 3, 4, 5]), "4523d611ebbcd2bb");
    }

    #[test]
    fn long_strings_count_every_byte() {
        let a = "x".repeat(100);
        let mut b = a.clone();
        b.replace_range(57..58, "y");
        assert_ne!(fp(&[a]), fp(&[b]));
    }
}
