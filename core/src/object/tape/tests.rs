use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::*;
use crate::object::Fields;

fn serde_accepts(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// The scanner accepts `text` exactly when serde_json does.
fn agrees(text: &str) -> bool {
    let ours = parse(text).is_some();
    assert_eq!(
        ours,
        serde_accepts(text),
        "scanner and serde_json disagree on {text:?}"
    );
    ours
}

fn root<'t, 'a>(tape: &'t Tape, text: &'a str) -> View<'t, 'a> {
    let n = tape.nodes[0];
    View::new(Some(tape), 0, &text[n.start as usize..n.end as usize])
}

/// Every object's members and every array's elements, all the way down, are what serde_json reads.
fn same_split_as_serde(view: View<'_, '_>) {
    match view.text.as_bytes()[0] {
        b'{' => {
            let theirs: Option<Fields<'_>> = serde_json::from_str(view.text).ok();
            let ours = view.fields();
            assert_eq!(ours.is_some(), theirs.is_some(), "{}", view.text);
            let (Some(ours), Some(theirs)) = (ours, theirs) else {
                return;
            };
            let ours_text: Vec<(&str, &str)> = ours.iter().map(|(k, v)| (&**k, v.text)).collect();
            let theirs_text: Vec<(&str, &str)> =
                theirs.0.iter().map(|(k, v)| (&**k, v.get())).collect();
            assert_eq!(ours_text, theirs_text);
            for (_, v) in ours {
                same_split_as_serde(v);
            }
        }
        b'[' => {
            let theirs: Vec<&RawValue> = serde_json::from_str(view.text).unwrap();
            let ours: Vec<View<'_, '_>> = view.items().unwrap().collect();
            let ours_text: Vec<&str> = ours.iter().map(|v| v.text).collect();
            let theirs_text: Vec<&str> = theirs.iter().map(|v| v.get()).collect();
            assert_eq!(ours_text, theirs_text);
            for v in ours {
                same_split_as_serde(v);
            }
        }
        _ => {
            assert!(view.members().is_none() && view.items().is_none());
        }
    }
}

const VALID: &[&str] = &[
    "{}",
    "[]",
    "0",
    "-0",
    "12",
    "-12.5e-3",
    "1E+300",
    "0.0",
    r#""""#,
    r#""x""#,
    "true",
    "false",
    "null",
    " \n\t\r{ \"a\" : [ 1 , 2 ] ,\n\"b\"\t:\r{ } } \n",
    "[[[]],[[],[[1]]],[],[{}],{\"a\":[[],[[]]]}]",
    r#"{"k\"ey":1,"\\":2,"\u00e9":3,"a\/b":4,"\ud83d\ude00":5,"t\tab\n":6}"#,
    r#"{"ключ":"значение","emoji":"😀","mixed":"a😀b\u00e9","ü":["ß","€"]}"#,
    r#"{"a":"\ud800","b":"\udc00x"}"#,
    r#"{"a":"x","a":"y"}"#,
    r#"{"empty":"","esc":"\"\\\/\b\f\n\r\t\u0000\uFFFF"}"#,
    "{\"del\":\"a\u{7f}b\"}",
    r#"{"":{"":[""]}}"#,
];

const INVALID: &[&str] = &[
    "",
    " ",
    "{",
    "}",
    "[",
    "]",
    "{]",
    "[}",
    r#"{"a"}"#,
    r#"{"a":}"#,
    r#"{"a" 1}"#,
    r#"{"a":1 "b":2}"#,
    "{a:1}",
    "{'a':1}",
    "[1,]",
    r#"{"a":1,}"#,
    "[,1]",
    "[1 2]",
    "01",
    "-01",
    "-",
    "1.",
    ".5",
    "1e",
    "1e+",
    "+1",
    "NaN",
    "Infinity",
    "tru",
    "nul",
    "truex",
    "nulll",
    r#""abc"#,
    r#""\x""#,
    r#""\u12""#,
    r#""\u12g4""#,
    "\"a\u{1}b\"",
    "\"tab\there\"",
    "\"new\nline\"",
    "[1] [2]",
    "{} x",
    r#""a" "b""#,
    "\u{c}[]",
    "[]\u{c}",
    "[\u{a0}]",
    r#"{"a":[1,{"b":2]}"#,
    r#"{"a":1}}"#,
    r#"[[]]]"#,
];

#[test]
fn valid_documents_are_split_as_serde_json_splits_them() {
    for text in VALID {
        assert!(agrees(text), "{text:?} should be accepted");
        let tape = parse(text).unwrap();
        let view = root(&tape, text);
        assert_eq!(view.text, text.trim_matches(JSON_WS));
        same_split_as_serde(view);
    }
}

#[test]
fn malformed_documents_are_refused() {
    for text in INVALID {
        assert!(!agrees(text), "{text:?} should be refused");
    }
}

/// A small object as the API server writes it, with escapes, unicode, nesting and whitespace.
const SEED: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ü-1",
 "labels":{"app.kubernetes.io/name":"web"},"annotations":{"last":"{\"a\":[1,\"b\\n\"]}","e":"\u00e9😀"},
 "managedFields":[{"manager":"kubectl","fieldsV1":{"f:data":{".":{},"f:k\"ey":{}}}}]},
 "data":{"n":-1.5e3,"t":true,"f":false,"z":null,"l":[[],[{}],[1,[2,[3]]]]}}"#;

#[test]
fn every_truncation_is_refused_like_serde_json() {
    let mut cut = 0;
    for end in (0..SEED.len()).filter(|i| SEED.is_char_boundary(*i)) {
        assert!(!agrees(&SEED[..end]));
        cut += 1;
    }
    assert!(cut > 300, "{cut}");
    assert!(agrees(SEED));
    same_split_as_serde(root(&parse(SEED).unwrap(), SEED));
}

