//! The lists a new password is checked against, beside the rules of [`super::password`]:
//!
//! - the 100,000 most common passwords of 8 to 128 characters from public breach dumps,
//!   compiled into the binary (zstd-compressed, ~260 KiB; source and licence in
//!   `src/domain/data/README.md`) and decompressed once into a hash set;
//! - the operator's own list (`PASSWORD_BLOCKLIST_FILE`, one password per line, `#` comments);
//! - the name of the service (`SERVICE_NAME`), which a password must not contain.
//!
//! They are process-wide, so that every place that sets a password checks the same lists
//! through [`super::NewPassword::parse`] without carrying them around. Startup adds the
//! operator's words and the service name ([`add_operator_words`], [`add_service_name`]); they
//! are only ever added to, never replaced: a process serves one configuration, and tests that
//! start several apps in one process must not undo each other's. Comparisons ignore case.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};

/// The compressed list: sorted, lower-case, one per line.
const COMMON: &[u8] = include_bytes!("data/common-passwords.txt.zst");

static COMMON_SET: OnceLock<HashSet<&'static str>> = OnceLock::new();

/// What the operator configured.
#[derive(Default)]
struct Local {
    words: HashSet<String>,
    service_names: Vec<String>,
}

static LOCAL: RwLock<Option<Local>> = RwLock::new(None);

fn decode() -> std::io::Result<HashSet<&'static str>> {
    let bytes = zstd::stream::decode_all(COMMON)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    // Kept for the life of the process: the set borrows from it.
    let text: &'static str = Box::leak(text.into_boxed_str());
    Ok(text.lines().filter(|l| !l.is_empty()).collect())
}

/// Decompresses the compiled-in list now (at start), so that no request pays for it; answers
/// how many passwords it holds. Fails only on a damaged build.
pub fn load_common() -> std::io::Result<usize> {
    if let Some(set) = COMMON_SET.get() {
        return Ok(set.len());
    }
    let set = decode()?;
    Ok(COMMON_SET.get_or_init(|| set).len())
}

/// Whether `lower` (a lower-cased password) is one of the most common breached passwords.
pub fn is_common(lower: &str) -> bool {
    // `load_common` ran at start; a damaged list was refused there.
    COMMON_SET
        .get_or_init(|| decode().unwrap_or_default())
        .contains(lower)
}

/// Adds the operator's passwords: one per line, compared ignoring case; blank lines and lines
/// starting with `#` are skipped. Answers how many lines were taken.
pub fn add_operator_words(text: &str) -> usize {
    let words: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_lowercase)
        .collect();
    let taken = words.len();
    if let Ok(mut local) = LOCAL.write() {
        local.get_or_insert_with(Local::default).words.extend(words);
    }
    taken
}

/// Whether `lower` (a lower-cased password) is on the operator's list.
pub fn is_operator_refused(lower: &str) -> bool {
    LOCAL
        .read()
        .ok()
        .and_then(|local| local.as_ref().map(|l| l.words.contains(lower)))
        .unwrap_or(false)
}

/// Adds the service's name, which passwords must not contain.
pub fn add_service_name(name: &str) {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return;
    }
    if let Ok(mut local) = LOCAL.write() {
        let local = local.get_or_insert_with(Local::default);
        if !local.service_names.contains(&name) {
            local.service_names.push(name);
        }
    }
}

/// The service names added so far, lower-cased.
pub fn service_names() -> Vec<String> {
    LOCAL
        .read()
        .ok()
        .and_then(|local| local.as_ref().map(|l| l.service_names.clone()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_list_holds_100k_common_passwords_of_eight_characters_or_more() {
        assert_eq!(load_common().expect("the list decodes"), 100_000);
        for common in [
            "password",
            "iloveyou",
            "qwertyuiop",
            "password123",
            "1qaz2wsx",
        ] {
            assert!(is_common(common), "{common}");
        }
        assert!(!is_common("orbit lantern mosaic 42"));
        // Shorter ones are left to the length rule; entries are lower-case.
        assert!(!is_common("123456"));
        assert!(!is_common("Password"));
    }

    #[test]
    fn operator_words_ignore_case_blanks_and_comments() {
        let taken = add_operator_words(
            "# ours\n\n  Unit-Test Operator Word 1  \r\nsecond unit-test word\n",
        );
        assert_eq!(taken, 2);
        assert!(is_operator_refused("unit-test operator word 1"));
        assert!(is_operator_refused("second unit-test word"));
        assert!(!is_operator_refused("# ours"));
    }
}
