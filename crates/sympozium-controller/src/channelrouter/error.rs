//! Why the channel router could not handle a message.

/// A transient failure: the message is redelivered (or, for a finished run, answered on
/// its next change).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A Kubernetes call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Publishing on the bus failed.
    #[error(transparent)]
    Bus(#[from] sympozium_bus::Error),
    /// Publishing a finished run's reply failed.
    #[error("publishing the reply of {run}: {source}")]
    PublishReply {
        /// The run.
        run: String,
        /// Why.
        #[source]
        source: sympozium_bus::Error,
    },
    /// Looking up the instance a message is for failed.
    #[error("looking up instance {instance}: {source}")]
    InstanceLookup {
        /// `<namespace>/<name>`, or the name when the message names no namespace.
        instance: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Creating the run for a message failed.
    #[error("creating run {namespace}/{name}: {source}")]
    CreateRun {
        /// The run's namespace.
        namespace: String,
        /// The run.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// Why an inbound message is dropped for good: no retry can make it acceptable.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No instance of that name (in that namespace).
    #[error("instance {instance} not found")]
    InstanceNotFound {
        /// `<namespace>/<name>`, or the name when the message names no namespace.
        instance: String,
    },
    /// Several namespaces hold an instance of that name, and the message names none.
    #[error(
        "instance name {name} is ambiguous ({count} namespaces have one); the message must name its namespace"
    )]
    AmbiguousInstance {
        /// The instance's name.
        name: String,
        /// How many namespaces hold one.
        count: usize,
    },
    /// The instance configures no channel of the message's type.
    #[error("instance {namespace}/{name} has no {channel:?} channel; the message is refused")]
    NoSuchChannel {
        /// The instance's namespace.
        namespace: String,
        /// The instance.
        name: String,
        /// The message's channel type.
        channel: String,
    },
    /// The message arrived on another instance's subject than the one it names.
    #[error("message on {subject_identity}'s subject claims instance {namespace}/{name}; refused")]
    WrongSubject {
        /// The channel identity the subject belongs to.
        subject_identity: String,
        /// The claimed instance's namespace.
        namespace: String,
        /// The claimed instance.
        name: String,
    },
    /// On an authenticated bus, the message is not signed by the instance's channel pods.
    #[error(
        "message for instance {namespace}/{name} is not signed by that instance's channel pods (proven origin: {origin}); refused"
    )]
    NotSigned {
        /// The instance's namespace.
        namespace: String,
        /// The instance.
        name: String,
        /// The origin the bus proved, `none` when it proved none.
        origin: String,
    },
}
