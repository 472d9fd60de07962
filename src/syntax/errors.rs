//! Syntax errors: pest's "expected one of ..." turned into a diagnostic a
//! user can act on (what was found, what fits there, a hint for the common
//! slips). The parser in `parse.rs` calls [`syntax_error`] and nothing else.

use super::parse::Rule;
use crate::diag::Diag;
use crate::span::{FileId, Span};

pub(super) fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diag {
    use pest::error::{ErrorVariant, InputLocation};
    let (mut start, mut end) = match e.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((s, e)) => (s, e),
    };
    // The literal tokens pest tried at the farthest position it reached
    // (`)`, `else`, `=`) say more than rule names do.
    let literal = e.parse_attempts().and_then(|a| {
        // `ParsingToken` is not exported; its text is the token, `a..z` for a range.
        let tokens: Vec<String> = a.expected_tokens().iter().map(|t| t.to_string()).collect();
        let words = expected_tokens(text, a.max_position, &tokens);
        (!words.is_empty() && a.max_position >= start).then_some((a.max_position, words))
    });
    if let Some((at, _)) = &literal {
        (start, end) = (*at, *at);
    }
    let found = describe_found(text, start);
    let end = if end > start { end } else { next_token_end(text, start) };
    let (message, label) = match (&e.variant, literal) {
        (ErrorVariant::ParsingError { positives, .. }, Some((_, mut words))) => {
            if positives.contains(&Rule::EOI) {
                words.push("end of file".into());
            }
            let refs: Vec<&str> = words.iter().map(String::as_str).collect();
            let expected = join_or(&refs);
            let label = if expected.len() <= 40 { format!("expected {expected}") } else { "unexpected here".into() };
            (format!("expected {expected}, found {found}"), label)
        }
        (ErrorVariant::ParsingError { positives, .. }, None) => {
            if std::env::var_os("NNC_DEBUG_PEST").is_some() {
                eprintln!("{positives:?}");
            }
            let mut words: Vec<&str> = positives.iter().map(|r| rule_name(*r)).collect();
            words.sort_unstable();
            words.dedup();
            let expected = join_or(&words);
            let label = if expected.len() <= 40 { format!("expected {expected}") } else { "unexpected here".into() };
            (format!("expected {expected}, found {found}"), label)
        }
        (ErrorVariant::CustomError { message }, _) => (message.clone(), String::new()),
    };
    if let Some(d) = special_error(file, text, start, end) {
        return d;
    }
    let diag = Diag::error(message).at(Span::new(file, start, end), label.clone());
    if label == "expected `else`" {
        return diag.help("an `if` needs an `else` branch: `if c { a } else { b }`");
    }
    match hint(text, start) {
        Some(h) => diag.help(h),
        None => diag,
    }
}

/// Binary operators: when many are possible they are summed up as "an operator".
const OPERATORS: &[&str] = &["|>", "||", "&&", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "@", "^"];

/// Pest's expected literal tokens in words: whitespace and comments dropped,
/// character classes named, a long list of operators summed up.
fn expected_tokens(text: &str, at: usize, tokens: &[String]) -> Vec<String> {
    let prev = text.get(..at).and_then(|s| s.chars().next_back());
    let in_word = prev.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut lits: Vec<&str> = Vec::new();
    let (mut name, mut number) = (false, false);
    for t in tokens {
        match t.as_str() {
            " " | "\t" | "\r" | "\n" | "//" | "/*" | "E" | "BUILTIN_RULE" => {}
            "0..9" => number = true,
            "_" | "a..z" | "A..Z" => name = true,
            tok => lits.push(tok),
        }
    }
    // Letters and digits that would only continue the word before.
    if in_word {
        (name, number) = (false, false);
    }
    let ops = lits.iter().filter(|t| OPERATORS.contains(t)).count();
    let many_ops = ops >= 4;
    // `(`, `[` and `.` beside many operators are calls and indexing: noise.
    let expr_start = lits.contains(&"!") || lits.contains(&"\"");
    let mut out: Vec<String> = Vec::new();
    // Keyword sets that have a name: the items, the types.
    const ITEMS: &[&str] = &["use", "let", "fn", "model", "optimizer", "dataset", "experiment"];
    const TYPES: &[&str] = &["f32", "i32", "bool", "u8", "int", "float", "dims", "init"];
    if ITEMS.iter().all(|k| lits.contains(k)) {
        lits.retain(|t| !ITEMS.contains(t));
        out.push("an item (`use`, `let`, `fn`, `model`, `optimizer`, `dataset`, `experiment`)".into());
    }
    if TYPES.iter().all(|k| lits.contains(k)) {
        lits.retain(|t| !TYPES.contains(t));
        out.push("a type".into());
    }
    for t in &lits {
        let drop = (many_ops && (OPERATORS.contains(t) || matches!(*t, "(" | "[" | ".")))
            || (expr_start && matches!(*t, "!" | "\"" | "(" | "[" | "{" | "-" | "if" | "true" | "false"));
        if !drop {
            out.push(format!("`{t}`"));
        }
    }
    if expr_start {
        out.push("an expression".into());
    } else {
        if name {
            out.push("a name".into());
        }
        if number {
            out.push("a number".into());
        }
    }
    if many_ops {
        out.push("an operator".into());
    }
    out
}

