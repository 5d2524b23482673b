//! What `-i` names: stdin, local files (a path or a glob), S3 objects (a
//! key, a prefix or a glob), several `-i` in the order given.

use std::io;
use std::path::{Path, PathBuf};

use super::s3::{self, Object};
use super::{Compression, Source};

/// Where one input file's bytes come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Standard input.
    Stdin,
    /// A local path: a regular file or a stream with a name (a FIFO,
    /// `/dev/stdin`, a process substitution).
    Local(PathBuf),
    /// An object in object storage.
    Object(Object),
}

/// One input file, as the job reads it.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The name in messages: the path, `<stdin>` or `s3://bucket/key`.
    pub name: String,
    /// Where its bytes come from.
    pub origin: Origin,
    /// Its size, for regular local files and objects (`None` for a stream).
    pub size: Option<u64>,
    /// How it is compressed (by its name's extension).
    pub compression: Compression,
}

impl InputFile {
    fn local(path: PathBuf) -> InputFile {
        let source = Source::File(path.clone());
        let size = source
            .is_regular_file()
            .then(|| std::fs::metadata(&path).map(|m| m.len()).ok())
            .flatten();
        InputFile {
            name: path.display().to_string(),
            compression: Compression::of(&path.to_string_lossy()),
            origin: Origin::Local(path),
            size,
        }
    }

    /// The file as a [`Source`], for a local file or stdin.
    pub fn source(&self) -> Option<Source> {
        match &self.origin {
            Origin::Stdin => Some(Source::Stdin),
            Origin::Local(p) => Some(Source::File(p.clone())),
            Origin::Object(_) => None,
        }
    }

    /// Whether its bytes can be read again from any offset (a regular local
    /// file or an object; not a stream).
    pub fn is_seekable(&self) -> bool {
        self.size.is_some()
    }
}

/// Every input of a job, in order.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The files, in the order they are read.
    pub files: Vec<InputFile>,
    identity: String,
}

fn glob_error(pattern: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("bad glob {pattern:?}: {e}"))
}

/// The files under the glob `pattern`, sorted by path.
fn local_glob(pattern: &str) -> io::Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let mut base = PathBuf::new();
    let mut rest = Vec::new();
    for c in path.components() {
        let text = c.as_os_str().to_string_lossy();
        if rest.is_empty() && !s3::is_glob(&text) {
            base.push(c);
        } else {
            rest.push(text.into_owned());
        }
    }
    let recursive = rest.iter().any(|c| c.contains("**"));
    let depth = rest.len();
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| glob_error(pattern, e))?
        .compile_matcher();
    let start = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base.clone()
    };
    let mut found = Vec::new();
    let mut stack = vec![(start, 0usize)];
    while let Some((dir, level)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if level == 0 => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "cannot read the directory {} of {pattern:?}: {e}",
                        dir.display()
                    ),
                ));
            }
            Err(_) => continue,
        };
        for entry in entries {
            let entry = entry?;
            let p = entry.path();
            // Match against the path as the pattern spells it (no `./`).
            let shown = if base.as_os_str().is_empty() {
                p.strip_prefix(".").unwrap_or(&p).to_path_buf()
            } else {
                p.clone()
            };
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false)
                || (entry.file_type().is_ok_and(|t| t.is_symlink()) && p.is_dir());
            if is_dir {
                if recursive || level + 1 < depth {
                    stack.push((p, level + 1));
                }
            } else if matcher.is_match(&shown) {
                found.push(shown);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no files match {pattern:?}"),
        ));
    }
    Ok(found)
}

fn is_s3(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    lower.starts_with("s3://") || lower.starts_with("s3a://")
}

