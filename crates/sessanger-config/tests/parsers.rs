//! Config files of arbitrary text: parsing never panics, and a refusal names where it is.

use proptest::prelude::*;
use sessanger_config::{Config, Format, SessmanFile};

/// Lines built from the file's own keys and values, in YAML's shapes, so the cases reach past
/// the YAML parser into the model, the durations, sizes, routing keys and URLs.
fn yaml_text() -> impl Strategy<Value = String> {
    let key = "(session|ttl|max_lifetime|max_per_user|on_limit|http|listen|body_limit|header_read_timeout|\
               store|url|broker|routing_keys|sessanger|client|admins|login|password|compat|back_session|sessman|\
               enabled|encryption|keys|attributes|data_dir|events|max_events|max_age|session_ids|[a-z_]{1,8})";
    let value = "(|1|0|-1|90|30m|1h 30m|1MiB|512KiB|true|null|\\[\\]|\\{\\}|\\[a, b\\]|'\\*'|\\$\\{X\\}|\\$\\{X:-3\\}|\
                 redis://h|postgres://u@h/d|127.0.0.1:8090|[ -~]{0,12})";
    let line =
        (0..3usize, key, value).prop_map(|(indent, key, value)| format!("{}{key}: {value}", "  ".repeat(indent)));
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #[test]
    fn yaml_of_the_files_own_keys_never_panics(text in yaml_text()) {
        if let Err(error) = Config::parse_with_env(&text, Format::Yaml, "c.yaml", |_| Some("7".into())) {
            prop_assert!(error.to_string().starts_with("c.yaml"), "{error}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\\n\\t]{0,200}") {
        let _ = Config::parse_with_env(&text, Format::Yaml, "c.yaml", |_| None);
        let _ = Config::parse_with_env(&text, Format::Json, "c.json", |_| None);
        let _ = SessmanFile::parse(&text, "sessman.json");
    }
}
