//! What kubebridge's tests share, one concept per module.
//!
//! # Layout
//!
//! - [`harness`]: the simulated API server and the real `kubebridge` binary as a child
//!   process, whose every notification is read through [`envelope`];
//! - [`envelope`]: the JSON Schema check of a notification (sinks/envelope.schema.json);
//! - [`brokers`]: where the shared brokers are, private broker processes for outages;
//! - [`publish`]: notifications to hand a sink directly, and kubebridge's retry loop;
//! - [`consume`]: reading messages back from Kafka and JetStream;
//! - [`http`]: one raw HTTP/1.1 client, watch streams included, over TCP or [`tls`];
//! - [`tls`]: the client side of TLS: trust given certificates, or record any;
//! - [`kubectl`]: the real kubectl, run against a kubeconfig with a time limit;
//! - [`checker`]: per object, the last state a sink delivered against the final state;
//! - [`fault_run`]: the randomized fault run (churn, faults, kubebridge, sinks, checker).
//!
//! Tests panic on what they did not expect, so the helpers here do too.
#![allow(clippy::unwrap_used)]

pub mod brokers;
pub mod checker;
pub mod consume;
pub mod envelope;
pub mod fault_run;
pub mod harness;
pub mod http;
pub mod kubectl;
pub mod publish;
pub mod tls;
