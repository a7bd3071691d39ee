//! The HTTP(S) listener for operators: `/metrics` (Prometheus text), `/healthz` (alive),
//! `/readyz` (every informer synced and every sink delivering) and, with
//! `--serve-cache`, `/cache/{resource}`; with `--metrics-auth kubernetes`, `/metrics` and
//! `/cache` need a bearer token the API server accepts and a permission it grants.
//!
//! - `serve`: the accept loop and each connection's bounds (timeouts, slots, TLS);
//! - `routes`: what each path answers, and the refusals (401, 403, 503);
//! - `auth`: TokenReview and SubjectAccessReview, with `auth_cache`'s bounded cache;
//! - `tls`: the certificate from files or generated.

mod auth;
mod auth_cache;
mod routes;
mod serve;
mod tls;

pub(crate) use auth::Authorizer;
pub(crate) use serve::{EndpointsConfig, Handlers, Readiness, bind, serve_with};
pub(crate) use tls::{TlsSource, acceptor};
