//! How a sink reports a failure: [`SinkError`] (classified) and [`PublishError`].
//!
//! A [`SinkError`] is retryable, permanent or closed; a [`PublishError`] is a batch
//! delivered only in part.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let io = || std::io::Error::other("broker said no");
        assert!(SinkError::retryable("down", io()).is_retryable());
        assert!(!SinkError::permanent("too large", io()).is_retryable());
        assert!(!SinkError::Closed.is_retryable());
        let e = PublishError {
            delivered: 3,
            error: SinkError::retryable("kafka sink k://h:1/t: timed out", io()),
        };
        assert_eq!(
            e.to_string(),
            "kafka sink k://h:1/t: timed out (after 3 delivered)"
        );
        let cause = std::error::Error::source(&e.error).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("broker said no"));
        assert_eq!(PublishError::none_delivered(SinkError::Closed).delivered, 0);
    }
}
