//! A running fingerprint of the input, to tell on resume whether it changed.

use serde::Serialize;
use serde::ser;
use twox_hash::XxHash3_64;

use crate::{Chunk, Error};

/// A 64-bit running hash over every input item, chunk by chunk, to tell
/// on resume whether the input changed.
///
/// Its definition, fixed so that the values do not depend on this crate's
/// version or on the platform:
/// - Each item is encoded self-delimitingly, straight from its `Serialize`
///   implementation: a tag byte for each kind of value, 64-bit numbers in
///   little-endian order, lengths before strings and bytes, the ends of
///   sequences and maps marked. The encodings of a chunk's items are
///   concatenated (no separator is needed).
/// - A chunk's hash ([`ChunkHash`]) is XXH3-64, seed 0, of that byte
///   string; it is made by a [`ChunkHasher`], on whichever thread runs the
///   chunk, so that fingerprinting costs the feeder nothing and spreads
///   over the cores.
/// - The fingerprint starts at 0, and each chunk in input order replaces it
///   with XXH3-64, seeded with it, of the chunk's hash and its item count
///   (eight little-endian bytes each). Chunk boundaries are part of the
///   job (its chunk size), so a resumed job cuts the same chunks.
///
/// XXH3 is a specified hash (from the `twox-hash` crate): hashing a whole
/// chunk at once takes its bulk path, near the speed of a memory copy.
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// The hash chained over the chunks so far (0 before the first).
    chain: u64,
    items: u64,
}

impl Fingerprint {
    /// The fingerprint of an empty input.
    pub fn new() -> Self {
        Fingerprint { chain: 0, items: 0 }
    }

    /// Adds the next chunk, given its hash.
    ///
    /// ```
    /// use raygent_core::{ChunkHasher, Fingerprint};
    /// let mut hasher = ChunkHasher::new();
    /// let (mut a, mut b) = (Fingerprint::new(), Fingerprint::new());
    /// a.add(hasher.hash(&[1u64, 2, 3]).unwrap());
    /// b.update_chunk(&[1u64, 2, 3]).unwrap();
    /// assert_eq!(a, b);
    /// ```
    #[inline]
    pub fn add(&mut self, chunk: ChunkHash) {
        let mut step = [0u8; 16];
        step[..8].copy_from_slice(&chunk.hash.to_le_bytes());
        step[8..].copy_from_slice(&chunk.items.to_le_bytes());
        self.chain = XxHash3_64::oneshot_with_seed(self.chain, &step);
        self.items += chunk.items;
    }

    /// Adds the next chunk, given its items in order (each through its
    /// `Serialize` implementation); the same as [`add`](Self::add) with
    /// their [`ChunkHasher::hash`].
    pub fn update_chunk<'a, T: Serialize + ?Sized + 'a>(
        &mut self,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), Error> {
        self.add(ChunkHasher::new().hash(items)?);
        Ok(())
    }

    /// Adds one item as a chunk of its own.
    pub fn update_item<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Error> {
        self.update_chunk(std::iter::once(item))
    }

    /// How many items went in.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The fingerprint, as 16 hex digits.
    pub fn value(&self) -> String {
        format!("{:016x}", self.chain)
    }
}

/// The hash of one chunk's items and how many there are: what a chunk adds
/// to a [`Fingerprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHash {
    hash: u64,
    items: u64,
}

/// Hashes chunks of items for a [`Fingerprint`], reusing one buffer for
/// their encoding.
///
/// ```
/// use raygent_core::ChunkHasher;
/// let mut hasher = ChunkHasher::new();
/// assert_eq!(hasher.hash(&["a", "b"]).unwrap(), hasher.hash(&["a", "b"]).unwrap());
/// assert_ne!(hasher.hash(&["ab"]).unwrap(), hasher.hash(&["a", "b"]).unwrap());
/// ```
#[derive(Debug, Default)]
pub struct ChunkHasher {
    buf: Vec<u8>,
}

impl ChunkHasher {
    /// A hasher with an empty buffer.
    pub fn new() -> Self {
        ChunkHasher { buf: Vec::new() }
    }

