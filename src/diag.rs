//! Diagnostics: errors as values with spans, rendered by miette.
//!
//! Stages build [`Diag`]s; nothing prints until the CLI renders them all at
//! the end, so one run reports every error it found, not only the first.

use crate::span::{SourceMap, Span};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use std::collections::HashMap;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    /// Context for another diagnostic, shown beside it.
    Note,
}

/// A labelled span: the primary one says what is wrong, secondary ones say
/// where the things involved were defined or bound.
#[derive(Clone, Debug)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct Diag {
    pub severity: Severity,
    pub message: String,
    pub primary: Option<Label>,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diag {
    pub fn error(message: impl Into<String>) -> Diag {
        Diag { severity: Severity::Error, message: message.into(), primary: None, secondary: Vec::new(), help: None }
    }

    /// Attach the primary span (typst's `.at(span)`).
    pub fn at(mut self, span: Span, text: impl Into<String>) -> Diag {
        self.primary = Some(Label { span, text: text.into() });
        self
    }

    pub fn label(mut self, span: Span, text: impl Into<String>) -> Diag {
        self.secondary.push(Label { span, text: text.into() });
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Diag {
        self.help = Some(text.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The diagnostics of one stage; `Err(Diags)` means at least one error.
pub type Diags = Vec<Diag>;

/// Drop repeats: a generic body is checked once per instantiation, and each
/// would report the same error at the same place.
pub fn dedup(diags: Diags) -> Diags {
    let mut seen = std::collections::HashSet::new();
    let mut same_mistake = HashMap::new();
    let at = |l: &Label| (l.span.file, l.span.start, l.span.end);
    let mut out: Diags = Vec::new();
    for d in diags {
        if !seen.insert((d.message.clone(), d.primary.as_ref().map(at))) {
            continue;
        }
        // The same mistake against the same declarations, made again
        // elsewhere (`model(x)` in the loss and in the metrics), is one
        // report that points at every place.
        let declared: Vec<_> = d.secondary.iter().map(|l| (at(l), l.text.clone())).collect();
        if let (false, Some(p)) = (declared.is_empty(), &d.primary) {
            let key = (d.message.clone(), p.text.clone(), declared);
            if let Some(&first) = same_mistake.get(&key) {
                let kept: &mut Diag = &mut out[first];
                kept.secondary.push(Label { span: p.span, text: "the same mistake again here".into() });
                continue;
            }
            same_mistake.insert(key, out.len());
        }
        out.push(d);
    }
    out
}

/// "1 error in the experiment file", "3 errors in the experiment file".
pub fn count_errors(diags: &[Diag]) -> String {
    let n = diags.iter().filter(|d| d.is_error()).count().max(1);
    format!("{n} error{} in the experiment file", if n == 1 { "" } else { "s" })
}

/// "did you mean `relu`?" — the closest candidate by edit distance, if close enough.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `name` by edit distance, if close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    // One- and two-letter names are too short for a guess to mean anything.
    if len < 3 {
        return None;
    }
    let limit = (len / 3).max(1);
    // The distance is at least the difference in length: skipping the
    // others keeps a 50,000-letter name from costing seconds per candidate.
    candidates
        .into_iter()
        .filter(|c| *c != name && c.chars().count().abs_diff(len) <= limit)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: a swap of two neighbours costs 1,
/// since `axsi` for `axis` is one slip of the fingers.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the table: the one before last is for the swap.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            row[j] = best;
        }
        std::mem::swap(&mut before, &mut last);
        std::mem::swap(&mut last, &mut row);
    }
    last[b.len()]
}

// ---- rendering ------------------------------------------------------------

/// A [`Diag`] bound to its source text, in the shape miette wants. Labels in
/// other files than the primary one become related reports of their own.
struct Report {
    message: String,
    severity: Severity,
    source: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
    related: Vec<Report>,
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl Diagnostic for Report {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|r| r as &dyn Diagnostic)))
    }
}

fn labeled(label: &Label, primary: bool) -> LabeledSpan {
    let text = (!label.text.is_empty()).then(|| label.text.clone());
    let span = (label.span.start as usize, label.span.len());
    if primary { LabeledSpan::new_primary_with_span(text, span) } else { LabeledSpan::new_with_span(text, span) }
}

fn source_of(map: &SourceMap, span: Span) -> NamedSource<String> {
    let file = map.get(span.file);
    NamedSource::new(file.name.clone(), file.text.to_string())
}

fn report(map: &SourceMap, diag: &Diag) -> Report {
    let mut r = Report {
        message: diag.message.clone(),
        severity: diag.severity,
        source: None,
        labels: Vec::new(),
        help: diag.help.clone(),
        related: Vec::new(),
    };
    let home = diag.primary.as_ref().or(diag.secondary.first()).map(|l| l.span.file);
    if let Some(p) = &diag.primary {
        r.labels.push(labeled(p, true));
    }
    let apart = diag.primary.as_ref().map(|p| apart_before(map, p.span, &diag.secondary)).unwrap_or_default();
    for (i, l) in diag.secondary.iter().enumerate() {
        if Some(l.span.file) == home && !apart.contains(&i) {
            r.labels.push(labeled(l, false));
        } else {
            r.related.push(Report {
                message: format!("note: {}", l.text),
                severity: Severity::Note,
                source: Some(source_of(map, l.span)),
                labels: vec![labeled(&Label { span: l.span, text: String::new() }, false)],
                help: None,
                related: Vec::new(),
            });
        }
    }
    if let Some(file) = home {
        r.source = Some(source_of(map, Span { file, start: 0, end: 0 }));
    }
    r
}

