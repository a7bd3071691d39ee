//! Publishes notifications through a sink and prints the confirmed rate.
//!
//! `cargo run --release --example bench -- URI [COUNT] [BATCH] [-X key=value]...`,
//! e.g. against the brokers of `tests/brokers.sh`:
//! `bench kafka://$KUBEBRIDGE_TEST_KAFKA_BROKERS/bench 100000 500`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use kubebridge_sinks::{EventType, Notification, Origin, ResourceId, SinkOptions, sink_from_uri};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .ok_or("usage: bench URI [COUNT] [BATCH] [-X key=value]...")?;
    let count: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500);
    let mut options = SinkOptions::default();
    while let Some(flag) = args.next() {
        let kv = args.next().ok_or("-X needs key=value")?;
        let (k, v) = kv.split_once('=').ok_or("-X needs key=value")?;
        if flag == "-X" {
            options.kafka_properties.push((k.into(), v.into()));
        }
    }
    let mut sink = sink_from_uri(&uri, &options).await?;
    // A realistic object: a ~2 KB pod-like JSON document.
    let filler = "x".repeat(1800);
    let resource = Arc::new(ResourceId {
        group: String::new(),
        version: "v1".into(),
        resource: "pods".into(),
        kind: "Pod".into(),
    });
    let notes: Vec<Arc<Notification>> = (0..count)
        .map(|i| {
            let object = format!(
                r#"{{"metadata":{{"name":"pod-{}","namespace":"ns-{}","resourceVersion":"{i}"}},"spec":{{"f":"{filler}"}}}}"#,
                i % 1000,
                i % 10
            );
            Ok(Arc::new(Notification {
                event_type: EventType::Modified,
                origin: Origin::Watch,
                time: SystemTime::now(),
                cluster: Some("bench".into()),
                resource: resource.clone(),
                namespace: Some(format!("ns-{}", i % 10)),
                name: format!("pod-{}", i % 1000),
                uid: format!("uid-{}", i % 1000),
                resource_version: i.to_string(),
                object: Arc::from(RawValue::from_string(object)?),
                old_object: None,
                snapshot: None,
                tombstone: false,
                old_resource_version: None,
                patch: None,
            }))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    let start = Instant::now();
    for chunk in notes.chunks(batch) {
        sink.publish(chunk).await?;
    }
    sink.close().await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {count} notifications in batches of {batch}: {secs:.2} s, {:.0}/s",
        sink.kind(),
        count as f64 / secs
    );
    Ok(())
}