/// Mistakes with a message of their own: an unclosed string, a block
/// ending in `let`, a file ending inside a `{`.
fn special_error(file: FileId, text: &str, start: usize, end: usize) -> Option<Diag> {
    let rest = text.get(start..)?;
    let line_rest = rest.split('\n').next().unwrap_or("");
    if rest.starts_with('"') && !line_rest[1..].contains('"') {
        return Some(
            Diag::error("unclosed string")
                .at(Span::new(file, start, start + 1), "this string has no closing `\"` on its line")
                .help("strings end with `\"` on the same line: `\"data/mnist\"`"),
        );
    }
    let before = text.get(..start)?;
    if rest.starts_with('}') {
        // The last statement of the block before this `}`.
        let open = unclosed_brace(before);
        let body = open.map_or(before, |o| &before[o + 1..]);
        let last = body.trim_end().rsplit(['\n', ';']).next().unwrap_or("").trim_start();
        if last.starts_with("let ") {
            return Some(
                Diag::error("a block must end with an expression")
                    .at(Span::new(file, start, start + 1), "expected an expression before `}`")
                    .help("a block's value is its last expression: add it after the last `let`"),
            );
        }
    }
    if rest.trim().is_empty() {
        let open = unclosed_brace(before)?;
        let last = before.trim_end().len();
        let ch = before[..last].chars().next_back().map_or(1, char::len_utf8);
        let at = last.saturating_sub(ch);
        let _ = end;
        return Some(
            Diag::error("expected `}`, found end of file")
                .at(Span::new(file, at, last), "the file ends here")
                .label(Span::new(file, open, open + 1), "this `{` is never closed"),
        );
    }
    None
}

/// The byte offset of the innermost `{` not closed in `text` (strings and
/// comments skipped).
fn unclosed_brace(text: &str) -> Option<usize> {
    let mut stack = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'{' => stack.push(i),
            b'}' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    stack.pop()
}

fn next_token_end(text: &str, start: usize) -> usize {
    let rest = &text[start.min(text.len())..];
    let len = rest.chars().next().map(|c| {
        if c.is_alphanumeric() || c == '_' {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len())
        } else if let Some(op) =
            ["->", "...", "|>", "==", "!=", "<=", ">=", "&&", "||"].iter().find(|o| rest.starts_with(**o))
        {
            op.len()
        } else {
            c.len_utf8()
        }
    });
    start + len.unwrap_or(0)
}

fn describe_found(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or("");
    match rest.chars().next() {
        None => "end of file".into(),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let end = next_token_end(text, at) - at;
            format!("`{}`", &rest[..end])
        }
        Some('\n') => "end of line".into(),
        Some(_)
            if let Some(op) =
                ["->", "...", "|>", "==", "!=", "<=", ">=", "&&", "||"].iter().find(|o| rest.starts_with(**o)) =>
        {
            format!("`{op}`")
        }
        Some(c) => format!("`{c}`"),
    }
}

fn hint(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at).unwrap_or("").trim_end();
    if before.ends_with(',') && text.get(at..).is_some_and(|r| r.trim_start().starts_with([')', ']', '}'])) {
        return None;
    }
    let word_end = next_token_end(text, at);
    let word = text.get(at..word_end).unwrap_or("");
    if matches!(word, "def" | "func" | "function") {
        return Some("functions are declared with `fn`".into());
    }
    if matches!(word, "import" | "from") {
        return Some("imports are written `use std.nn.{Linear, relu}`".into());
    }
    if word == "=" && before.ends_with(|c: char| c.is_alphanumeric() || c == '_') && inside_parens(before) {
        return Some("named arguments are written with `:`, as in `adam(lr: 1e-3)`".into());
    }
    if word == ":" && text.get(at + 1..).is_some_and(|r| !r.starts_with(':')) && in_experiment(before) {
        return Some("settings are written `name = value`".into());
    }
    if matches!(word, "class") {
        return Some("models are declared with `model Name(params) { ... }`".into());
    }
    None
}

