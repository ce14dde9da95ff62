//! The objects the watches receive, reduced while they are decoded.
//!
//! kube decodes a list page and each watch event with serde_json. Decoded as a whole (kube's
//! `DynamicObject`), one object holding a value nested deeper than serde_json's recursion limit
//! (128 levels, e.g. a HelmRelease's `spec.values`) fails the whole list, so the cache of its kind
//! would never sync; and every page would hold every object whole.
//!
//! A [`Shallow`] object is decoded by walking the JSON along [`OBJECT`]: only the fields that the
//! caches read ([`Caches::prepare`](super::Caches::prepare): identity, labels, annotations less the
//! last-applied copy, owner references, the sources, inputs, revisions, service accounts,
//! destinations, the Flux inventory's ids and the Argo CD resources' namespaces, and the
//! managedFields entries' times and annotation names) are built. Every other value is skipped with
//! serde's `IgnoredAny`, which serde_json skips without recursion and without a depth limit (its
//! `ignore_value` keeps its own stack; see the tests). Kept values of free shape are cut at
//! [`MAX_DEPTH`], so the walk recurses at most `MAX_DEPTH` levels whatever the input.
//!
//! [`OBJECT`] names what the core's derivations read (`custody_facts`, `namespace_facts`,
//! `core::custody::custody_info`): a new field read there must be added here (the tests compare
//! what the caches derive from a whole object and from its shallow copy).

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope, Resource};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::LAST_APPLIED;

/// How deep below the object's root a kept value may reach; a list or map deeper than this is cut
/// (kept as `null`). What the caches read lies at most 7 levels down (a managedFields entry's
/// `fieldsV1.f:metadata.f:annotations.<key>`). With the list or watch event around the object, the
/// walk stays far below serde_json's own limit (128).
pub const MAX_DEPTH: usize = 16;

/// Which parts of a value to build.
#[derive(Debug)]
pub enum Keep {
    /// Any value (cut at [`MAX_DEPTH`]).
    Any,
    /// A map of any values, less these keys.
    AnyBut(&'static [&'static str]),
    /// A map: only these fields.
    Fields(&'static [(&'static str, Keep)]),
    /// A list: each item.
    Each(&'static Keep),
}

use Keep::{Any, AnyBut, Each, Fields};

/// A reference to another object (`sourceRef`, `chartRef`, `valuesFrom`, `ownerReferences`).
const REFERENCE: Keep = Fields(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("name", Any),
    ("namespace", Any),
    // An owner reference's: which object made this one (workloads, `core::workload`).
    ("uid", Any),
    ("controller", Any),
]);

/// A Pod template's labels (workloads).
const TEMPLATE_LABELS: Keep = Fields(&[("metadata", Fields(&[("labels", Any)]))]);

