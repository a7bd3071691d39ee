//! kubebridge: Kubernetes shared informers whose every add, update, delete and resync
//! replay is published to sinks (stdout JSON lines, Kafka, NATS core and JetStream)
//! that a consumer can trust.
//!
//! # Layout
//!
//! Dependencies point one way: `main -> cmd -> {config, plan, kube, informer, pipeline,
//! endpoints, leader} -> checkpoint -> filter -> {kube, pointer, metrics -> {queue,
//! confirm}} -> kubebridge-sinks -> kubebridge-sink-api`.
//! `informer` and `pipeline` never import each other (the pipeline borrows only the
//! informer's `backoff`); [`cmd::watch`](mod@cmd::watch) joins them by handing each
//! informer the sinks' queue senders. Only [`cmd`], [`config`] and [`kube`] are public:
//! they are what an embedder calls (`cmd::watch` with its own routes and sinks), with
//! [`filter`] for a route's filter settings and [`checkpoint`] for its store URIs and
//! format; `cache_bench` is public (hidden) only so the cache benchmark can reach the
//! store; the rest is `pub(crate)`.
//!
//! - [`config`]: the model (routes: resources -> sinks, with their options), the command
//!   line ([`config::cli`], clap with typed, bounded value parsers), the `--config` file
//!   ([`config::file`], `${VAR}` substituted in parsed string values) and the merge: the
//!   command line is one more route, and a flag wins over the file field by field.
//! - `plan`: every route resolved once, and which routes share each informer (decided on
//!   resolved resources, so `pods` and `po` share one); what `check-config` prints is
//!   what `watch` runs.
//! - [`kube`]: cluster access as kubectl finds it ([`kube::cluster`]), raw LIST/WATCH
//!   requests with `Status` errors and Retry-After ([`kube::api`]), and kubectl-style names
//!   resolved through discovery, read once per process ([`kube::discovery`], or offline
//!   [`kube::builtin`]).
//! - [`cmd`]: one file per subcommand; [`cmd::watch`](mod@cmd::watch) runs in named
//!   phases: plan -> sinks -> endpoints -> leadership -> informers -> supervise.
//! - `informer`: the reflector (an explicit state machine: list, watch-list, watch,
//!   backoff) -> `Delta`s on a bounded channel -> the processor (diff against the store,
//!   resync, fan-out) -> subscribers; `informer::shared` makes one per (resource, scope,
//!   selectors).
//! - `queue`: the bounded queue between informers and a sink, with its overflow policy;
//!   `confirm`: what it carries (a notification and, with `--checkpoint`, a receipt the
//!   sink task settles when the destination confirms).
//! - [`checkpoint`]: ack-coupled checkpoints. `tracker` (the point every sink of an
//!   informer has settled, and the index of objects known there), `format` (versioned,
//!   zstd), `store` with `file` and `configmap`, `identity` (cluster and informer), `run`
//!   (resume at start, write at a bounded rate). The processor records and the fan-out
//!   issues receipts; the sink task settles them; the informer's diff turns a resumed
//!   index into `relist` notifications; `cmd::watch` opens the store and starts the
//!   writer.
//! - [`filter`]: each route's filters and transforms (event types, a CEL predicate,
//!   noise suppression with ignored fields, projection, JSON Patch diffs), compiled once
//!   per route and run by the informer's fan-out, once per notification and route,
//!   before anything is queued. It depends on `metrics` and `pointer` only; `config`
//!   holds its [`filter::FilterConfig`] and validates through it.
//! - `pointer`: the one JSON pointer (RFC 6901 with `*`, bounded depth) that `filter`'s
//!   `ignoreFields` and `fields` and the informer's `redact` paths are written in. It
//!   depends on nothing, so both can use it; what each use adds stays with the use (a
//!   `redact` path may not reach the object's identity: `informer::redact_path`; a
//!   route's pointers walked as one tree: `filter::path_set`).
//! - `pipeline`: one queue and task per sink; confirmation, retries.
//! - `log_throttle`: at most one log line per period, with a count of the rest, for
//!   failures that repeat fast (accepts, reviews, a route's filter errors).
//! - `metrics`: every metric, named once, owned by one `watch` run; `endpoints`:
//!   `/metrics`, `/healthz`, `/readyz`, and, with `--serve-cache`, the `lister` over the
//!   informers' caches; with `--metrics-auth kubernetes`, `/metrics` and `/cache` behind
//!   a TokenReview and a SubjectAccessReview (`endpoints/auth.rs`, cached), over HTTPS
//!   (`endpoints/tls.rs`); `leader`: leader election on a `coordination.k8s.io` Lease.
//!
//! Beside this crate: `kubebridge-sink-api` (sinks/api: the envelope and the `Sink`
//! trait, nothing else), `kubebridge-sinks` (sinks/: stdout, and Kafka and NATS behind the
//! `kafka` and `nats` features), `kubebridge-apimachinery` (src/apimachinery: selectors,
//! `Status` bodies, DNS-1123 names and the simulator's kind/apiVersion splice, shared
//! with the simulator), `kubebridge-sim` (tests/sim: the simulated API server, behind the `sim`
//! feature for `demo` and `sim`) and `kubebridge-testkit` (tests/kit). README's "How it is
//! built" draws the flow of one change with the file of each step.
//!
//! ## Where the code departs from the original design, and why
//!
//! - **No separate DeltaFIFO type.** client-go's DeltaFIFO coalesces deltas per key
//!   and lets several workers pop; kubebridge wants every change, in order, for one
//!   processor per informer. A bounded `mpsc` channel of `Delta`s gives the same order
//!   and, being bounded, turns a slow sink into backpressure on the watch.
//! - **Objects are raw JSON.** The store keeps `Arc<RawValue>` per object plus its
//!   identity fields; a notification shares the same `Arc`, so publishing copies nothing.
//!   kube's `watcher` (which decodes trees) is therefore not used: [`kube::api`] speaks the
//!   list/watch protocol directly on kube's `Client`, and the reflector's state machine
//!   follows kube-runtime's watcher (a state enum and one step function).
//! - **The cache may hold objects compressed** (`--cache-compression zstd`, departing
//!   from DESIGN.md's "raw JSON bytes" per entry): `informer::store` keeps the identity
//!   fields plain and each object's JSON zstd-compressed with a dictionary trained once
//!   per informer on its first 1 000 objects (`informer::packer`); a notification still
//!   carries the `Arc` its object was decoded into, and only the old state (`oldObject`,
//!   a relist's last state, resync, `/cache`) is decompressed. An entry that cannot be
//!   read back is counted and treated as unknown old state (MODIFIED with
//!   `oldResourceVersion`, DELETED tombstone, left out of a resync, `/cache` 500).
//! - **Redaction and managedFields stripping happen at decode.** `RawObject::decode`
//!   runs each informer's transform (`informer::transform`: Secrets' values and the
//!   paths of `redact` rules replaced by an HMAC-SHA256; `metadata.managedFields` is
//!   left out by the decode itself) before the object reaches the store, so the cache, `/cache`, every sink,
//!   `oldObject`, logs and anything computed later only ever hold transformed bytes, and
//!   one cache serves every route. The transform splices byte ranges into the raw text
//!   (found through borrowed `RawValue`s) rather than re-serializing a tree, so objects
//!   keep their bytes and member order, and an object needing no change is not touched.
//!   `redact` rules are resolved through discovery with the routes (`cmd::transforms`).
//! - **List items get their `kind`/`apiVersion` back.** The API server omits them from
//!   items of typed lists; the informer adds them so every published object is
//!   self-describing, whatever its origin. A LIST page is decoded in one scan
//!   (`informer::list_page`: identity, members and `managedFields` read as the page is
//!   parsed, the object written from the borrowed member values, `kind`/`apiVersion`
//!   first), and the reflector asks for the next page before decoding the current one
//!   (one page ahead, on a task of its own; the decode runs on tokio's blocking pool,
//!   since a task spawned by a busy worker is not taken by another one), so the
//!   download and the decode overlap.
//!   A watch event's object goes through the same decoder (`type` is read first, then
//!   the object), as does `RawObject::decode`: one decoder for every object.
//! - **The queue is its own module, not part of `pipeline`.** The informer's processor
//!   must push into the queues and `informer` and `pipeline` do not import each other, so
//!   `queue` sits below both. It is hand-written because `drop-oldest` needs eviction from
//!   the sending side, which tokio's `mpsc` lacks.
//! - **A shared apimachinery crate.** The simulator is its own crate, and it needs the
//!   same selector parsing, `Status` bodies and name checks as the client; one small crate
//!   below both keeps one implementation of each without the simulator depending on
//!   kubebridge (which depends on it, optionally, for `demo`).
//! - **Metrics are a value.** Each `watch` makes its own registry and hands it to the
//!   sinks, the informers and the endpoints, so an embedder that calls `watch` twice never
//!   sees the first run's sinks in `/readyz`; values read from the queues (depth, oldest
//!   age, evictions) come from a collector at scrape time.
//! - **`check-config` plans without a cluster.** It resolves names through a built-in
//!   table of Kubernetes' resources ([`kube::builtin`]) with the rules discovery uses,
//!   so the plan it prints shares informers exactly as `watch` will; only custom
//!   resources wait for discovery at start-up.
//! - **No `ops/` directory.** The design put metrics, health, endpoints, lister and
//!   leader election under `ops/`; they are top-level modules here, and the endpoints
//!   are one directory (`endpoints/`: listener, routes, auth, TLS) because authentication
//!   and TLS made one file too many concepts. `/cache` authorization asks for `list` on
//!   the resource (what the caller could read from the API server itself), not for a
//!   non-resource URL as kube-rbac-proxy would, so RBAC a cluster already has decides.
//! - **Confirmation flows back through receipts, not through `pipeline`.** DESIGN.md
//!   puts confirmations in `delivery/`; a checkpoint must know, per informer, what every
//!   sink settled, and a sink's queue is shared by several informers. So each queued
//!   item carries a receipt from its informer's per-sink ledger (`confirm`, beside the
//!   queue, which both `informer` and `pipeline` already use), and the sink task settles
//!   it; `informer` and `pipeline` still never import each other.
//! - **Checkpoints live in their own module, not `informer/`.** They span the informer
//!   (records), the pipeline (settles), the cluster (stores) and the metrics; the
//!   informer only records changes and diffs a resumed index.
//! - **Filters run per route, on a shared informer and a whole-object cache.** A route's
//!   filters (`filter`) run in the fan-out between the processor and the route's queues,
//!   not in the informer: informers stay shared by (resource, scope, selectors) whatever
//!   routes filter, the cache (and `/cache`) keeps whole objects, and projection is
//!   applied at publish time, per route. A projected cache would be smaller, but the
//!   informer could then be shared only by routes that project alike, and CEL filters
//!   could not see fields outside the projection. A change outside a route's projected
//!   fields is noise for that route (its projected old and new objects are compared).
//!   A route without transforms passes the same `Arc<Notification>` on; the noise check
//!   compares raw JSON, splitting only the objects on the way to an ignored path, with a
//!   scanner of its own (`filter::scan`) rather than serde_json: every object was
//!   validated once when it was decoded, and serde_json cannot split text without
//!   validating every byte again (that was 18% of a change's instructions).
//! - **Snapshots are framed.** The initial list and each resync replay carry a
//!   `snapshot` field (`id`, `index`, `total`) so a consumer can mark and sweep; see
//!   [`kubebridge_sinks::Snapshot`].

pub mod checkpoint;
pub mod cmd;
pub mod config;
pub(crate) mod confirm;
pub(crate) mod endpoints;
pub mod filter;
pub(crate) mod informer;
/// The informer cache, for its benchmark (tests/bench/cache.rs); not a stable API.
#[doc(hidden)]
pub mod cache_bench {
    pub use crate::informer::transform::ObjectTransform;
    pub use crate::informer::{CacheCompression, RawObject, Store};
}
pub mod kube;
pub(crate) mod leader;
pub(crate) mod lister;
pub(crate) mod log_throttle;
pub(crate) mod metrics;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod pointer;
pub(crate) mod queue;
