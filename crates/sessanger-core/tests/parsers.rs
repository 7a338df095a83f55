//! Every parser of client input, fed arbitrary input: none panics, each either refuses the
//! input or accepts something that reads back as itself.

use std::str::FromStr;

use proptest::prelude::*;
use sessanger_core::{Limits, Patch, Permission, ServiceId, ServiceToken, SessionId, UserId};
use sessanger_testkit::arbitrary::json;

/// Parses `input`; when accepted, its text form must parse back to the same value.
fn round_trips<T: FromStr + ToString + PartialEq + std::fmt::Debug>(input: &str) {
    if let Ok(parsed) = input.parse::<T>() {
        let again = parsed.to_string().parse::<T>().ok();
        assert_eq!(again.as_ref(), Some(&parsed), "{input:?} does not read back as itself");
    }
}

proptest! {
    #[test]
    fn ids_refuse_or_read_back_as_themselves(input in ".{0,300}") {
        round_trips::<SessionId>(&input);
        round_trips::<UserId>(&input);
        round_trips::<ServiceId>(&input);
    }

    #[test]
    fn ids_shaped_almost_right_never_panic(input in "[A-Za-z0-9_\\-.~@:+/=]{0,80}") {
        round_trips::<SessionId>(&input);
        round_trips::<UserId>(&input);
        round_trips::<ServiceId>(&input);
    }

    #[test]
    fn tokens_and_permissions_never_panic(input in "[a-z0-9_.\\-]{0,40}(\\.[A-Za-z0-9_\\-]{0,60})?") {
        if let Ok(token) = input.parse::<ServiceToken>() {
            prop_assert_eq!(token.expose().parse::<ServiceToken>().map(|t| t.expose()), Ok(token.expose()));
        }
        let _ = input.parse::<Permission>();
    }

    #[test]
    fn patch_bodies_decode_or_refuse_and_validate_without_panicking(body in json("(set|remove|incr|[a-z.$\"]{0,6})")) {
        if let Ok(patch) = serde_json::from_value::<Patch>(body) {
            let _ = patch.validate(&Limits::default());
        }
    }

    #[test]
    fn patch_bodies_as_text_never_panic(text in ".{0,200}") {
        let _ = serde_json::from_str::<Patch>(&text);
    }
}
