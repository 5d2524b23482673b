//! The manifest: one commit record per part, written after the part.
//!
//! Layout of a dataset at a location:
//!
//! ```text
//! part-00000000000000000000-00000000000000000004.cbor   chunks [0, 4)
//! part-00000000000000000004-00000000000000000009.cbor   chunks [4, 9)
//! _manifest/part-00000000000000000000-00000000000000000004.json
//! _manifest/part-00000000000000000004-00000000000000000009.json
//! _manifest/_complete.json                              written by finish()
//! ```
//!
//! A part counts only once its commit record exists, and readers trust only
//! the records that form a contiguous run of chunks from 0.

use std::ops::Range;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::format::PartParams;
use crate::{Error, Location};

/// The directory of commit records, relative to the dataset's location.
pub const MANIFEST_DIR: &str = "_manifest";
/// The record `finish()` writes, relative to the dataset's location.
pub const COMPLETE_RECORD: &str = "_manifest/_complete.json";
/// The marker a job writes last, once it is complete (see
/// [`write_success`](crate::write_success)), relative to the dataset's location.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// The version of the commit record layout.
pub const MANIFEST_VERSION: u32 = 1;

/// How many records are fetched at once.
const FETCH_CONCURRENCY: usize = 32;

/// One committed part: the content of its commit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartInfo {
    /// The layout version of this record ([`MANIFEST_VERSION`]).
    pub manifest_version: u32,
    /// The part's object name, relative to the dataset's location.
    pub part: String,
    /// The format's name (`"cbor"`, `"jsonl"`, `"csv"`).
    pub format: String,
    /// The format's version.
    pub format_version: u32,
    /// The first chunk in the part.
    pub chunk_start: u64,
    /// One past the last chunk in the part.
    pub chunk_end: u64,
    /// The input index of the part's first item.
    pub item_start: u64,
    /// One past the input index of the part's last item.
    pub item_end: u64,
    /// How many results the part holds.
    pub results: u64,
    /// The part's size in bytes.
    pub bytes: u64,
    /// The CRC-32 (IEEE) of the part's bytes.
    pub crc32: u32,
    /// Per-part format settings.
    #[serde(default)]
    pub params: PartParams,
}

impl PartInfo {
    /// The chunks the part holds.
    pub fn chunks(&self) -> Range<u64> {
        self.chunk_start..self.chunk_end
    }

    /// The input items the part covers.
    pub fn items(&self) -> Range<u64> {
        self.item_start..self.item_end
    }
}

/// What `finish()` records once the whole job is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CompleteRecord {
    pub manifest_version: u32,
    pub chunks: u64,
    pub results: u64,
    pub parts: Vec<PartInfo>,
}

/// `part-<start>-<end>`, both zero-padded to 20 digits so names sort in order.
pub(crate) fn part_stem(chunks: &Range<u64>) -> String {
    format!("part-{:020}-{:020}", chunks.start, chunks.end)
}

/// The commit record's name for a part stem.
pub(crate) fn record_name(stem: &str) -> String {
    format!("{MANIFEST_DIR}/{stem}.json")
}

/// The chunk range in a `part-<start>-<end>[.ext]` name, if it is one.
pub(crate) fn parse_stem(name: &str) -> Option<(Range<u64>, &str)> {
    let rest = name.strip_prefix("part-")?;
    let (range, ext) = match rest.split_once('.') {
        Some((r, e)) => (r, e),
        None => (rest, ""),
    };
    let (a, b) = range.split_once('-')?;
    if a.len() != 20 || b.len() != 20 {
        return None;
    }
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a < b).then_some((a..b, ext))
}

/// An object found at a location.
#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub chunks: Range<u64>,
    /// Relative to the location.
    pub name: String,
}

/// The dataset objects at a location, from two delimited listings.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Commit records, sorted by chunk range.
    pub records: Vec<Named>,
    /// Part objects, sorted by chunk range.
    pub parts: Vec<Named>,
    /// Whether `_manifest/_complete.json` exists.
    pub complete: bool,
    /// Whether `_SUCCESS` exists.
    pub success: bool,
}

impl Listing {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.parts.is_empty() && !self.complete && !self.success
    }
}

async fn list_names(loc: &Location, dir: &Location) -> Result<Vec<String>, Error> {
    let prefix = dir.prefix();
    let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
    let listed = loc
        .store()
        .list_with_delimiter(prefix)
        .await
        .map_err(|e| Error::store(dir.url(), "", "listing", e))?;
    Ok(listed
        .objects
        .iter()
        .filter_map(|m| dir.relative(&m.location))
        .collect())
}