/// Longest source line drawn in a snippet. miette pads label arrows to their
/// column with a formatting width, which panics past 65535, and a snippet of
/// a generated 100,000-character line helps nobody anyway.
const MAX_SNIPPET_LINE: usize = 1000;

/// Longest word quoted in a message (a generated name or literal).
const MAX_WORD: usize = 60;

/// The diagnostic with every over-long word in its texts elided.
fn shortened(d: &Diag) -> Diag {
    let mut d = d.clone();
    d.message = elide(&d.message);
    d.help = d.help.as_deref().map(elide);
    for l in d.primary.iter_mut().chain(d.secondary.iter_mut()) {
        l.text = elide(&l.text);
    }
    d
}

fn elide(text: &str) -> String {
    // Paths are words a user needs whole; a generated name is not.
    let long = |w: &str| {
        let n = w.chars().count();
        n > MAX_WORD && (n > MAX_SNIPPET_LINE || !w.contains(['/', '\\']))
    };
    if !text.split_whitespace().any(long) {
        return text.to_string();
    }
    let words: Vec<String> = text
        .split(' ')
        .map(|w| {
            let n = w.chars().count();
            if !long(w) {
                return w.to_string();
            }
            let head: String = w.chars().take(24).collect();
            let tail: String = w.chars().skip(n - 8).collect();
            format!("{head}…{tail} ({n} characters)")
        })
        .collect();
    words.join(" ")
}

/// Whether a label lies on a line too long to draw.
fn too_wide(map: &SourceMap, diag: &Diag) -> bool {
    diag.primary.iter().chain(&diag.secondary).any(|l| {
        let text = &map.get(l.span.file).text;
        let (start, end) = (l.span.start as usize, l.span.end as usize);
        let from = text.get(..start).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
        let to = text.get(end..).and_then(|t| t.find('\n')).map_or(text.len(), |i| end + i);
        // The longest line the label touches, not the lines' total.
        text.get(from..to).is_some_and(|lines| lines.split('\n').any(|line| line.len() > MAX_SNIPPET_LINE))
    })
}

/// The report without snippets: each label as `file:line:col: text`.
fn located(map: &SourceMap, diag: &Diag) -> Report {
    let mut message = diag.message.clone();
    for l in diag.primary.iter().chain(&diag.secondary) {
        let file = map.get(l.span.file);
        let before = file.text.get(..l.span.start as usize).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
        message.push_str(&format!("\n  at {}:{line}:{col}: {}", file.name, l.text));
    }
    message.push_str("\n  (the line is too long to show)");
    Report {
        message,
        severity: diag.severity,
        source: None,
        labels: Vec::new(),
        help: diag.help.clone(),
        related: Vec::new(),
    }
}

/// The secondary labels (by index) that lie before the primary one in its
/// file and too far above it to share its snippet. miette draws snippets in
/// source order and heads the first with its own position, so such a label
/// would make the report start at a definition, not at the error: these are
/// shown as notes after it instead.
fn apart_before(map: &SourceMap, primary: Span, secondary: &[Label]) -> Vec<usize> {
    let text = &map.get(primary.file).text;
    let line = |offset: u32| text.get(..offset as usize).map_or(0, |t| t.matches('\n').count());
    let mut before: Vec<(usize, &Label)> = secondary
        .iter()
        .enumerate()
        .filter(|(_, l)| l.span.file == primary.file && l.span.start < primary.start)
        .collect();
    before.sort_by_key(|(_, l)| std::cmp::Reverse(l.span.start));
    // The first line of the snippet holding the primary label, growing as
    // labels close enough above it join it. With one line of context
    // around each label, two snippets merge when at most two lines lie
    // between their labels.
    let mut top = line(primary.start);
    let mut apart = Vec::new();
    for (i, l) in before {
        if top.saturating_sub(line(l.span.end)) <= 3 {
            top = top.min(line(l.span.start));
        } else {
            apart.push(i);
        }
    }
    apart
}

/// How diagnostics are drawn: colours for a terminal, a fixed plain theme
/// and width for snapshots so golden files are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Color,
}

pub fn render(map: &SourceMap, diag: &Diag, style: Style) -> String {
    let theme = match style {
        Style::Plain => GraphicalTheme::unicode_nocolor(),
        Style::Color => GraphicalTheme::unicode(),
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(80);
    let mut out = String::new();
    let diag = &shortened(diag);
    let r = if too_wide(map, diag) { located(map, diag) } else { report(map, diag) };
    // Writing into a String cannot fail; a failure here would be a miette bug.
    if handler.render_report(&mut out, &r).is_err() {
        out = format!("error: {}\n", diag.message);
    }
    out
}

pub fn render_all(map: &SourceMap, diags: &[Diag], style: Style) -> String {
    diags.iter().map(|d| render(map, d, style)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_a_swap_as_one() {
        assert_eq!(edit_distance("axsi", "axis"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("ca", "abc"), 3);
    }

    #[test]
    fn closest_guesses_typos_only() {
        assert_eq!(closest("rleu", ["relu", "gelu", "tanh"]), Some("relu"));
        assert_eq!(closest("softmx", ["relu", "softmax"]), Some("softmax"));
        assert_eq!(closest("zzzz", ["relu", "gelu"]), None);
        let long = "a".repeat(50_000);
        assert_eq!(closest(&long, ["relu", "gelu"]), None);
    }
}
