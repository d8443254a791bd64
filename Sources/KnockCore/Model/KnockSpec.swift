/// A validated spec: every default applied, every cross-check passed. Lowering reads only this.
public struct KnockSpec: Equatable, Sendable {
    /// The `inet` table knockc owns; nothing else in the kernel is touched.
    public var tableName: String
    /// Sorted by name, so the compiled output does not depend on the spec's key order.
    public var sequences: [KnockSequence]

    public static let defaultTableName = "knockc"
    public static let defaultStepTimeout = Duration.seconds(5)
    public static let defaultOpenFor = Duration.seconds(30)
    /// The `size` of every dynamic set: the most sources the kernel tracks at once.
    public static let defaultMaxTrackedSources = 65536

    public var maxTrackedSources: Int = Self.defaultMaxTrackedSources
    /// Sources that reach every guarded port without knocking, and sources that never get in.
    public var access = AccessLists()
    /// Ports no legitimate client touches: one packet to any of them bans the source.
    public var decoys: [PortRange] = []
    /// How long a decoy hit bans a source.
    public var decoyBanFor: Duration = Self.defaultBanFor

    public static let defaultBanFor = Duration.seconds(600)

    /// Hooks for sequences that have none of their own. Hooks never reach the ruleset: the
    /// watcher runs them.
    public var hooks = Hooks()
    /// How long a hook may run before the watcher stops it.
    public var hookTimeout = HookCommand.defaultTimeout

    /// The command to run for `kind` of event on `sequence`: its own, else the top level's.
    public func hook(_ kind: HookKind, for sequence: KnockSequence) -> HookCommand? {
        switch kind {
        case .grant: sequence.hooks.onGrant ?? hooks.onGrant
        case .expire: sequence.hooks.onExpire ?? hooks.onExpire
        }
    }

    /// Whether the table bans at all (and so has the `banned` sets).
    public var bans: Bool { !decoys.isEmpty || sequences.contains { $0.wrongKnocks != nil } }

    public init(tableName: String = Self.defaultTableName, sequences: [KnockSequence]) {
        self.tableName = tableName
        self.sequences = sequences.sorted { $0.name < $1.name }
    }
}

/// Which hook an event runs: `on_grant`, or `on_expire` (also for grants that end early).
public enum HookKind: String, Sendable {
    case grant, expire
}

/// Allow and deny lists, each reduced to disjoint prefixes (see `CIDR.covering`).
public struct AccessLists: Equatable, Sendable {
    public var allow: [CIDR] = []
    public var deny: [CIDR] = []

    public init(allow: [CIDR] = [], deny: [CIDR] = []) {
        self.allow = CIDR.covering(allow)
        self.deny = CIDR.covering(deny)
    }
}

/// One named knock sequence and what it opens.
public struct KnockSequence: Equatable, Sendable {
    public var name: String
    public var knocks: [Knock]
    public var open: [TransportPort]
    /// Longest gap allowed between two knocks.
    public var stepTimeout: Duration
    /// How long a grant lasts after the last knock.
    public var openFor: Duration
    /// `allow`: sources that reach this sequence's ports without knocking; `deny`: sources
    /// whose knocks on it are ignored.
    public var access = AccessLists()
    /// Sources that may knock it; nil for any.
    public var from: [CIDR]?
    /// More wrong knocks than this (knocks that reset progress) ban the source for `banFor`;
    /// nil: wrong knocks are never counted.
    public var wrongKnocks: Rate?
    public var banFor: Duration = KnockSpec.defaultBanFor
    /// Knocks that end the source's grant of this sequence's ports at once; nil for none.
    public var close: [Knock]?
    /// Whether any new TCP or UDP packet to a port outside the sequence resets a source's
    /// progress, so a sequential port scan cannot walk the sequence.
    public var strict = false
    /// Hooks of this sequence alone; each replaces the top level's hook of the same kind.
    public var hooks = Hooks()

    public init(name: String, knocks: [Knock], open: [TransportPort],
                stepTimeout: Duration = KnockSpec.defaultStepTimeout,
                openFor: Duration = KnockSpec.defaultOpenFor) {
        self.name = name
        self.knocks = knocks
        self.open = open
        self.stepTimeout = stepTimeout
        self.openFor = openFor
    }
}