impl Inputs {
    /// Resolves the `-i` values (none, or `-`, is stdin): expands globs,
    /// lists prefixes, and checks that each file exists (without reading
    /// it: a FIFO is only looked up).
    pub fn resolve(specs: &[String]) -> io::Result<Inputs> {
        if specs.is_empty() || specs == ["-"] {
            return Ok(Inputs {
                files: vec![InputFile {
                    name: Source::Stdin.name(),
                    origin: Origin::Stdin,
                    size: None,
                    compression: Compression::None,
                }],
                identity: Source::Stdin.identity(),
            });
        }
        let mut files = Vec::new();
        let mut identities = Vec::new();
        for spec in specs {
            if spec == "-" {
                if specs.len() > 1 {
                    return Err(io::Error::other(
                        "stdin (-) cannot be one of several inputs: give files or objects",
                    ));
                }
                continue;
            }
            if is_s3(spec) {
                for o in s3::resolve(spec)? {
                    files.push(InputFile {
                        name: o.url.clone(),
                        compression: Compression::of(&o.url),
                        size: Some(o.size),
                        origin: Origin::Object(o),
                    });
                }
                identities.push(spec.clone());
                continue;
            }
            let path = PathBuf::from(spec);
            // A path that exists is taken as it is, glob characters and all.
            if s3::is_glob(spec) && std::fs::symlink_metadata(&path).is_err() {
                for p in local_glob(spec)? {
                    files.push(InputFile::local(p));
                }
                let abs = std::path::absolute(&path).unwrap_or(path);
                identities.push(format!("glob {}", abs.display()));
                continue;
            }
            let source = Source::File(path.clone());
            source.check().map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open the input file {spec}: {e}"))
            })?;
            if path.is_dir() {
                return Err(io::Error::other(format!(
                    "{spec} is a directory: give its files, or a glob like '{}/*.jsonl'",
                    spec.trim_end_matches('/')
                )));
            }
            identities.push(source.identity());
            files.push(InputFile::local(path));
        }
        Ok(Inputs {
            files,
            identity: identities.join(", "),
        })
    }

    /// The input's identity for checkpoints: for one local file or stdin,
    /// what earlier versions recorded ([`Source::identity`]); else the
    /// `-i` values, globs made absolute, joined by `, `.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// A name for messages: the file, or the first file and how many more.
    pub fn name(&self) -> String {
        match self.files.as_slice() {
            [one] => one.name.clone(),
            [first, rest @ ..] => format!("{} and {} more", first.name, rest.len()),
            [] => "no input".into(),
        }
    }

    /// Whether every file can be read again (none is a stream).
    pub fn all_seekable(&self) -> bool {
        self.files.iter().all(InputFile::is_seekable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_expand_sorted_and_plain_paths_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        for f in ["b.csv", "a.csv", "c.txt", "sub/d.csv", "sub/deeper/e.csv"] {
            std::fs::write(d.join(f), "x\n").unwrap();
        }
        let pattern = format!("{}/*.csv", d.display());
        let got = Inputs::resolve(&[pattern]).unwrap();
        let names: Vec<_> = got.files.iter().map(|f| f.name.clone()).collect();
        assert_eq!(
            names,
            vec![
                format!("{}/a.csv", d.display()),
                format!("{}/b.csv", d.display())
            ]
        );
        let deep = Inputs::resolve(&[format!("{}/**/*.csv", d.display())]).unwrap();
        assert_eq!(deep.files.len(), 4, "{:?}", deep.files);
        let none = Inputs::resolve(&[format!("{}/*.json", d.display())]).unwrap_err();
        assert!(none.to_string().contains("no files match"), "{none}");
        let two = Inputs::resolve(&[
            d.join("c.txt").display().to_string(),
            d.join("a.csv").display().to_string(),
        ])
        .unwrap();
        assert_eq!(two.files.len(), 2);
        assert!(two.identity().contains(", "), "{}", two.identity());
        let one = Inputs::resolve(&[d.join("c.txt").display().to_string()]).unwrap();
        assert_eq!(
            one.identity(),
            Source::File(d.join("c.txt")).identity(),
            "one file keeps the identity earlier versions recorded"
        );
        assert_eq!(one.files[0].size, Some(2));
        let e = Inputs::resolve(&[d.join("missing").display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let e = Inputs::resolve(&[d.join("sub").display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }
}
