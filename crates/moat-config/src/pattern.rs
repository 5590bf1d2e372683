//! `OnAccessExcludePath` patterns.

use std::fmt;
use std::path::Path;

/// A compiled `OnAccessExcludePath` pattern: an unanchored extended regular expression matched
/// against directory paths (ClamAV 1.5's meaning; ClamAV 1.4 compared the exact path, and a
/// plain path such as `/srv/cache` still works as a pattern, but it also matches
/// `/srv/cache2` and `/x/srv/cache`; write `^/srv/cache(/|$)` to be exact).
///
/// Patterns are compiled with the `regex` crate, Unicode mode off, and matched against the raw
/// bytes of the path (non-UTF-8 paths match too).
/// It differs from POSIX ERE (regcomp with `REG_EXTENDED`) in these constructs:
///
/// - inside brackets a backslash escapes (`[\]]`); in POSIX it is an ordinary character;
/// - collating elements `[[.x.]]` and equivalence classes `[[=x=]]` are not supported
///   (character classes such as `[[:alpha:]]` are);
/// - back-references (`\1`) and look-around are not supported (ERE has no back-references
///   either, but GNU regcomp accepts them);
/// - `\d`, `\w`, `\s` and `\b` are Perl classes and a word-boundary assertion here (GNU
///   extensions or undefined in POSIX), and an escaped letter with no meaning (`\q`) is an
///   error;
/// - a `{` that does not start a valid repetition (`a{x`) is an error here, a literal in GNU;
/// - like regcomp in the C locale (in which clamonacc runs), matching is on bytes: `.` and
///   `[^x]` match one byte, `[[:alpha:]]` is ASCII only; a non-ASCII literal in the pattern
///   matches its UTF-8 bytes;
/// - alternation picks the leftmost-first branch rather than the leftmost-longest match: this
///   never changes whether a path matches, only which text is reported as the match.
#[derive(Clone)]
pub struct PathPattern {
    source: String,
    regex: regex::bytes::Regex,
}

impl PathPattern {
    /// Compiles `source`.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::bytes::RegexBuilder::new(source)
            .unicode(false)
            .build()?;
        Ok(PathPattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as written in the file.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` matches anywhere (the pattern is not anchored).
    pub fn is_match(&self, path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        self.regex.is_match(path.as_os_str().as_bytes())
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PathPattern").field(&self.source).finish()
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PathPattern {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanchored_and_anchored() {
        let p = PathPattern::new("/srv/cache").unwrap();
        assert!(p.is_match(Path::new("/srv/cache")));
        assert!(p.is_match(Path::new("/srv/cache2")));
        assert!(p.is_match(Path::new("/x/srv/cache/y")));
        let p = PathPattern::new("^/srv/cache(/|$)").unwrap();
        assert!(p.is_match(Path::new("/srv/cache")));
        assert!(p.is_match(Path::new("/srv/cache/a")));
        assert!(!p.is_match(Path::new("/srv/cache2")));
        let p = PathPattern::new("[[:digit:]]+$").unwrap();
        assert!(p.is_match(Path::new("/a/b12")));
    }

    #[test]
    fn non_utf8_paths() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let p = PathPattern::new("^/data/.*/tmp$").unwrap();
        assert!(p.is_match(Path::new(OsStr::from_bytes(b"/data/\xff\xfe/tmp"))));
        let p = PathPattern::new("^/home/jos./x$").unwrap();
        assert!(p.is_match(Path::new(OsStr::from_bytes(b"/home/jos\xff/x"))));
        let p = PathPattern::new("^/home/josé$").unwrap();
        assert!(p.is_match(Path::new("/home/josé")));
    }
}
