//! [`ProducerReplaced`]: the cause the Kafka sink gives when it had to start over with a
//! new producer. Always compiled, so the pipeline can recognise it (and count it)
//! whether or not the `kafka` feature is on.

/// The cause of a retryable [`SinkError`](crate::SinkError) from the Kafka sink when
/// librdkafka's producer could not go on (a fatal error, or a broker that forgot this
/// producer's id and sequence numbers, as a Kafka restarted without its data does) and
/// the sink replaced it with a new one. The notifications the old producer had not
/// confirmed are reported as not delivered, so the caller's retry re-sends them
/// through the new producer: some may reach the topic twice, none is lost.
///
/// Find it with `std::error::Error::source(&error)` and `downcast_ref`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; replaced the producer, {unconfirmed} unconfirmed will be re-sent")]
pub struct ProducerReplaced {
    /// What librdkafka said.
    pub reason: String,
    /// How many notifications of the batch the old producer had not confirmed.
    pub unconfirmed: usize,
}