/// Whether `before` ends inside an unclosed `(`.
fn inside_parens(before: &str) -> bool {
    let mut depth = 0i32;
    for c in before.chars().rev() {
        match c {
            ')' => depth += 1,
            '(' if depth == 0 => return true,
            '(' => depth -= 1,
            '\n' | '{' | '}' => return false,
            _ => {}
        }
    }
    false
}

/// Whether `before` ends inside an `experiment ... {` block.
fn in_experiment(before: &str) -> bool {
    unclosed_brace(before).is_some_and(|o| {
        let head = before[..o].rsplit('\n').next().unwrap_or("");
        head.trim_start().starts_with("experiment")
    })
}

fn join_or(words: &[&str]) -> String {
    match words {
        [] => "something else".into(),
        [one] => (*one).into(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Rule names in words, for "expected ..." (pest's `rename_meta_rule` idea).
fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::item
        | Rule::use_decl
        | Rule::const_decl
        | Rule::fn_decl
        | Rule::model_decl
        | Rule::optimizer_decl
        | Rule::dataset_decl
        | Rule::experiment_decl => "an item (`use`, `let`, `fn`, `model`, `optimizer`, `dataset`, `experiment`)",
        Rule::ident | Rule::dotted | Rule::use_name => "a name",
        Rule::keyword => "a keyword",
        Rule::float | Rule::int => "a number",
        Rule::string | Rule::module_ref => "a string",
        Rule::bool => "`true` or `false`",
        Rule::use_group => "`{`",
        Rule::sweep => "`sweep`",
        Rule::ty | Rule::tensor_ty | Rule::scalar_ty => "a type",
        Rule::classes_ann | Rule::kw_classes => "`classes N`",
        Rule::kw_assert => "`assert`",
        Rule::dtype => "a dtype (`f32`, `i32`, `bool`, `u8`)",
        Rule::shape_items | Rule::shape_item | Rule::dim_expr | Rule::dim_term => "a dimension",
        Rule::rest => "`...`",
        Rule::dim_op => "`+`, `-`, `*` or `/`",
        Rule::params => "`(`",
        Rule::param => "a parameter",
        Rule::ret_ty => "`->`",
        Rule::block => "a block `{ ... }`",
        Rule::stmt | Rule::let_stmt | Rule::assign_stmt | Rule::assert_stmt => "a statement",
        Rule::model_member | Rule::field | Rule::forward_fn => "a model member (a field or `fn`)",
        Rule::buffer_decl | Rule::kw_buffer => "`buffer`",
        Rule::param_field | Rule::sub_field | Rule::repeat_field => "a field type",
        Rule::state_decl => "`state`",
        Rule::update_fn => "`update`",
        Rule::data_field | Rule::derived => "a dataset field",
        Rule::setting => "a setting (`name = value`)",
        Rule::every => "`every`",
        Rule::expr
        | Rule::postfix_expr
        | Rule::primary
        | Rule::paren
        | Rule::list
        | Rule::record
        | Rule::if_expr
        | Rule::arg => "an expression",
        Rule::record_entry => "a record entry (`name: value`)",
        Rule::infix
        | Rule::pipe
        | Rule::or
        | Rule::and
        | Rule::eq
        | Rule::ne
        | Rule::le
        | Rule::ge
        | Rule::lt
        | Rule::gt
        | Rule::add
        | Rule::sub
        | Rule::mul
        | Rule::div
        | Rule::rem
        | Rule::matmul
        | Rule::pow => "an operator",
        Rule::prefix | Rule::neg | Rule::not => "an expression",
        Rule::postfix | Rule::call_args | Rule::index | Rule::method => "`(`, `[` or `.`",
        Rule::index_item | Rule::slice | Rule::ellipsis => "an index",
        Rule::layout => "a line break",
        Rule::expr_only => "an expression",
        Rule::file => "an item (`use`, `let`, `fn`, `model`, `optimizer`, `dataset`, `experiment`)",
        Rule::WHITESPACE | Rule::COMMENT | Rule::ident_char | Rule::exponent => "input",
    }
}
