//! kubebridge: Kubernetes shared informers whose every add, update, delete and resync
//! replay is published to sinks (stdout JSON lines, Kafka, NATS core and JetStream)
//! that a consumer can trust.
//!
//! # Layout
//!
//! Dependencies point one way: `main -> cmd -> {config, plan, kube, informer, pipeline,
//! endpoints, leader} -> {metrics -> queue} -> kubebridge-sinks`. `informer` and `pipeline`
//! never import each other (the pipeline borrows only the informer's
//! [`informer::backoff`]); [`cmd::watch`](mod@cmd::watch) joins them by handing each
//! informer the sinks' queue senders.
//!
//! - [`config`]: the model (routes: resources -> sinks, with their options), the command
//!   line ([`config::cli`], clap), the `--config` file ([`config::file`]) and the merge:
//!   the command line is one more route, a flag wins over the file field by field.
//! - [`plan`]: every route resolved once, and which routes share each informer; what
//!   `check-config` prints is what `watch` runs.
//! - [`kube`]: cluster access as kubectl finds it ([`kube::cluster`]), raw GET requests
//!   with `Status` errors and Retry-After ([`kube::api`]), and kubectl-style names
//!   resolved through discovery ([`kube::discovery`], or offline [`kube::builtin`]).
//! - [`cmd`]: one file per subcommand; [`cmd::watch`](mod@cmd::watch) runs in named
//!   phases: plan -> sinks -> endpoints -> leadership -> informers -> supervise.
//! - [`informer`]: reflector (list + watch) -> bounded delta channel -> processor (store,
//!   diff, resync) -> subscribers; [`informer::shared`] makes one per (resource, scope,
//!   selectors).
//! - [`queue`]: the bounded queue between informers and a sink, with its overflow policy.
//! - [`pipeline`]: one queue and task per sink; confirmation, retries.
//! - [`metrics`]: every metric, named once; [`endpoints`]: `/metrics`, `/healthz`, `/readyz`,
//!   and, with `--serve-cache`, the [`lister`] over the informers' caches.
//! - [`leader`]: leader election on a Lease (`--leader-elect`).
//! - `kubebridge_sim` (tests/sim, feature `sim`): the simulated API server that tests,
//!   benchmarks and the demo run against; `kubebridge_apimachinery` (src/apimachinery):
//!   selectors, `Status` bodies and name syntax, shared with it.
//!
//! ## Choices that differ from client-go's shape, and why
//!
//! - **No separate DeltaFIFO type.** client-go's DeltaFIFO coalesces deltas per key
//!   and lets several workers pop; kubebridge wants every change, in order, for one
//!   processor per informer. A bounded `mpsc` channel of [`informer::Delta`]s gives the
//!   same order and, being bounded, turns a slow sink into backpressure on the watch.
//! - **Objects are raw JSON.** The store keeps `Arc<RawValue>` per object plus its
//!   identity fields; a notification shares the same `Arc`, so publishing copies nothing.
//!   kube's `watcher` (which decodes trees) is therefore not used: [`kube::api`] speaks the
//!   list/watch protocol directly on kube's `Client`.
//! - **List items get their `kind`/`apiVersion` back.** The API server omits them from
//!   items of typed lists; [`informer::object`] adds them so every published object is
//!   self-describing, whatever its origin.
//! - **The queue is its own module.** The bounded queues belong to the delivery side,
//!   but the informer's processor must push into them and `informer` and `pipeline` do
//!   not import each other; so [`queue`] sits below both. It is hand-written because
//!   `drop-oldest` needs eviction from the sending side, which tokio's `mpsc` lacks.
//! - **Sinks are built from URIs in the sinks crate** ([`kubebridge_sinks::sink_from_uri`]),
//!   so an embedder gets the same parsing and errors as the CLI.
//! - **Metrics are a value** ([`metrics`]): each `watch` makes its own registry and hands
//!   it to the sinks, the informers and the endpoints, so an embedder that calls `watch`
//!   twice never sees the first run's sinks in `/readyz`.
//! - **`check-config` plans without a cluster.** It resolves names through a built-in
//!   table of Kubernetes' resources ([`kube::builtin`]) with the rules discovery uses,
//!   so the [`plan`] it prints shares informers exactly as `watch` will; only custom
//!   resources wait for discovery at start-up.
//! - **Snapshots are framed.** The initial list and each resync replay carry a
//!   `snapshot` field (`id`, `index`, `total`) so a consumer can mark and sweep; see
//!   [`kubebridge_sinks::Snapshot`].

pub mod cmd;
pub mod config;
pub(crate) mod endpoints;
pub(crate) mod informer;
pub mod kube;
pub(crate) mod leader;
pub(crate) mod lister;
pub(crate) mod metrics;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod queue;
