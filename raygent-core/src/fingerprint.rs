//! A running fingerprint of the input, to tell on resume whether it changed.

use serde::Serialize;
use serde::ser;
use twox_hash::XxHash3_64;

use crate::Error;

/// A 64-bit running hash over every input item, fed straight from the
/// item's `Serialize` implementation (no encoding step, so it costs a couple
/// of nanoseconds for a number).
///
/// The items are encoded self-delimitingly (a tag byte for each kind of
/// value, lengths before strings, the ends of sequences and maps marked)
/// into blocks of 240 bytes; each block is hashed with XXH3-64 (a specified
/// hash, from the `twox-hash` crate) seeded with the hash of the block
/// before, and the last, partial block with the item count after it. The
/// values do not depend on this crate's version or on the platform. (Blocks
/// of at most 240 bytes take XXH3's short-input path, where a seed costs
/// nothing; one XXH3 call per block instead of one per value keeps the cost
/// per item near a memory copy.)
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
    /// The hash of the blocks so far (0 before the first).
    seed: u64,
    /// The block being filled.
    block: [u8; BLOCK],
    len: usize,
    items: u64,
}

/// The block size: XXH3's short-input path goes up to 240 bytes.
const BLOCK: usize = 240;

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// The fingerprint of an empty input.
    pub fn new() -> Self {
        Fingerprint {
            seed: 0,
            block: [0; BLOCK],
            len: 0,
            items: 0,
        }
    }

    /// The encoder of the items to come: the fill level is a local
    /// ([`Enc`] owns it by value) so that it stays in a register while a
    /// chunk's items go in, instead of a load and a store per value.
    fn encoder(&mut self) -> Enc<'_> {
        Enc {
            len: self.len,
            block: &mut self.block,
            seed: &mut self.seed,
        }
    }

    /// Adds one item given as raw bytes.
    pub fn update_bytes(&mut self, bytes: &[u8]) {
        let mut enc = self.encoder();
        enc.bytes(T_ITEM, bytes);
        self.len = enc.len;
        self.items += 1;
    }

    /// Adds one item, through its `Serialize` implementation.
    pub fn update_item<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Error> {
        self.update_items(std::iter::once(item))
    }

    /// Adds items in order, each through its `Serialize` implementation:
    /// the same as [`update_item`](Self::update_item) on each, at a lower
    /// cost per item.
    ///
    /// ```
    /// use raygent_core::Fingerprint;
    /// let (mut a, mut b) = (Fingerprint::new(), Fingerprint::new());
    /// a.update_items(&[1u64, 2, 3]).unwrap();
    /// for x in [1u64, 2, 3] {
    ///     b.update_item(&x).unwrap();
    /// }
    /// assert_eq!(a.value(), b.value());
    /// ```
    pub fn update_items<'a, T: Serialize + ?Sized + 'a>(
        &mut self,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), Error> {
        // No separator between items: every value's encoding is
        // self-delimiting (tags, lengths, end markers), and the item count
        // goes into `value`.
        let mut enc = self.encoder();
        let mut added = 0;
        let mut outcome = Ok(());
        for item in items {
            if let Err(e) = item.serialize(&mut enc) {
                outcome = Err(Error::codec("fingerprinting an input item", e));
                break;
            }
            added += 1;
        }
        self.len = enc.len;
        self.items += added;
        outcome
    }

    /// How many items went in.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The fingerprint, as 16 hex digits.
    pub fn value(&self) -> String {
        let mut last = [0u8; BLOCK + 8];
        last[..self.len].copy_from_slice(&self.block[..self.len]);
        last[self.len..self.len + 8].copy_from_slice(&self.items.to_le_bytes());
        let h = XxHash3_64::oneshot_with_seed(self.seed, &last[..self.len + 8]);
        format!("{h:016x}")
    }
}

/// The encoding's writer: fills the block, hashing it into the seed each
/// time it is full.
#[derive(Debug)]
struct Enc<'a> {
    len: usize,
    block: &'a mut [u8; BLOCK],
    seed: &'a mut u64,
}

/// Appends `bytes` to a block filled up to `len`, hashing each block as it
/// fills; returns the new fill level. Out of line and given the fields
/// rather than the encoder, so the callers' fast paths keep `len` in a
/// register.
#[cold]
#[inline(never)]
fn put_slow(block: &mut [u8; BLOCK], seed: &mut u64, mut len: usize, mut bytes: &[u8]) -> usize {
    loop {
        let room = BLOCK - len;
        if bytes.len() < room {
            block[len..len + bytes.len()].copy_from_slice(bytes);
            return len + bytes.len();
        }
        let (now, rest) = bytes.split_at(room);
        block[len..].copy_from_slice(now);
        *seed = XxHash3_64::oneshot_with_seed(*seed, &block[..]);
        len = 0;
        bytes = rest;
    }
}

