//! Validation of stage checkpoint names and prefixes.

use object_store::path::{Path, PathPart};

use crate::error::{Error, Result};

/// Checks that `name` is usable as one path segment, stored verbatim.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reject = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return reject("the name is empty");
    }
    if name.starts_with('/') {
        return reject("absolute paths are not allowed");
    }
    if name.contains("..") {
        return reject("`..` is not allowed");
    }
    if name.contains('\\') {
        return reject("`\\` is not allowed");
    }
    if name.chars().any(char::is_control) {
        return reject("control characters are not allowed");
    }
    if name.contains('/') {
        return reject("`/` is not allowed in a name (use a prefix for hierarchy)");
    }
    if name == "." {
        return reject("`.` is not allowed");
    }
    if !name.is_ascii() {
        return reject("only ASCII characters are allowed");
    }
    if PathPart::from(name).as_ref() != name {
        let c = name
            .chars()
            .find(|c| {
                *c != '.'
                    && PathPart::from(c.encode_utf8(&mut [0; 4]) as &str)
                        .as_ref()
                        .len()
                        != c.len_utf8()
            })
            .unwrap_or('?');
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: format!("the character {c:?} cannot be stored verbatim in an object key"),
        });
    }
    Ok(())
}

/// Checks a prefix (segments separated by `/`, each a valid name) and turns
/// it into a path.
pub(crate) fn validate_prefix(prefix: &str) -> Result<Path> {
    if prefix.starts_with('/') {
        return Err(Error::InvalidName {
            name: prefix.to_owned(),
            reason: "absolute paths are not allowed".into(),
        });
    }
    let mut path = Path::default();
    for seg in prefix.split('/') {
        validate_name(seg).map_err(|e| match e {
            Error::InvalidName { reason, .. } => Error::InvalidName {
                name: prefix.to_owned(),
                reason: format!("segment {seg:?}: {reason}"),
            },
            other => other,
        })?;
        path = path.join(seg);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["sentences", "a.b", "graph-2024_v1", "x y", "A=1,b+c"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "", "/abs", "..", "../x", "a..b", "a\\b", "a\nb", "a\0", "a/b", ".", "a*b", "a%b",
            "ünï",
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidName { name, .. } if name == bad),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(validate_prefix("ds1/v2").unwrap().as_ref(), "ds1/v2");
        for bad in ["", "/ds", "ds//x", "ds/../x", "ds/"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
