//! The book (`docs/`, an mdBook) holds together: every page is in
//! `SUMMARY.md` and every entry there exists; every link between pages (and
//! from the README) reaches a page and, where it names one, a heading; every
//! code block names its language; and every page with Rust examples is
//! compiled into the doc tests (`mod book` in `raygent/src/lib.rs`), so no
//! example escapes `cargo test -p raygent --doc`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the facade crate sits in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `.md` pages of `docs/`, without `SUMMARY.md`, by file name.
fn pages() -> BTreeSet<String> {
    let dir = root().join("docs");
    let mut pages = BTreeSet::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
    {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "SUMMARY.md" {
            pages.insert(name);
        }
    }
    pages
}

/// Markdown text outside fenced code blocks, line by line.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(open) if trimmed.starts_with(open) && trimmed[open.len()..].trim().is_empty() => {
                fence = None;
            }
            Some(_) => {}
            None if trimmed.starts_with("```") => {
                let ticks = trimmed.len() - trimmed.trim_start_matches('`').len();
                fence = Some(&trimmed[..ticks]);
            }
            None => out.push((i + 1, line)),
        }
    }
    out
}

/// The info strings of the fenced code blocks that a text opens, with the
/// line each opens on.
fn fences(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with("```") {
            continue;
        }
        let ticks = trimmed.len() - trimmed.trim_start_matches('`').len();
        let (marker, info) = trimmed.split_at(ticks);
        match &open {
            Some(m) if m == marker && info.trim().is_empty() => open = None,
            Some(_) => {}
            None => {
                open = Some(marker.to_owned());
                out.push((i + 1, info.trim().to_owned()));
            }
        }
    }
    assert!(open.is_none(), "a code block is not closed");
    out
}

/// Whether rustdoc compiles a block with this info string as Rust.
fn is_rust(info: &str) -> bool {
    let words: Vec<&str> = info
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    words.first().is_none_or(|w| *w == "rust")
}

/// The targets of the inline links `[text](target)` of a text's prose.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose_lines(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// The anchors of a page's headings, as mdBook and GitHub make them.
fn anchors(text: &str) -> BTreeSet<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, line)| {
            let title = line.strip_prefix('#')?.trim_start_matches('#');
            title.starts_with(' ').then(|| slug(title.trim()))
        })
        .collect()
}

fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The pages that `mod book` of the facade includes, by file name.
fn doc_tested() -> BTreeSet<String> {
    let lib = read(&root().join("raygent/src/lib.rs"));
    let start = lib
        .find("mod book")
        .expect("raygent/src/lib.rs has the `mod book` of the doc-tested pages");
    let mut out = BTreeSet::new();
    let mut rest = &lib[start..];
    while let Some(i) = rest.find("include_str!(\"") {
        let after = &rest[i + "include_str!(\"".len()..];
        let end = after.find('"').expect("a closed string");
        let path = &after[..end];
        out.insert(path.rsplit('/').next().unwrap_or(path).to_owned());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_page_is_in_the_summary_and_every_entry_exists() {
    let summary = read(&root().join("docs/SUMMARY.md"));
    let listed: Vec<String> = links(&summary).into_iter().map(|(_, t)| t).collect();
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        listed_set.len(),
        "docs/SUMMARY.md lists a page twice: {listed:?}"
    );
    let pages = pages();
    let missing: Vec<&String> = pages.difference(&listed_set).collect();
    assert!(
        missing.is_empty(),
        "pages of docs/ not in docs/SUMMARY.md (add them, so the book shows them): {missing:?}"
    );
    let dangling: Vec<&String> = listed_set.difference(&pages).collect();
    assert!(
        dangling.is_empty(),
        "docs/SUMMARY.md lists pages that docs/ does not have: {dangling:?}"
    );
}

#[test]
fn links_between_pages_reach_a_page_and_a_heading() {
    let root = root();
    let mut files: Vec<PathBuf> = pages()
        .into_iter()
        .map(|p| root.join("docs").join(p))
        .collect();
    files.push(root.join("docs/SUMMARY.md"));
    files.push(root.join("README.md"));
    let mut broken = Vec::new();
    for file in &files {
        let text = read(file);
        let dir = file.parent().expect("a file has a directory");
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let page = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let shown = format!("{}:{line}: ({target})", file.display());
            if !page.exists() {
                broken.push(format!("{shown}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor
                && page.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&page)).contains(anchor)
            {
                broken.push(format!("{shown}: no heading with this anchor"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_code_block_names_its_language() {
    let root = root();
    let mut bare = Vec::new();
    for page in pages() {
        for (line, info) in fences(&read(&root.join("docs").join(&page))) {
            if info.is_empty() {
                bare.push(format!("docs/{page}:{line}"));
            }
        }
    }
    // rustdoc compiles an unlabelled block as Rust, mdBook shows it as text:
    // label every block (`text`, `sh`, `rust`, ...).
    assert!(bare.is_empty(), "code blocks without a language: {bare:?}");
}

#[test]
fn every_page_with_rust_examples_is_doc_tested() {
    let root = root();
    let tested = doc_tested();
    let mut files: Vec<(String, PathBuf)> = pages()
        .into_iter()
        .map(|p| (p.clone(), root.join("docs").join(p)))
        .collect();
    files.push(("README.md".to_owned(), root.join("README.md")));
    let mut untested = Vec::new();
    let mut ignored = Vec::new();
    for (name, path) in &files {
        let blocks: Vec<(usize, String)> = fences(&read(path))
            .into_iter()
            .filter(|(_, info)| is_rust(info))
            .collect();
        if !blocks.is_empty() && !tested.contains(name) {
            untested.push(name.clone());
        }
        for (line, info) in blocks {
            if info.split(',').any(|w| w.trim() == "ignore") {
                ignored.push(format!("{name}:{line}"));
            }
        }
    }
    assert!(
        untested.is_empty(),
        "pages with Rust examples missing from `mod book` in raygent/src/lib.rs \
         (add `#[doc = include_str!(\"../../docs/PAGE.md\")] struct Page;`): {untested:?}"
    );
    assert!(
        ignored.is_empty(),
        "Rust examples marked `ignore` are never compiled: {ignored:?}"
    );
    let stale: Vec<&String> = tested
        .iter()
        .filter(|p| !files.iter().any(|(n, _)| n == *p))
        .collect();
    assert!(
        stale.is_empty(),
        "`mod book` includes pages that do not exist: {stale:?}"
    );
}