impl Enc<'_> {
    /// Appends bytes of the encoding. A block these bytes fill exactly is
    /// hashed at once (by `put_slow`), as the pinned values require.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end < BLOCK {
            self.block[self.len..end].copy_from_slice(bytes);
            self.len = end;
            return;
        }
        self.len = put_slow(self.block, self.seed, self.len, bytes);
    }

    /// Marks what kind of value follows (or a sequence's end).
    #[inline]
    fn tag(&mut self, tag: u8) {
        if self.len + 1 < BLOCK {
            self.block[self.len] = tag;
            self.len += 1;
            return;
        }
        self.len = put_slow(self.block, self.seed, self.len, &[tag]);
    }

    /// A value's kind and its 64 bits.
    #[inline]
    fn tagged(&mut self, tag: u8, word: u64) {
        // The common case, written out: nine bytes that fit in the block,
        // stored without a call to memcpy. (Filling it exactly leaves it
        // unhashed until the next byte, unlike `put`: the pinned values
        // were made so.)
        if let Some(dst) = self.block.get_mut(self.len..self.len + 9) {
            dst[0] = tag;
            dst[1..].copy_from_slice(&word.to_le_bytes());
            self.len += 9;
            return;
        }
        let w = word.to_le_bytes();
        self.len = put_slow(
            self.block,
            self.seed,
            self.len,
            &[tag, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]],
        );
    }

    #[inline]
    fn word(&mut self, word: u64) {
        self.put(&word.to_le_bytes());
    }

    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        // The length goes in first, so "ab","c" and "a","bc" differ.
        self.tagged(tag, bytes.len() as u64);
        self.put(bytes);
    }
}

// Tags keep values of different kinds apart (0u8 vs false vs None ...).
const T_ITEM: u8 = 1;
const T_BOOL: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_STR: u8 = 5;
const T_BYTES: u8 = 6;
const T_NONE: u8 = 7;
const T_SOME: u8 = 8;
const T_UNIT: u8 = 9;
const T_VARIANT: u8 = 10;
const T_SEQ: u8 = 11;
const T_MAP: u8 = 12;
const T_END: u8 = 13;
const T_I128: u8 = 14;

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

impl<'a> ser::Serializer for &mut Enc<'a> {
    type Ok = ();
    type Error = FingerprintError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> R {
        self.tagged(T_BOOL, u64::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> R {
        self.serialize_i64(i64::from(v))
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> R {
        self.serialize_i64(i64::from(v))
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> R {
        self.serialize_i64(i64::from(v))
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> R {
        self.tagged(T_INT, v as u64);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> R {
        self.tagged(T_I128, v as u64);
        self.word((v >> 64) as u64);
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> R {
        self.serialize_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> R {
        self.serialize_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> R {
        self.serialize_u64(u64::from(v))
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> R {
        self.tagged(T_INT, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> R {
        self.tagged(T_I128, v as u64);
        self.word((v >> 64) as u64);
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> R {
        self.serialize_f64(f64::from(v))
    }
    #[inline]
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
        self.tag(T_NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
        self.tag(T_SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        self.tag(T_UNIT);
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
        self.tag(T_SEQ);
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, FingerprintError> {
        self.tag(T_SEQ);
        Ok(self)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self, FingerprintError> {
        self.tag(T_SEQ);
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
        self.tag(T_SEQ);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, FingerprintError> {
        self.tag(T_MAP);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, FingerprintError> {
        self.tag(T_MAP);
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
        self.tag(T_MAP);
        Ok(self)
    }
}

macro_rules! compound {
    ($($tr:ident :: $method:ident),*) => {$(
        impl<'a> ser::$tr for &mut Enc<'a> {
            type Ok = ();
            type Error = FingerprintError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
                value.serialize(&mut **self)
            }
            fn end(self) -> R {
                self.tag(T_END);
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

impl<'a> ser::SerializeMap for &mut Enc<'a> {
    type Ok = ();
    type Error = FingerprintError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        value.serialize(&mut **self)
    }
    fn end(self) -> R {
        self.tag(T_END);
        Ok(())
    }
}

macro_rules! fields {
    ($($tr:ident),*) => {$(
        impl<'a> ser::$tr for &mut Enc<'a> {
            type Ok = ();
            type Error = FingerprintError;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
                self.bytes(T_STR, key.as_bytes());
                value.serialize(&mut **self)
            }
            fn end(self) -> R {
                self.tag(T_END);
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
        // Kinds stay apart.
        assert_ne!(fp(&[1u64]), fp(&[true]));
        assert_ne!(fp(&[0u64]), fp(&[0.0f64]));
        assert_ne!(fp(&[Some(0u64)]), fp(&[0u64]));
        assert_ne!(fp(&["\u{1}"]), fp(&[1u64]));
        // Item boundaries matter though no separator goes in.
        assert_ne!(fp(&[vec![1u8, 2]]), fp(&[vec![1u8], vec![2]]));
        assert_ne!(fp(&[(1u8, 2u8)]), fp(&[1u8, 2u8].map(|x| (x, x))));
    }

    // Computed independently with Python's `xxhash` package over the
    // encoding described on `Fingerprint` (tag 3 and eight little-endian
    // bytes per u64, 240-byte blocks chained by seed, then the item count).
    const PINNED_1_TO_5: &str = "69ef0097f1c777f7";
    const PINNED_0_TO_99: &str = "4348128cdd2b8dd1";

    /// The encoding and the hash are fixed: a change here makes every
    /// existing checkpoint unresumable, so it must be deliberate.
    #[test]
    fn values_are_pinned() {
        assert_eq!(fp(&[1u64, 2, 3, 4, 5]), PINNED_1_TO_5);
        // Across a block boundary (27 items of 9 bytes each > 240 bytes).
        let many: Vec<u64> = (0..100).collect();
        assert_eq!(fp(&many), PINNED_0_TO_99);
    }

    #[test]
    fn long_strings_count_every_byte() {
        let a = "x".repeat(100);
        let mut b = a.clone();
        b.replace_range(57..58, "y");
        assert_ne!(fp(&[a]), fp(&[b]));
    }
}
