//! Leftovers of writes killed half-way on a local disk.

use std::path::{Path, PathBuf};

/// Deletes, in `dir`, the staging files (`name#N`) that object_store's
/// local store writes before renaming them into place, for the names that
/// `owned` accepts: a process killed in the middle of a put leaves them
/// behind, and the store's listings do not show them. A missing `dir` is
/// not an error. Shared by the savers (parts) and the checkpoints (steps);
/// not a stable API.
#[doc(hidden)]
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
