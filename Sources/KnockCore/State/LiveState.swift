/// The dynamic state of a live knockc table, as read back from the kernel: the catalog that
/// names its stage tags, every knock in progress, every grant and every ban, with the time
/// each has left.
public struct LiveState: Equatable, Sendable {
    public var catalog: TableCatalog
    public var progress: [SequenceProgress]
    public var grants: [Grant]
    public var bans: [Ban]

    public init(catalog: TableCatalog = TableCatalog(), progress: [SequenceProgress] = [], grants: [Grant] = [], bans: [Ban] = []) {
        self.catalog = catalog
        self.progress = progress
        self.grants = grants
        self.bans = bans
    }
}

/// One source granted one guarded port: decoded from the granted set, printed by `status`,
/// carried by `apply`, deleted by `revoke`, and reported by `watch`. The same value all the way.
public struct Grant: Equatable, Sendable, Identifiable, Encodable {
    public let source: IPAddress
    /// The source's family, stored so that the JSON form has it as a field of its own.
    public let family: IPFamily
    public var port: TransportPort
    /// The sequences of the live table that open this port, in name order. The kernel does not
    /// record which one granted it; empty when none opens it any more.
    public var sequences: [String]
    /// The grant's full length (its sequence's `open_for`), and the time it has left.
    public var timeout: Duration
    public var expires: Duration

    public init(source: IPAddress, port: TransportPort, sequences: [String] = [], timeout: Duration, expires: Duration) {
        self.source = source
        family = source.family
        self.port = port
        self.sequences = sequences
        self.timeout = timeout
        self.expires = expires
    }

    /// What the granted set keys a grant by.
    public struct ID: Hashable, Sendable {
        public var source: IPAddress
        public var port: TransportPort

        public init(source: IPAddress, port: TransportPort) {
            self.source = source
            self.port = port
        }

        /// Its key in the granted set.
        public var key: [Value] { [.address(source), .proto(port.proto), .port(port.port)] }
    }

    public var id: ID { ID(source: source, port: port) }

    /// The set that holds it, and its key there.
    public var set: SetLayout { TableLayout.granted(family) }
    public var key: [Value] { id.key }

    /// The grant a granted set's key names; nil for a key of another shape.
    public init?(key: [Value], timeout: Duration, expires: Duration) {
        guard key.count == 3, case .address(let source) = key[0], case .proto(let proto) = key[1],
              case .port(let port) = key[2] else { return nil }
        self.init(source: source, port: TransportPort(proto, port), timeout: timeout, expires: expires)
    }

    enum CodingKeys: String, CodingKey {
        case source, family, port, sequences
        case timeout = "timeout_seconds"
        case expires = "expires_in_seconds"
    }
}

/// A source part-way through a sequence: it has made `stage` of the sequence's knocks.
public struct SequenceProgress: Equatable, Sendable, Encodable {
    public let source: IPAddress
    public let family: IPFamily
    /// The stage tag: the sequence's tag with the stage in its low byte (see `StageTags`).
    public var tag: UInt32 {
        didSet { stage = Int(tag & 0xff) }
    }
    /// The knocks made so far: the tag's low byte, stored for the JSON form.
    public private(set) var stage: Int
    /// The sequence's name and number of knocks, from the table's catalog; nil when the
    /// catalog does not have its tag (the sequence changed, and this can no longer advance).
    public var sequence: String?
    public var knocks: Int?
    /// True when these are the sequence's `close` knocks, which end its grant.
    public var closing = false
    /// Time left before the kernel forgets it (the step timeout).
    public var expires: Duration

    public init(source: IPAddress, tag: UInt32, sequence: String? = nil, knocks: Int? = nil, expires: Duration) {
        self.source = source
        family = source.family
        self.tag = tag
        stage = Int(tag & 0xff)
        self.sequence = sequence
        self.knocks = knocks
        self.expires = expires
    }

    /// The sequence's stage-0 tag, its key in the catalog.
    public var sequenceTag: UInt32 { tag & ~0xff }

    /// The set that holds it, and its key there.
    public var set: SetLayout { TableLayout.progress(family, stage: stage) }
    public var key: [Value] { [.address(source), .tag(tag, family)] }

    /// The progress a progress set's key names; nil for a key of another shape or stage 0.
    public init?(key: [Value], expires: Duration) {
        guard key.count == 2, case .address(let source) = key[0], case .tag(let tag, _) = key[1], tag & 0xff != 0
        else { return nil }
        self.init(source: source, tag: tag, expires: expires)
    }

    /// The tag is the kernel's business; the JSON form says the stage.
    enum CodingKeys: String, CodingKey {
        case source, family, sequence, stage
        case knocks = "of"
        case closing = "close"
        case expires = "expires_in_seconds"
    }

    /// Written out so that a nil sequence or knock count is `null`, as `status --json` promises.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(source, forKey: .source)
        try container.encode(family, forKey: .family)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(stage, forKey: .stage)
        try container.encode(knocks, forKey: .knocks)
        try container.encode(closing, forKey: .closing)
        try container.encode(expires, forKey: .expires)
    }
}

/// A banned source (by wrong knocks or a decoy) and the time its ban has left.
public struct Ban: Equatable, Sendable, Encodable {
    public let source: IPAddress
    public let family: IPFamily
    public var expires: Duration
    /// False when the ban cannot take effect: the source is in the top-level `allow` list,
    /// which reaches every guarded port without knocking, so the knocks a ban ignores are
    /// knocks it never needs. Bans are triggered by packets whose source can be forged, so
    /// such a ban is often someone else's doing.
    public var effective: Bool

    public init(source: IPAddress, expires: Duration, effective: Bool = true) {
        self.source = source
        family = source.family
        self.expires = expires
        self.effective = effective
    }

    public var set: SetLayout { TableLayout.banned(family) }
    public var key: [Value] { [.address(source)] }

    enum CodingKeys: String, CodingKey {
        case family, source, effective
        case expires = "expires_in_seconds"
    }
}