/// What the caches read of any watched object (owners, sources, Namespaces).
pub const OBJECT: Keep = Fields(&[
    ("apiVersion", Any),
    ("kind", Any),
    (
        "metadata",
        Fields(&[
            ("name", Any),
            ("namespace", Any),
            ("uid", Any),
            ("resourceVersion", Any),
            ("deletionTimestamp", Any),
            ("labels", Any),
            ("annotations", AnyBut(&[LAST_APPLIED])),
            ("ownerReferences", Each(&REFERENCE)),
            // Which entry wrote the break-glass annotations, and when (a Namespace's window).
            (
                "managedFields",
                Each(&Fields(&[
                    ("time", Any),
                    (
                        "fieldsV1",
                        Fields(&[("f:metadata", Fields(&[("f:annotations", Any)]))]),
                    ),
                ])),
            ),
        ]),
    ),
    (
        "spec",
        Fields(&[
            ("serviceAccountName", Any),
            ("targetNamespace", Any),
            ("project", Any),
            (
                "destination",
                Fields(&[("server", Any), ("namespace", Any), ("name", Any)]),
            ),
            (
                "destinationServiceAccounts",
                Each(&Fields(&[
                    ("server", Any),
                    ("namespace", Any),
                    ("defaultServiceAccount", Any),
                ])),
            ),
            ("sourceRef", REFERENCE),
            ("chartRef", REFERENCE),
            (
                "chart",
                Fields(&[("spec", Fields(&[("sourceRef", REFERENCE)]))]),
            ),
            ("postBuild", Fields(&[("substituteFrom", Each(&REFERENCE))])),
            ("valuesFrom", Each(&REFERENCE)),
            // An ArtifactGenerator's sources (an Application's `sources` are read for nothing).
            ("sources", Each(&REFERENCE)),
            // The GitRepositories a GitRepository includes.
            ("include", Each(&Fields(&[("repository", REFERENCE)]))),
            // Workloads and Services: what they select, the labels of the Pods they make.
            ("selector", Any),
            ("template", TEMPLATE_LABELS),
            (
                "jobTemplate",
                Fields(&[("spec", Fields(&[("template", TEMPLATE_LABELS)]))]),
            ),
            // Ingresses: the hosts they claim (`core::ingress::hosts`), not their paths.
            ("rules", Each(&Fields(&[("host", Any)]))),
            ("tls", Each(&Fields(&[("hosts", Any)]))),
            ("defaultBackend", Fields(&[])),
            ("backend", Fields(&[])),
        ]),
    ),
    (
        "status",
        Fields(&[
            ("lastAppliedRevision", Any),
            ("phase", Any),
            (
                "history",
                Each(&Fields(&[
                    ("chartName", Any),
                    ("chartVersion", Any),
                    ("revision", Any),
                    ("revisions", Any),
                ])),
            ),
            (
                "inventory",
                Fields(&[("entries", Each(&Fields(&[("id", Any)])))]),
            ),
            (
                "operationState",
                Fields(&[(
                    "syncResult",
                    Fields(&[("revision", Any), ("revisions", Any)]),
                )]),
            ),
            (
                "resources",
                Each(&Fields(&[
                    ("namespace", Any),
                    ("group", Any),
                    ("kind", Any),
                ])),
            ),
        ]),
    ),
]);

/// Builds the parts of a value that `keep` names; the value lies `depth` levels below the root.
#[derive(Debug, Clone, Copy)]
pub struct Walk {
    pub keep: &'static Keep,
    pub depth: usize,
}

