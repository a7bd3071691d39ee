//! The [`Sink`] trait: a destination for notifications.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Notification, PublishError, SinkError};

/// A destination for notifications.
///
/// kubebridge gives each sink its own task and bounded queue, and calls `publish` with
/// batches in order. Ordering per object is preserved as long as the sink publishes a
/// batch in order.
#[async_trait]
pub trait Sink: Send + 'static {
    /// A short, fixed name for logs and metric labels: `stdout`, `kafka`, `nats`.
    fn kind(&self) -> &'static str;

    /// Publishes `batch` and returns once the destination has confirmed every
    /// notification in it (a delivery report, an ack, a completed write).
    ///
    /// On failure, [`PublishError::delivered`] says how many at the start of the batch
    /// were confirmed; kubebridge retries from there (retryable errors) or drops the
    /// failing notification, counted and logged (permanent errors). The sink may have
    /// delivered some of the rest too: delivery is at least once.
    async fn publish(&mut self, batch: &[Arc<Notification>]) -> Result<(), PublishError>;

    /// Delivers anything still buffered. Called once before kubebridge exits.
    async fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
