//! Response representations negotiated from the Accept header: full objects, Table, PartialObjectMetadata.

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::store::StoredObject;
use crate::table;

/// How objects are rendered in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Representation {
    #[default]
    Full,
    Table,
    Metadata,
}

/// Picks the first representation in the Accept list that this server supports, as the apiserver does.
pub(crate) fn negotiate(accept: &str) -> Representation {
    for entry in accept.split(',') {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        let media = params.first().copied().unwrap_or_default();
        if !matches!(media, "application/json" | "*/*" | "application/*" | "") {
            continue;
        }
        let as_param = params.iter().find_map(|p| p.strip_prefix("as="));
        match as_param {
            None => return Representation::Full,
            Some("Table") => return Representation::Table,
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList") => {
                return Representation::Metadata;
            }
            Some(_) => continue,
        }
    }
    Representation::Full
}

/// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}`.
pub(crate) fn partial_metadata(metadata: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
}

/// One object (a GET response or a watch event object) in the requested representation.
pub(crate) fn render_object(
    rt: &ResourceType,
    obj: &StoredObject,
    repr: Representation,
) -> Vec<u8> {
    match repr {
        Representation::Full => obj.json_with_type(&rt.kind, &rt.api_version()),
        Representation::Table => {
            let row = table::row(rt, &obj.to_value());
            let t = table::table(
                rt,
                vec![row],
                json!({"resourceVersion": obj.resource_version.to_string()}),
            );
            serde_json::to_vec(&t).expect("JSON values serialize")
        }
        Representation::Metadata => {
            let v = obj.to_value();
            serde_json::to_vec(&partial_metadata(&v["metadata"])).expect("JSON values serialize")
        }
    }
}
