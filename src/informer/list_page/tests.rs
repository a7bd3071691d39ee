use kubebridge_sim::{ReplayConfig, ReplayData};

use super::*;
use crate::informer::testing::{pod_token_rule, pods, transform};

fn page(continue_token: &str, items: &[&str]) -> String {
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"10","continue":"{continue_token}"}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn decode(body: &str, transform: &ObjectTransform) -> Result<ListPage, ApiError> {
    decode_page(body.as_bytes(), &pods(), transform, "/api/v1/pods")
}

/// What the one-object decode (a watch event's object, `Writing::Trusted`) makes of
/// `item`: the same decoder as a page's, writing the object the other way.
fn one_by_one(item: &str, transform: &ObjectTransform) -> RawObject {
    let raw = RawValue::from_string(item.to_owned()).expect("json");
    RawObject::decode(raw, &pods(), transform).expect("decode")
}

#[test]
fn seed_pods_decode_as_their_json_says_and_alike_on_both_paths_stripped_and_kept() {
    let data = ReplayData::build(&ReplayConfig {
        pods: 120,
        events: 0,
        ..ReplayConfig::default()
    });
    let items: Vec<&str> = data
        .items()
        .iter()
        .map(|b| std::str::from_utf8(b).expect("utf-8"))
        .collect();
    assert!(items.iter().all(|i| i.contains("managedFields")));
    for strip in [false, true] {
        let t = transform(strip, Vec::new());
        let got = decode(&page("", &items), &t).expect("page");
        assert_eq!(got.objects.len(), items.len());
        for (object, item) in got.objects.iter().zip(&items) {
            // As a tree: the item with kind and apiVersion, less managedFields if stripped.
            let mut tree: serde_json::Value = serde_json::from_str(item).expect("json");
            tree["kind"] = "Pod".into();
            tree["apiVersion"] = "v1".into();
            if strip {
                tree["metadata"]
                    .as_object_mut()
                    .expect("metadata")
                    .remove("managedFields");
            }
            let decoded: serde_json::Value = serde_json::from_str(object.raw.get()).expect("json");
            assert_eq!(decoded, tree, "strip={strip}");
            assert!(
                object
                    .raw
                    .get()
                    .starts_with(r#"{"kind":"Pod","apiVersion":"v1","#)
            );
            assert_eq!(object.uid, tree["metadata"]["uid"].as_str().expect("uid"));
            // And the one-object decode writes the same bytes.
            let want = one_by_one(item, &t);
            assert_eq!(object.raw.get(), want.raw.get(), "strip={strip}");
            assert_eq!(
                (&object.namespace, &object.name, &object.uid),
                (&want.namespace, &want.name, &want.uid)
            );
            assert_eq!(object.resource_version, want.resource_version);
            assert_eq!(object.raw.get().contains("managedFields"), !strip);
        }
    }
}

#[test]
fn adds_type_meta_keeps_an_existing_kind_and_reads_the_page_metadata() {
    let items = [
        r#"{"metadata":{"name":"a","namespace":"ns","uid":"u","resourceVersion":"7"},"spec":{}}"#,
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b","uid":"v","resourceVersion":"8"}}"#,
    ];
    let got = decode(&page("t1", &items), &ObjectTransform::none()).expect("page");
    assert_eq!(got.continue_token.as_deref(), Some("t1"));
    assert_eq!(got.resource_version, "10");
    assert_eq!(
        got.objects[0].raw.get(),
        r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"ns","uid":"u","resourceVersion":"7"},"spec":{}}"#
    );
    assert_eq!(got.objects[0].key(), "ns/a");
    assert_eq!(got.objects[1].raw.get(), items[1]);
    assert_eq!(got.objects[1].key(), "b");
}

#[test]
fn escaped_names_and_values_are_read_as_json_says() {
    let item = r#"{"metadata":{"na\u006de":"a\"b","namespace":null,"managedFields":[{"x":1}],"uid":"u","resourceVersion":"7"},"st\u0061tus":{"s":"\u00e9"}}"#;
    let got = decode(&page("", &[item]), &transform(true, Vec::new())).expect("page");
    let o = &got.objects[0];
    assert_eq!((o.name.as_str(), o.namespace.as_deref()), ("a\"b", None));
    assert_eq!(
        o.raw.get(),
        r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a\"b","namespace":null,"uid":"u","resourceVersion":"7"},"status":{"s":"\u00e9"}}"#
    );
}

#[test]
fn redaction_rules_apply_to_list_items() {
    let t = transform(true, vec![pod_token_rule()]);
    let item = r#"{"metadata":{"name":"a","uid":"u","resourceVersion":"7","managedFields":[]},"spec":{"token":"s3cret"}}"#;
    let got = decode(&page("", &[item]), &t).expect("page");
    let text = got.objects[0].raw.get();
    assert!(
        !text.contains("s3cret") && text.contains("hmac-sha256:"),
        "{text}"
    );
    assert_eq!(text, one_by_one(item, &t).raw.get());
}

#[test]
fn an_empty_or_null_items_list_is_an_empty_page() {
    for body in [
        r#"{"metadata":{"resourceVersion":"3"},"items":[]}"#,
        r#"{"metadata":{"resourceVersion":"3"},"items":null}"#,
        r#"{"metadata":{"resourceVersion":"3"}}"#,
    ] {
        let got = decode(body, &ObjectTransform::none()).expect(body);
        assert!(
            got.objects.is_empty() && got.continue_token.is_none(),
            "{body}"
        );
        assert_eq!(got.resource_version, "3");
    }
}

#[test]
fn a_bad_item_and_a_bad_page_say_which_and_never_quote_the_input() {
    let none = ObjectTransform::none();
    for (body, says) in [
        (page("", &[r#"{"kind":"Pod"}"#]), "without the metadata"),
        (
            page("", &[r#"{"metadata":"c2VjcmV0"}"#]),
            "without the metadata",
        ),
        (
            page("", &[r#"{"metadata":{"name":7,"uid":"c2VjcmV0"}}"#]),
            "without the metadata",
        ),
        (
            page("", &[r#"{"metadata":{"name":"c2VjcmV0"#]),
            "not a list",
        ),
        (r#"{"items":[]}"#.to_owned(), "not a list"),
        (r#"["c2VjcmV0"]"#.to_owned(), "not a list"),
    ] {
        let err = decode(&body, &none).err().expect(&body).to_string();
        assert!(err.contains(says), "{body}: {err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }
}

#[test]
fn the_next_page_token_is_read_from_the_metadata_alone() {
    assert_eq!(
        next_page_token(page("t1", &["garbage that is never read"]).as_bytes()).as_deref(),
        Some("t1")
    );
    assert_eq!(next_page_token(page("", &[]).as_bytes()), None);
    // Items first: not read past them, so no token (the page is asked for after the decode).
    let items_first = r#"{"items":[],"metadata":{"continue":"t1"}}"#;
    assert_eq!(next_page_token(items_first.as_bytes()), None);
    assert_eq!(next_page_token(b"not json"), None);
}