pub(crate) async fn list(loc: &Location) -> Result<Listing, Error> {
    let mut out = Listing::default();
    for name in list_names(loc, loc).await? {
        if let Some((chunks, _)) = parse_stem(&name) {
            out.parts.push(Named { chunks, name });
        } else if name == SUCCESS_MARKER {
            out.success = true;
        }
    }
    for name in list_names(loc, &loc.child(MANIFEST_DIR)).await? {
        if let Some((chunks, "json")) = parse_stem(&name) {
            out.records.push(Named {
                chunks,
                name: format!("{MANIFEST_DIR}/{name}"),
            });
        } else if format!("{MANIFEST_DIR}/{name}") == COMPLETE_RECORD {
            out.complete = true;
        }
    }
    let key = |n: &Named| (n.chunks.start, n.chunks.end);
    out.records.sort_by_key(key);
    out.parts.sort_by_key(key);
    Ok(out)
}

/// The records that form a contiguous run of chunks from 0, and the first
/// record after a gap (whose records are ignored).
pub(crate) fn contiguous_run<'a>(
    url: &str,
    records: &'a [Named],
) -> Result<(&'a [Named], Option<&'a Named>), Error> {
    let mut expected = 0;
    for (i, r) in records.iter().enumerate() {
        if r.chunks.start == expected {
            expected = r.chunks.end;
        } else if r.chunks.start < expected {
            return Err(Error::manifest(
                url,
                format!(
                    "commit record {} overlaps the records before it (chunks up to {expected} \
                     are already covered)",
                    r.name
                ),
            ));
        } else {
            return Ok((&records[..i], Some(r)));
        }
    }
    Ok((records, None))
}

pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    loc: &Location,
    name: &str,
) -> Result<T, Error> {
    let bytes = loc
        .store()
        .get(&loc.path(name))
        .await
        .map_err(|e| Error::store(loc.url(), name, "reading", e))?
        .bytes()
        .await
        .map_err(|e| Error::store(loc.url(), name, "reading", e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::manifest(
            loc.url(),
            format!("commit record {name} is unreadable: {e}"),
        )
    })
}

/// Fetches the commit records `names` (in order) and checks each against
/// its name.
pub(crate) async fn load_records(loc: &Location, names: &[Named]) -> Result<Vec<PartInfo>, Error> {
    futures::stream::iter(names.iter().map(|n| async move {
        let info: PartInfo = get_json(loc, &n.name).await?;
        check_record(loc.url(), n, &info)?;
        Ok::<_, Error>(info)
    }))
    .buffered(FETCH_CONCURRENCY)
    .try_collect()
    .await
}

pub(crate) fn check_record(url: &str, named: &Named, info: &PartInfo) -> Result<(), Error> {
    if info.chunks() != named.chunks {
        return Err(Error::manifest(
            url,
            format!(
                "commit record {} describes chunks {:?}, not the chunks in its name",
                named.name,
                info.chunks()
            ),
        ));
    }
    if info.manifest_version > MANIFEST_VERSION {
        return Err(Error::manifest(
            url,
            format!(
                "commit record {} has layout version {}; this version reads up to {MANIFEST_VERSION}",
                named.name, info.manifest_version
            ),
        ));
    }
    Ok(())
}

/// Deletes `name`; a missing object is not an error.
pub(crate) async fn delete(loc: &Location, name: &str) -> Result<(), Error> {
    match loc.store().delete(&loc.path(name)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store(loc.url(), name, "deleting", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_sort_and_parse_back() {
        let a = part_stem(&(0..100));
        let b = part_stem(&(100..1_000_000));
        assert_eq!(a, "part-00000000000000000000-00000000000000000100");
        assert!(a < b);
        assert_eq!(
            parse_stem(&format!("{b}.cbor")),
            Some((100..1_000_000, "cbor"))
        );
        assert_eq!(parse_stem(&a), Some((0..100, "")));
        assert_eq!(parse_stem("part-1-2.cbor"), None);
        assert_eq!(parse_stem(&part_stem(&(5..5))), None);
        assert_eq!(parse_stem("_complete.json"), None);
    }

    fn named(a: u64, b: u64) -> Named {
        Named {
            chunks: a..b,
            name: part_stem(&(a..b)),
        }
    }

    #[test]
    fn contiguous_run_stops_at_gaps_and_refuses_overlaps() {
        let recs = vec![named(0, 2), named(2, 3), named(4, 5)];
        let (run, after) = contiguous_run("u", &recs).unwrap();
        assert_eq!(run.len(), 2);
        assert_eq!(after.unwrap().chunks, 4..5);
        let recs = vec![named(1, 2)];
        assert!(contiguous_run("u", &recs).unwrap().0.is_empty());
        let recs = vec![named(0, 2), named(1, 3)];
        assert!(contiguous_run("u", &recs).is_err());
    }
}
