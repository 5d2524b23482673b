//! Leftovers of writes killed half-way on a local disk.

use std::path::{Path, PathBuf};

/// Deletes, in `dir`, the staging files (`name#N`) that object_store's
/// local store writes before renaming them into place, for the names that
/// `owned` accepts: a process killed in the middle of a put leaves them
/// behind, and the store's listings do not show them. A missing `dir` is
/// not an error; the first file that cannot be deleted is returned with its
/// error.
///
/// For any saver or checkpointer that writes to a local directory through
/// object_store (raygent's own savers call it for parts, its checkpoints for
/// steps) and must clean up after a crash before it writes again.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("staging-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("part-1.cbor#3"), b"half").unwrap();
/// std::fs::write(dir.join("part-1.cbor"), b"whole").unwrap();
/// raygent_core::remove_staging_files(&dir, |name| name.starts_with("part-")).unwrap();
/// assert!(!dir.join("part-1.cbor#3").exists());
/// assert!(dir.join("part-1.cbor").exists());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn remove_staging_files(
    dir: &Path,
    owned: impl Fn(&str) -> bool,
) -> Result<(), (PathBuf, std::io::Error)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.contains('#') && owned(&name) {
            std::fs::remove_file(e.path()).map_err(|err| (e.path(), err))?;
        }
    }
    Ok(())
}
