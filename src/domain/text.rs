//! The one rule for control characters in text that comes from outside (API.md, Conventions):
//! no text may carry U+0000 or any other control character (Unicode category Cc: C0, DEL, C1),
//! and single-line text no line or paragraph separator either; free text (a reason, a message,
//! a note, a comment) may carry tab, line feed and carriage return, nothing else of the kind.
//!
//! The API applies it to every JSON string, query value, path id and header it reads, so
//! nothing of the kind reaches a service, a mail or the database (PostgreSQL refuses U+0000 in
//! text; SQLite would store it).

/// What kind of text a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// One line: names, addresses, logins, passwords, tokens, ids, filters, headers.
    Line,
    /// A body people write: tab and line breaks allowed.
    FreeText,
}

/// The first character of `s` that `kind` does not allow, if any.
pub fn forbidden_char(s: &str, kind: TextKind) -> Option<char> {
    s.chars().find(|&c| !allowed(c, kind))
}

/// Whether `s` has no character that `kind` forbids.
pub fn is_clean(s: &str, kind: TextKind) -> bool {
    forbidden_char(s, kind).is_none()
}

fn allowed(c: char, kind: TextKind) -> bool {
    match kind {
        TextKind::Line => !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}'),
        TextKind::FreeText => !c.is_control() || matches!(c, '\t' | '\n' | '\r'),
    }
}

/// `s` with every run of forbidden characters (for one line) replaced by one space and the
/// ends trimmed: for headers that are recorded, never refused (a user agent).
pub fn strip_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if allowed(c, TextKind::Line) {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out.trim().to_owned()
}

/// Why a required text of bounded length is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoundedTextError {
    /// Absent, or nothing but spaces.
    #[error("is required")]
    Required,
    /// Fewer characters than the minimum (after trimming).
    #[error("must be at least {0} characters")]
    TooShort(usize),
    /// More characters than the maximum (after trimming).
    #[error("must be at most {0} characters")]
    TooLong(usize),
}

impl BoundedTextError {
    /// The field-error code of API.md.
    pub fn code(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::TooShort(_) => "too_short",
            Self::TooLong(_) => "too_long",
        }
    }
}

/// A required text of `min` to `max` characters once trimmed: the trimmed text, or why not.
pub fn bounded(value: Option<&str>, min: usize, max: usize) -> Result<&str, BoundedTextError> {
    let v = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(BoundedTextError::Required)?;
    let n = v.chars().count();
    if n < min {
        return Err(BoundedTextError::TooShort(min));
    }
    if n > max {
        return Err(BoundedTextError::TooLong(max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_refuses_every_control_character_and_line_break() {
        for c in [
            '\0', '\u{1}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{2028}',
            '\u{2029}',
        ] {
            let s = format!("ab{c}cd");
            assert_eq!(forbidden_char(&s, TextKind::Line), Some(c), "{c:?}");
        }
        assert!(is_clean("jbber.dev-1 Élise 日本 🙂", TextKind::Line));
    }

    #[test]
    fn free_text_allows_tab_and_line_breaks_only() {
        assert!(is_clean(
            "line one\r\nline two\n\tindented",
            TextKind::FreeText
        ));
        for c in ['\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}'] {
            assert!(!is_clean(&format!("a{c}b"), TextKind::FreeText), "{c:?}");
        }
    }

    #[test]
    fn stripping_keeps_the_words() {
        assert_eq!(
            strip_controls("Mozilla/5.0\t(X11)\0\u{1b}[31m"),
            "Mozilla/5.0 (X11) [31m"
        );
        assert_eq!(strip_controls("\tcurl/8\n"), "curl/8");
        assert_eq!(strip_controls("plain"), "plain");
    }
}