impl Walk {
    fn below(self, keep: &'static Keep) -> Walk {
        Walk {
            keep,
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = match self.keep {
            Any if self.depth < MAX_DEPTH => &Any,
            Each(item) if self.depth < MAX_DEPTH => *item,
            // Cut, or not a list where one is read: skipped whole.
            _ => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(Value::Null);
            }
        };
        let mut out = Vec::new();
        while let Some(value) = seq.next_element_seed(self.below(item))? {
            out.push(value);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH || matches!(self.keep, Each(_)) {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Value::Null);
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let keep = match self.keep {
                Any => Some(&Any),
                AnyBut(skip) => (!skip.contains(&key.as_str())).then_some(&Any),
                Fields(fields) => fields.iter().find(|(k, _)| *k == key).map(|(_, k)| k),
                Each(_) => None,
            };
            match keep {
                Some(keep) => {
                    let value = map.next_value_seed(self.below(keep))?;
                    out.insert(key, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A watched object as the caches read it: the parts [`OBJECT`] names, whatever the size or depth
/// of the rest. Decoding it allocates only what is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Shallow {
    /// Name, namespace and resourceVersion (what kube's watcher reads).
    metadata: ObjectMeta,
    value: Value,
}

impl Shallow {
    /// The kept parts, as JSON (what [`Caches::prepare`](super::Caches::prepare) takes).
    pub fn into_value(self) -> Value {
        self.value
    }

    pub fn value(&self) -> &Value {
        &self.value
    }
}

impl<'de> Deserialize<'de> for Shallow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shallow, D::Error> {
        let walk = Walk {
            keep: &OBJECT,
            depth: 0,
        };
        let value = walk.deserialize(deserializer)?;
        if !value.is_object() {
            return Err(de::Error::invalid_type(
                de::Unexpected::Other("a value that is not a map"),
                &"a Kubernetes object",
            ));
        }
        let meta = |key: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let metadata = ObjectMeta {
            name: meta("name"),
            namespace: meta("namespace"),
            resource_version: meta("resourceVersion"),
            ..ObjectMeta::default()
        };
        Ok(Shallow { metadata, value })
    }
}

impl Resource for Shallow {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use kube::api::DynamicObject;
    use kube::core::{ObjectList, WatchEvent};
    use serde_json::json;

    /// A value `depth` levels deep: lists, or maps (`{"a": ...}`), around `1`.
    fn nested(depth: usize, maps: bool) -> String {
        if maps {
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
        } else {
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        }
    }

    /// A HelmRelease as the API server sends it, `values` in its spec and `revisions` in its
    /// newest history entry.
    fn helm_release(name: &str, values: &str, revisions: &str) -> String {
        format!(
            r#"{{"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease",
            "metadata":{{"name":"{name}","namespace":"apps","resourceVersion":"42","uid":"u-1",
                "labels":{{"kustomize.toolkit.fluxcd.io/name":"flux-system"}},
                "annotations":{{"{LAST_APPLIED}":"{{\"spec\":{{}}}}","team":"web"}},
                "managedFields":[{{"manager":"kustomize-controller","operation":"Apply",
                    "time":"2026-12-01T12:00:00Z","fieldsV1":{{"f:spec":{{"f:values":{{}}}},
                    "f:metadata":{{"f:annotations":{{"f:team":{{}}}}}}}}}}]}},
            "spec":{{"interval":"10m","values":{values},
                "chart":{{"spec":{{"chart":"web","version":"1.x","sourceRef":{{"kind":"HelmRepository","name":"charts"}}}}}},
                "valuesFrom":[{{"kind":"ConfigMap","name":"web-values","valuesKey":"v.yaml"}}]}},
            "status":{{"history":[{{"chartName":"web","chartVersion":"1.2.3","digest":"sha256:x",
                "revisions":{revisions}}}],"conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
        )
    }

    /// What is kept of [`helm_release`], whatever its values.
    fn kept(name: &str, revisions: Value) -> Value {
        json!({"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmRelease",
            "metadata":{"name":name,"namespace":"apps","resourceVersion":"42","uid":"u-1",
                "labels":{"kustomize.toolkit.fluxcd.io/name":"flux-system"},
                "annotations":{"team":"web"},
                "managedFields":[{"time":"2026-12-01T12:00:00Z",
                    "fieldsV1":{"f:metadata":{"f:annotations":{"f:team":{}}}}}]},
            "spec":{"chart":{"spec":{"sourceRef":{"kind":"HelmRepository","name":"charts"}}},
                "valuesFrom":[{"kind":"ConfigMap","name":"web-values"}]},
            "status":{"history":[{"chartName":"web","chartVersion":"1.2.3","revisions":revisions}]}})
    }

    fn list(items: &[String]) -> String {
        format!(
            r#"{{"apiVersion":"helm.toolkit.fluxcd.io/v2","kind":"HelmReleaseList","metadata":{{"resourceVersion":"77"}},"items":[{}]}}"#,
            items.join(",")
        )
    }

    /// Values of any depth neither fail a list or a watch event nor reach the cache; serde_json
    /// alone (kube's `DynamicObject`) refuses the deep ones, failing the whole list.
    #[test]
    fn lists_and_watch_events_decode_whatever_the_depth_of_values() {
        for depth in [3, 200, 5_000, 100_000] {
            for maps in [false, true] {
                let deep = helm_release("deep", &nested(depth, maps), r#"["main@sha1:1"]"#);
                let flat = helm_release("flat", r#"{"replicas":2}"#, r#"["main@sha1:1"]"#);
                let page = list(&[deep.clone(), flat]);
                let decoded: ObjectList<Shallow> = serde_json::from_str(&page).unwrap();
                let values: Vec<&Value> = decoded.items.iter().map(Shallow::value).collect();
                let revisions = json!(["main@sha1:1"]);
                assert_eq!(
                    values,
                    [
                        &kept("deep", revisions.clone()),
                        &kept("flat", revisions.clone())
                    ],
                    "{depth} {maps}"
                );
                assert_eq!(decoded.items[0].resource_version().as_deref(), Some("42"));
                assert_eq!(decoded.items[0].meta().name.as_deref(), Some("deep"));
                assert_eq!(decoded.items[0].meta().namespace.as_deref(), Some("apps"));

                let event = format!(r#"{{"type":"MODIFIED","object":{deep}}}"#);
                match serde_json::from_str::<WatchEvent<Shallow>>(&event).unwrap() {
                    WatchEvent::Modified(o) => {
                        assert_eq!(o.into_value(), kept("deep", revisions), "{depth}")
                    }
                    other => panic!("{other:?}"),
                }

                let whole = serde_json::from_str::<ObjectList<DynamicObject>>(&page);
                assert_eq!(whole.is_ok(), depth == 3, "{depth} {maps}");
            }
        }
    }

    /// serde_json skips a value without recursing (`IgnoredAny`: its `ignore_value` keeps its own
    /// stack), and kept values are cut at MAX_DEPTH: a million levels, skipped or cut, decode on a
    /// 256 KiB stack (recursing once per level would need hundreds of MiB and abort the tests).
    #[test]
    fn a_million_levels_decode_on_a_small_stack() {
        let decoded = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let deep = nested(1_000_000, false);
                let object = helm_release("deep", &deep, &deep);
                let page = list(std::slice::from_ref(&object));
                let from_list = serde_json::from_str::<ObjectList<Shallow>>(&page).map(|l| {
                    l.items
                        .into_iter()
                        .map(Shallow::into_value)
                        .collect::<Vec<_>>()
                });
                let event = format!(r#"{{"type":"ADDED","object":{object}}}"#);
                let from_event = serde_json::from_str::<WatchEvent<Shallow>>(&event);
                (from_list.ok(), from_event.ok().map(|e| format!("{e:?}")))
            })
            .unwrap()
            .join()
            .unwrap();
        // `revisions` lies 4 levels down: lists on levels 4 to 15 are kept, the 16th is cut.
        let cut: Value = serde_json::from_str(&format!(
            "{}null{}",
            "[".repeat(MAX_DEPTH - 4),
            "]".repeat(MAX_DEPTH - 4)
        ))
        .unwrap();
        assert_eq!(decoded.0, Some(vec![kept("deep", cut)]));
        assert_eq!(decoded.1.as_deref(), Some("Added event"));
    }

    /// A field that has another shape than the one read is skipped, not an error; a value that is
    /// no object is refused (the API server sends none).
    #[test]
    fn unexpected_shapes_are_skipped() {
        let text = r#"{"kind":"Kustomization","metadata":{"name":"a","labels":{"x":"y"},"ownerReferences":{"kind":"x"},"managedFields":"none"},
            "spec":{"sourceRef":["GitRepository"],"destination":7,"postBuild":{"substituteFrom":{"kind":"ConfigMap"}}},
            "status":[1,2],"extra":{"deep":[[[]]]}}"#;
        let shallow: Shallow = serde_json::from_str(text).unwrap();
        assert_eq!(
            shallow.into_value(),
            json!({"kind":"Kustomization","metadata":{"name":"a","labels":{"x":"y"},
                "ownerReferences":null,"managedFields":"none"},
                "spec":{"sourceRef":null,"destination":7,"postBuild":{"substituteFrom":null}},
                "status":null})
        );
        assert!(serde_json::from_str::<Shallow>("[1]").is_err());
        assert!(serde_json::from_str::<Shallow>(r#"{"metadata":{"#).is_err());
    }
}
