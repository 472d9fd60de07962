//! Source files and byte spans into them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Index of a file in the [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one source file. Every AST node carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }

    /// The smallest span covering both (same file assumed; `self` wins otherwise).
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// One loaded source file.
#[derive(Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics (`std/nn.nn`, or the path as given).
    pub name: String,
    /// Where it lives on disk; `None` for the embedded standard library.
    pub path: Option<PathBuf>,
    pub text: Arc<str>,
}

impl SourceFile {
    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
    }
}

/// Every file the compiler has read, addressed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, name: String, path: Option<&Path>, text: &str) -> FileId {
        let id = FileId(self.files.len() as u32);
        self.files.push(SourceFile { name, path: path.map(Path::to_path_buf), text: text.into() });
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn text(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.start as usize..span.end as usize).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// `file:line` of where `span` starts, as the profiler and `nnc ir` name it.
    pub fn line_label(&self, span: Span) -> String {
        let f = self.get(span.file);
        let name = f.path.as_deref().and_then(Path::file_name).map_or(f.name.clone(), |n| n.to_string_lossy().into());
        format!("{name}:{}", f.line_col(span.start as usize).0)
    }

    /// The text of the line `span` starts on, without its indentation.
    pub fn line_text(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        let at = (span.start as usize).min(text.len());
        let (Some(before), Some(after)) = (text.get(..at), text.get(at..)) else { return "" };
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let end = after.find('\n').map_or(text.len(), |i| at + i);
        text[start..end].trim()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
