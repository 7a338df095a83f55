//! `${VAR}` and `${VAR:-default}` expansion on the raw text of a config file.
//!
//! Expansion runs before parsing so that it works in every value of every format, and so that
//! parse errors still point at the right line: a placeholder and its value always sit on the
//! same line, and a value holding a line break is refused. Columns move when a value is
//! longer or shorter than its placeholder; [`Expanded::raw_column`] moves them back.

use super::ConfigError;

/// The expanded text, with what it takes to map its columns back to the file.
#[derive(Debug)]
pub(crate) struct Expanded {
    pub(crate) text: String,
    /// Every place where the expanded text differs from the file, in order.
    edits: Vec<Edit>,
}

/// One placeholder (or `$${` escape) and what replaced it; columns are 1-based, in characters.
#[derive(Debug)]
struct Edit {
    line: usize,
    raw_column: usize,
    raw_len: usize,
    expanded_column: usize,
    expanded_len: usize,
}

impl Expanded {
    /// The column in the file of `column` of `line` in the expanded text; a column inside a
    /// substituted value maps to the start of its placeholder.
    pub(crate) fn raw_column(&self, line: usize, column: usize) -> usize {
        let mut mapped = column;
        for edit in self.edits.iter().filter(|e| e.line == line) {
            if column < edit.expanded_column {
                break;
            }
            if column < edit.expanded_column + edit.expanded_len {
                return edit.raw_column;
            }
            mapped = column + (edit.raw_column + edit.raw_len) - (edit.expanded_column + edit.expanded_len);
        }
        mapped
    }
}

/// Expands every `${NAME}` and `${NAME:-default}` in `text`; `$${` stands for a literal `${`,
/// and a `$` not followed by `{` is kept as it is (so `pa$$word` stays `pa$$word`).
///
/// `${NAME:-default}` takes the default when `NAME` is unset or empty, as the shell does. Values
/// are inserted verbatim, like in the shell: quote the placeholder in the file if a value may
/// hold characters meaningful to the format (`"${PASSWORD}"`).
pub(crate) fn expand(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut edits = Vec::new();
    let (mut line, mut column, mut out_column) = (1, 1, 1);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\n' {
            out.push('\n');
            (line, column, out_column) = (line + 1, 1, 1);
            rest = &rest[1..];
            continue;
        }
        if rest.starts_with("$${") {
            out.push_str("${");
            edits.push(Edit { line, raw_column: column, raw_len: 3, expanded_column: out_column, expanded_len: 2 });
            (column, out_column) = (column + 3, out_column + 2);
            rest = &rest[3..];
            continue;
        }
        if !rest.starts_with("${") {
            out.push(c);
            (column, out_column) = (column + 1, out_column + 1);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let at = |message: String| ConfigError::Placeholder { origin: origin.to_owned(), line, column, message };
        let body_and_rest = &rest[2..];
        let line_end = body_and_rest.find('\n').unwrap_or(body_and_rest.len());
        let Some(close) = body_and_rest[..line_end].find('}') else {
            return Err(at("`${` without a closing `}` on the same line (write `$${` for a literal `${`)".into()));
        };
        let body = &body_and_rest[..close];
        if body.contains("${") {
            return Err(at(format!("nested placeholders are not supported in `${{{body}}}`")));
        }
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_variable_name(name) {
            return Err(at(format!(
                "`${{{body}}}` is not a placeholder: write `${{NAME}}` or `${{NAME:-default}}`, NAME being letters, \
                 digits and `_`"
            )));
        }
        let value = match (env(name), default) {
            (Some(value), Some(default)) if value.is_empty() => default.to_owned(),
            (Some(value), _) => value,
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                return Err(ConfigError::MissingVariable {
                    origin: origin.to_owned(),
                    line,
                    column,
                    name: name.into(),
                });
            }
        };
        if value.contains(['\n', '\r']) {
            return Err(ConfigError::MultilineVariable { origin: origin.to_owned(), line, column, name: name.into() });
        }
        let raw_len = body.chars().count() + 3;
        let expanded_len = value.chars().count();
        out.push_str(&value);
        edits.push(Edit { line, raw_column: column, raw_len, expanded_column: out_column, expanded_len });
        (column, out_column) = (column + raw_len, out_column + expanded_len);
        rest = &body_and_rest[close + 1..];
    }
    Ok(Expanded { text: out, edits })
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("rabbit.internal".into()),
            "EMPTY" => Some(String::new()),
            "LINES" => Some("a\nb".into()),
            _ => None,
        }
    }

    fn expand_ok(text: &str) -> String {
        expand(text, "t.yaml", &env).unwrap().text
    }

    #[test]
    fn placeholders_take_values_then_defaults() {
        assert_eq!(expand_ok("url: ${HOST}:5672"), "url: rabbit.internal:5672");
        assert_eq!(expand_ok("a: ${NOPE:-x y}\nb: ${HOST:-z}"), "a: x y\nb: rabbit.internal");
        assert_eq!(expand_ok("a: ${EMPTY:-fallback} ${EMPTY}."), "a: fallback .");
        assert_eq!(expand_ok("a: ${NOPE:-}"), "a: ");
    }

    #[test]
    fn dollars_that_open_no_placeholder_are_kept() {
        assert_eq!(expand_ok("p: pa$$word $5 $"), "p: pa$$word $5 $");
        assert_eq!(expand_ok("# write $${VAR} to expand"), "# write ${VAR} to expand");
    }

    #[test]
    fn a_missing_variable_is_located() {
        let err = expand("a: 1\nb: x ${NOPE}", "t.yaml", &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.yaml:2:6: environment variable `NOPE` is not set (write ${NOPE:-default} to give it a default)"
        );
    }

    #[test]
    fn malformed_placeholders_and_line_breaks_are_refused() {
        for text in ["a: ${HOST", "a: ${HOST\n}", "a: ${}", "a: ${1X}", "a: ${A-b}", "a: ${A:-${B}}"] {
            assert!(
                matches!(expand(text, "t", &env), Err(ConfigError::Placeholder { line: 1, column: 4, .. })),
                "{text}"
            );
        }
        assert!(matches!(
            expand("\n a: ${LINES}", "t", &env),
            Err(ConfigError::MultilineVariable { line: 2, column: 5, .. })
        ));
    }

    #[test]
    fn columns_map_back_across_substitutions() {
        let expanded = expand("k: ${HOST} ${NOPE:-ab}!", "t", &env).unwrap();
        assert_eq!(expanded.text, "k: rabbit.internal ab!");
        assert_eq!(expanded.raw_column(1, 2), 2);
        assert_eq!(expanded.raw_column(1, 4), 4);
        assert_eq!(expanded.raw_column(1, 10), 4);
        assert_eq!(expanded.raw_column(1, 19), 11);
        assert_eq!(expanded.raw_column(1, 20), 12);
        assert_eq!(expanded.raw_column(1, 22), 23);
        assert_eq!(expanded.raw_column(2, 22), 22);
    }
}
