//! Parsers for the value types of clamd.conf. Each returns the human reason on failure; the
//! caller adds file, line and key.

use std::time::Duration;

/// Parses a boolean: `yes`/`no`, `true`/`false`, `1`/`0`, in any letter case (as clamd does;
/// `on`/`off` are refused by clamd and here).
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(format!(
            "expected yes/no, true/false or 1/0, got {}{}",
            quote(value),
            comment_hint(value)
        )),
    }
}

/// Parses an unsigned decimal number (digits only; leading zeros are decimal, not octal; no
/// sign, no hex), as clamd does. Values that do not fit in 64 bits are an error.
pub fn parse_number(value: &str) -> Result<u64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "expected a number, got {}{}",
            quote(value),
            comment_hint(value)
        ));
    }
    value
        .parse::<u64>()
        .map_err(|_| format!("number too large, got {}", quote(value)))
}

/// Parses a number that must fit in a `u32` (clamd silently wraps larger values; moat refuses
/// them).
pub fn parse_u32(value: &str) -> Result<u32, String> {
    let n = parse_number(value)?;
    u32::try_from(n).map_err(|_| {
        format!(
            "number too large (at most {}), got {}",
            u32::MAX,
            quote(value)
        )
    })
}

/// The result of parsing a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedSize {
    /// The number of bytes, as written.
    Bytes(u64),
    /// The value does not fit in 64 bits (clamd resets such values to its maximum, i.e. no
    /// practical limit).
    Overflow,
}

/// Parses a size: decimal bytes, optionally followed by `K`/`k` (×1024), `M`/`m` (×1024²) or
/// `G`/`g` (×1024³). clamd 1.4 accepts `G` although its man page only mentions K and M.
pub fn parse_size(value: &str) -> Result<ParsedSize, String> {
    let bad = || {
        format!(
            "expected a size (bytes, or a number with a K, M or G suffix), got {}{}",
            quote(value),
            comment_hint(value)
        )
    };
    let (digits, multiplier) = match value.as_bytes().last() {
        Some(b'k' | b'K') => (&value[..value.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&value[..value.len() - 1], 1u64 << 20),
        Some(b'g' | b'G') => (&value[..value.len() - 1], 1u64 << 30),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(
        match digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
        {
            Some(n) => ParsedSize::Bytes(n),
            None => ParsedSize::Overflow,
        },
    )
}

/// Parses a duration (moat extension): plain milliseconds (`5000`), or a number with an `ms`
/// or `s` suffix (`5000ms`, `5s`). Zero is refused: a deadline of zero would fail every scan.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "expected a duration in milliseconds, or a number with an \"ms\" or \"s\" suffix, got {}{}",
            quote(value),
            comment_hint(value)
        )
    };
    let lower = value.to_ascii_lowercase();
    let (digits, millis_per_unit) = if let Some(d) = lower.strip_suffix("ms") {
        (d, 1u64)
    } else if let Some(d) = lower.strip_suffix('s') {
        (d, 1000)
    } else {
        (lower.as_str(), 1)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .ok_or_else(|| format!("duration too large, got {}", quote(value)))?;
    if n == 0 {
        return Err(format!(
            "the duration must be greater than zero, got {}",
            quote(value)
        ));
    }
    Ok(Duration::from_millis(n))
}

/// Quotes a value for an error message, escaping control characters.
pub fn quote(value: &str) -> String {
    format!("{value:?}")
}

/// A hint for values that look like they carry a trailing comment, which clamd.conf does not
/// support.
fn comment_hint(value: &str) -> &'static str {
    if value.contains('#') {
        " (comments must be on a line of their own)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(ParsedSize::Bytes(0)));
        assert_eq!(parse_size("10"), Ok(ParsedSize::Bytes(10)));
        assert_eq!(parse_size("10k"), Ok(ParsedSize::Bytes(10240)));
        assert_eq!(parse_size("10K"), Ok(ParsedSize::Bytes(10240)));
        assert_eq!(parse_size("5m"), Ok(ParsedSize::Bytes(5 << 20)));
        assert_eq!(parse_size("2G"), Ok(ParsedSize::Bytes(2 << 30)));
        assert_eq!(parse_size("007"), Ok(ParsedSize::Bytes(7)));
        assert_eq!(parse_size("99999999999999999999"), Ok(ParsedSize::Overflow));
        assert_eq!(parse_size("17179869184G"), Ok(ParsedSize::Overflow));
        for bad in [
            "", "K", "1.5M", "10X", "1T", "-1", "+1", "1 M", "1KB", "0x10",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("010"), Ok(10));
        assert_eq!(parse_u32("4294967295"), Ok(u32::MAX));
        assert!(parse_u32("4294967296").unwrap_err().contains("too large"));
        for bad in ["", "-3", "+7", "0x10", "3x", "10M", "many", "1 2"] {
            assert!(parse_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bools() {
        for t in ["yes", "YES", "Yes", "yEs", "true", "TRUE", "True", "1"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["no", "NO", "No", "false", "FALSE", "False", "0"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["", "on", "off", "y", "n", "2", "yes # c"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
        assert!(parse_bool("yes # c").unwrap_err().contains("comments"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5000"), Ok(Duration::from_millis(5000)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("250MS"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "ms", "0", "0s", "1.5s", "1m", "-1", "5 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