    /// The hash of a chunk holding `items`, in order. Fails only if an
    /// item's `Serialize` implementation reports an error:
    /// [`Error::Input`] with the item's position among `items`.
    #[inline]
    pub fn hash<'a, T: Serialize + ?Sized + 'a>(
        &mut self,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<ChunkHash, Error> {
        self.hash_from(0, items)
    }

    /// The hash of `chunk`'s items; an error names the item by its index
    /// in the input.
    #[inline]
    pub fn hash_chunk<T: Serialize>(&mut self, chunk: &Chunk<T>) -> Result<ChunkHash, Error> {
        self.hash_from(chunk.start, &chunk.items)
    }

    #[inline]
    fn hash_from<'a, T: Serialize + ?Sized + 'a>(
        &mut self,
        first: u64,
        items: impl IntoIterator<Item = &'a T>,
    ) -> Result<ChunkHash, Error> {
        self.buf.clear();
        let mut enc = Enc { out: &mut self.buf };
        let mut count = 0;
        for item in items {
            if let Err(e) = item.serialize(&mut enc) {
                return Err(Error::Input {
                    item: first + count,
                    source: Box::new(Error::codec("fingerprinting the item", e)),
                });
            }
            count += 1;
        }
        Ok(ChunkHash {
            hash: XxHash3_64::oneshot(&self.buf),
            items: count,
        })
    }
}

/// The encoding's writer.
#[derive(Debug)]
struct Enc<'a> {
    out: &'a mut Vec<u8>,
}

impl Enc<'_> {
    /// Appends bytes of the encoding.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Marks what kind of value follows (or a sequence's end).
    #[inline]
    fn tag(&mut self, tag: u8) {
        self.out.push(tag);
    }

    /// A value's kind and its 64 bits.
    #[inline]
    fn tagged(&mut self, tag: u8, word: u64) {
        let mut b = [tag; 9];
        b[1..].copy_from_slice(&word.to_le_bytes());
        self.out.extend_from_slice(&b);
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

    /// The fingerprint of `chunks`, each a chunk of items.
    fn chunked(chunks: &[&[u64]]) -> String {
        let mut f = Fingerprint::new();
        let mut hasher = ChunkHasher::new();
        for c in chunks {
            f.add(hasher.hash(*c).unwrap());
        }
        f.value()
    }

    // Computed independently with Python's `xxhash` package (4.1.0) over
    // the definition on `Fingerprint`: tag 3 and eight little-endian bytes
    // per u64, XXH3-64 of each chunk's bytes, chained by seed with each
    // chunk's item count.
    const PINNED_1_TO_5: &str = "ec22770680ac2d12";
    const PINNED_1_TO_5_ONE_PER_CHUNK: &str = "143ffcf471c19c51";
    const PINNED_0_TO_99: &str = "5503156e80ed7dc6";
    const PINNED_0_TO_99_TEN_PER_CHUNK: &str = "8306d3f31178b907";

    /// The encoding and the hash are fixed: a change here makes every
    /// existing checkpoint unresumable, so it must be deliberate.
    #[test]
    fn values_are_pinned() {
        assert_eq!(chunked(&[&[1, 2, 3, 4, 5]]), PINNED_1_TO_5);
        assert_eq!(fp(&[1u64, 2, 3, 4, 5]), PINNED_1_TO_5_ONE_PER_CHUNK);
        // Past XXH3's short inputs (900 bytes in one chunk).
        let many: Vec<u64> = (0..100).collect();
        assert_eq!(chunked(&[&many]), PINNED_0_TO_99);
        let tens: Vec<&[u64]> = many.chunks(10).collect();
        assert_eq!(chunked(&tens), PINNED_0_TO_99_TEN_PER_CHUNK);
    }

    #[test]
    fn chunk_boundaries_count_and_the_hasher_keeps_nothing_between_chunks() {
        assert_ne!(chunked(&[&[1, 2], &[3]]), chunked(&[&[1], &[2, 3]]));
        let mut hasher = ChunkHasher::new();
        let long: Vec<u64> = (0..1000).collect();
        hasher.hash(&long).unwrap();
        assert_eq!(
            hasher.hash(&[7u64]).unwrap(),
            ChunkHasher::new().hash(&[7u64]).unwrap()
        );
        let mut a = Fingerprint::new();
        a.update_chunk(&[1u64, 2]).unwrap();
        assert_eq!(a.items(), 2);
        assert_eq!(a.value(), chunked(&[&[1, 2]]));
    }

    #[test]
    fn long_strings_count_every_byte() {
        let a = "x".repeat(100);
        let mut b = a.clone();
        b.replace_range(57..58, "y");
        assert_ne!(fp(&[a]), fp(&[b]));
    }
}
