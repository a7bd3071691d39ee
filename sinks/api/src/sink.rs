//! The `Sink` trait and how a sink reports what it could and could not deliver.

use std::sync::Arc;

use async_trait::async_trait;

use crate::Notification;

/// Any error a sink wraps as the cause of a [`SinkError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a notification was not delivered, classified once, where the sink knows best.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again later: the destination is down, slow or overloaded.
    #[error("{message}")]
    Retryable {
        /// What failed, naming the destination.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Will fail the same way however often it is retried (too large, not authorized).
    /// kubebridge counts and logs it with the object named, and moves on.
    #[error("{message}")]
    Permanent {
        /// What failed, naming the destination.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The destination went away for good and nothing more can be delivered, as when
    /// the reader of a pipe exits (`kubebridge watch pods | head`). kubebridge stops
    /// quietly.
    #[error("the destination was closed")]
    Closed,
}

impl SinkError {
    /// A retryable error with a message and a cause.
    pub fn retryable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        SinkError::Retryable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A permanent error with a message and a cause.
    pub fn permanent(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        SinkError::Permanent {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Whether trying again could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable { .. })
    }
}

/// A batch that was delivered only in part.
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {delivered} delivered)")]
pub struct PublishError {
    /// How many notifications at the start of the batch the destination confirmed.
    pub delivered: usize,
    /// Why the notification at index `delivered` was not.
    #[source]
    pub error: SinkError,
}

impl PublishError {
    /// A failure before anything in the batch was confirmed.
    pub fn none_delivered(error: SinkError) -> Self {
        PublishError {
            delivered: 0,
            error,
        }
    }
}

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