#[test]
fn single_character_mutations_are_judged_like_serde_json() {
    let replacements = [
        "\"", "\\", "{", "}", "[", "]", ":", ",", " ", "\n", "1", "0", "-", ".", "e", "u", "a",
        "\u{1}", "é", "",
    ];
    let (mut accepted, mut refused) = (0, 0);
    let boundaries: Vec<usize> = (0..SEED.len())
        .filter(|i| SEED.is_char_boundary(*i))
        .collect();
    for pair in boundaries.windows(2) {
        let (at, next) = (pair[0], pair[1]);
        for with in replacements {
            let mutated = format!("{}{with}{}", &SEED[..at], &SEED[next..]);
            if agrees(&mutated) {
                accepted += 1;
                same_split_as_serde(root(&parse(&mutated).unwrap(), &mutated));
            } else {
                refused += 1;
            }
            let inserted = format!("{}{with}{}", &SEED[..at], &SEED[at..]);
            agrees(&inserted);
        }
    }
    // Both outcomes occur plenty, so the comparison means something.
    assert!(accepted > 1000 && refused > 1000, "{accepted} / {refused}");
}

#[test]
fn special_characters_at_every_offset_of_the_word_scan() {
    let specials = [
        "\\\"",
        "\\\\",
        "\\n",
        "\\u00e9",
        "\\ud83d\\ude00",
        "é",
        "😀",
        "\u{1f}",
        "\u{0}",
        "\\",
        "\\x",
        "\\u00",
        "\"",
    ];
    for offset in 0..20 {
        for special in specials {
            for tail in ["", "b", "bbbbbbbbbbbbbbbbb"] {
                let content = format!("{}{special}{tail}", "a".repeat(offset));
                let text = format!("[\"{content}\",\"{content}\"]");
                if agrees(&text) {
                    same_split_as_serde(root(&parse(&text).unwrap(), &text));
                }
                let key = format!("{{\"{content}\":\"{content}\"}}");
                if agrees(&key) {
                    same_split_as_serde(root(&parse(&key).unwrap(), &key));
                }
            }
        }
    }
}

#[test]
fn deep_nesting_is_fine_as_in_serde_json() {
    let depth = 50_000;
    let arrays = "[".repeat(depth) + &"]".repeat(depth);
    assert!(agrees(&arrays));
    assert_eq!(parse(&arrays).unwrap().nodes.len(), depth);
    let objects = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
    assert!(agrees(&objects));
    assert!(!agrees(&arrays[1..]));
    assert!(!agrees(&objects[..objects.len() - 1]));
}

#[test]
fn keys_with_escapes_are_decoded_and_lone_surrogates_refused() {
    let text = r#"{"plain":1,"k\"ey":2,"\u00e9":3,"  spaced  " : 4}"#;
    let tape = parse(text).unwrap();
    let keys: Vec<String> = root(&tape, text)
        .members()
        .unwrap()
        .map(|(k, _)| k.decode().unwrap().into_owned())
        .collect();
    assert_eq!(keys, ["plain", "k\"ey", "é", "  spaced  "]);

    // serde_json skips such a key but refuses it as a map key: so does `fields`.
    let text = r#"{"ok":1,"\ud800":2}"#;
    let tape = parse(text).unwrap();
    assert!(root(&tape, text).fields().is_none());
    assert!(serde_json::from_str::<Fields<'_>>(text).is_err());
}

#[test]
fn a_view_without_a_tape_is_opaque() {
    let view = View::new(None, 0, r#"{"a":[1]}"#);
    assert!(view.members().is_none() && view.items().is_none() && view.fields().is_none());
    assert!(!view.is_null());
    assert!(View::new(None, 0, "null").is_null());
}

#[test]
fn scalars_are_not_containers() {
    for text in [r#""{}""#, "1", "null", r#""[1]""#] {
        let tape = parse(text).unwrap();
        let view = root(&tape, text);
        assert!(view.members().is_none() && view.items().is_none(), "{text}");
    }
}

#[test]
fn more_values_than_the_limit_are_refused_as_too_many() {
    let list = |n: usize| format!("[{}]", vec!["0"; n - 1].join(","));
    // The list itself is a value too.
    let at_limit = list(MAX_VALUES);
    assert_eq!(scan(&at_limit).map(|t| t.nodes.len()), Ok(MAX_VALUES));
    assert_eq!(
        scan(&list(MAX_VALUES + 1)).err(),
        Some(Refused::TooManyValues)
    );
    let deep = format!(
        "{}{}",
        "[".repeat(MAX_VALUES + 1),
        "]".repeat(MAX_VALUES + 1)
    );
    assert_eq!(scan(&deep).err(), Some(Refused::TooManyValues));
    // Invalid text is invalid, at any size.
    assert_eq!(scan(&list(10)[1..]).err(), Some(Refused::Invalid));
    assert_eq!(scan("[1,]").err(), Some(Refused::Invalid));
}

#[test]
fn numbers_too_large_for_a_double_are_refused_as_serde_json_values_refuse_them() {
    let long = format!("[{}]", "9".repeat(309));
    let fits = format!("[{}]", "9".repeat(308));
    for (text, fits_a_double) in [
        ("[1e309]", false),
        ("1E+400", false),
        ("[-1e000000000000000309]", false),
        ("[1.7e308]", true),
        ("[1e-400]", true),
        ("[0e99999]", true),
        (long.as_str(), false),
        (fits.as_str(), true),
    ] {
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(text).is_ok(),
            fits_a_double,
            "serde_json on {text:.40}"
        );
        assert_eq!(
            parse(text).is_some(),
            fits_a_double,
            "the scanner on {text:.40}"
        );
    }
}
