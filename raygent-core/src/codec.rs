//! CBOR helpers: single values, sequences and length-delimited frames.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Appends the CBOR encoding of `value` to `buf`.
pub fn to_cbor<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), Error> {
    ciborium::into_writer(value, buf).map_err(|e| Error::codec("encoding CBOR", e))
}

/// Decodes one CBOR value from `bytes` (which must hold exactly one).
pub fn from_cbor<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    ciborium::from_reader(bytes).map_err(|e| Error::codec("decoding CBOR", e))
}

/// Reads a CBOR sequence (values written back to back) one value at a time.
///
/// A clean end between two values ends the iteration; a value cut short is
/// an error. (ciborium reports both as `UnexpectedEof`, so this reader looks
/// for the end of input before decoding.)
///
/// ```
/// use raygent_core::{to_cbor, CborSeqReader};
/// let mut buf = Vec::new();
/// for x in [1u32, 2, 3000] { to_cbor(&x, &mut buf).unwrap(); }
/// let back: Vec<u32> = CborSeqReader::new(&buf[..]).map(|r| r.unwrap()).collect();
/// assert_eq!(back, vec![1, 2, 3000]);
/// let cut: Vec<_> = CborSeqReader::<_, u32>::new(&buf[..buf.len() - 1]).collect();
/// assert!(cut.last().unwrap().is_err());
/// ```
pub struct CborSeqReader<R, T> {
    reader: io::BufReader<R>,
    index: u64,
    failed: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<R: Read, T: DeserializeOwned> CborSeqReader<R, T> {
    /// Reads values from `reader`.
    pub fn new(reader: R) -> Self {
        CborSeqReader {
            reader: io::BufReader::with_capacity(64 * 1024, reader),
            index: 0,
            failed: false,
            _t: std::marker::PhantomData,
        }
    }
}

impl<R: Read, T: DeserializeOwned> Iterator for CborSeqReader<R, T> {
    type Item = Result<T, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        use io::BufRead;
        if self.failed {
            return None;
        }
        match self.reader.fill_buf() {
            Ok([]) => return None,
            Ok(_) => {}
            Err(e) => {
                self.failed = true;
                return Some(Err(Error::codec(
                    format!("reading CBOR value {}", self.index),
                    e,
                )));
            }
        }
        let out = ciborium::from_reader(&mut self.reader).map_err(|e| {
            self.failed = true;
            Error::codec(format!("decoding CBOR value {}", self.index), e)
        });
        self.index += 1;
        Some(out)
    }
}

/// The largest frame [`read_frame`] accepts (256 MiB): a corrupt length
/// prefix must not make the reader allocate without bound.
pub const MAX_FRAME_LEN: usize = 256 * 1024 * 1024;

/// Writes `payload` as one frame: a 4-byte little-endian length, then the bytes.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame larger than 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(payload)
}

/// Reads one frame written by [`write_frame`] into `buf` (replacing its
/// contents). Returns `Ok(false)` on a clean end of stream before a frame.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a frame header",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit"),
        ));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_truncation() {
        let mut out = Vec::new();
        write_frame(&mut out, b"hello").unwrap();
        write_frame(&mut out, b"").unwrap();
        let mut r = &out[..];
        let mut buf = Vec::new();
        assert!(read_frame(&mut r, &mut buf).unwrap());
        assert_eq!(buf, b"hello");
        assert!(read_frame(&mut r, &mut buf).unwrap());
        assert!(buf.is_empty());
        assert!(!read_frame(&mut r, &mut buf).unwrap());
        let mut cut = &out[..6];
        assert!(read_frame(&mut cut, &mut buf).is_err());
    }

    #[test]
    fn absurd_frame_length_is_refused() {
        let bytes = u32::MAX.to_le_bytes();
        let err = read_frame(&mut &bytes[..], &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
