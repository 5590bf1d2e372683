use moat_config::Config;
use proptest::prelude::*;

/// Lines made of real keys and awkward values, to reach deep into the typed parsers.
fn config_line() -> impl Strategy<Value = String> {
    let keys: Vec<&'static str> = moat_config::known_keys().iter().map(|k| k.name).collect();
    let key = prop_oneof![
        3 => proptest::sample::select(keys).prop_map(str::to_owned),
        1 => "[A-Za-z#=]{0,12}",
    ];
    let value = prop_oneof![
        "[0-9]{0,25}[kKmMgGsT]?",
        "(yes|no|true|false|1|0|YES|on)",
        "[ -~]{0,20}",
        "\\PC{0,10}",
        "[(\\[{\\\\^$|*+?.]{0,8}",
    ];
    let sep = "[ \t]{0,3}";
    let end = "(\n|\r\n|\r|)";
    (sep, key, "[ \t]{0,3}", value, "[ \t]{0,2}", end)
        .prop_map(|(a, k, s, v, t, e)| format!("{a}{k}{s}{v}{t}{e}"))
}

fn check(result: Result<Config, moat_config::ConfigError>) {
    match result {
        Ok(c) => {
            for w in c.warnings() {
                let _ = w.to_string();
            }
            let _ = c.unused_keys().len();
        }
        Err(e) => {
            assert!(!e.line_errors().is_empty());
            let msg = e.to_string();
            assert!(msg.starts_with("/p/clamd.conf:"), "{msg}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC*") {
        check(Config::parse(&text, "/p/clamd.conf"));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(Config::parse_bytes(&bytes, "/p/clamd.conf"));
    }

    #[test]
    fn never_panics_on_config_like_text(lines in proptest::collection::vec(config_line(), 0..30)) {
        check(Config::parse(&lines.concat(), "/p/clamd.conf"));
    }
}
