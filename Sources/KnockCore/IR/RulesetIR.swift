/// The ruleset as plain values: what lowering produces and what both renderers read.
/// Everything here is already decided; renderers only spell it out.
public struct RulesetIR: Equatable, Sendable {
    public var table: TableIR

    public init(table: TableIR) { self.table = table }
}

/// One `inet` table, the only thing knockc owns in the kernel.
public struct TableIR: Equatable, Sendable {
    public var name: String
    /// Named counters that the rules bump and the watcher reads (`knockc watch --metrics`):
    /// the kernel counts grants and wrong knocks whether or not a watcher runs.
    public var counters: [CounterIR] = []
    public var sets: [SetIR]
    public var maps: [VerdictMapIR]
    public var chains: [ChainIR]

    public init(name: String, counters: [CounterIR] = [], sets: [SetIR], maps: [VerdictMapIR], chains: [ChainIR]) {
        self.name = name
        self.counters = counters
        self.sets = sets
        self.maps = maps
        self.chains = chains
    }
}

/// A named counter object (`counter grants_ssh { ... }`).
public struct CounterIR: Equatable, Sendable {
    public var name: String
    public var comment: String

    public init(name: String, comment: String) {
        self.name = name
        self.comment = comment
    }
}

/// The key types nft names; a set's key is a concatenation of these.
public enum KeyType: String, Equatable, Sendable {
    case ipv4Address = "ipv4_addr"
    case ipv6Address = "ipv6_addr"
    case nfProto = "nf_proto"
    case inetProto = "inet_proto"
    case inetService = "inet_service"
    /// The first 16 bytes of a transport payload (`@th,64,128`), an authorized packet's
    /// token: a raw field, so its set is declared with `typeof`.
    case token = "@th,64,128"
}

/// A named set: either state that the packet path adds and times out, or a constant
/// catalog written by the compiler.
public struct SetIR: Equatable, Sendable {
    public var name: String
    public var key: [KeyType]
    public var contents: Contents
    public var comment: String

    public enum Contents: Equatable, Sendable {
        /// Filled by the packet path; `size` bounds the state a flood can create, as a full
        /// set refuses new elements.
        case dynamic(size: Int)
        /// Fixed elements, each with a comment that carries meaning for knockc itself.
        case constant([Element])
        /// Fixed prefixes (or prefixes concatenated with other values), disjoint.
        case intervals([[Value]])
        /// Fixed values without comments or flags, so the kernel may store a small key
        /// (a port) as a bitmap, the cheapest lookup it has.
        case plain([[Value]])
        /// Elements that `apply` writes, each with its own timeout, computed from a secret
        /// and the time (an authorized packet's tokens). Replaced at every apply; never in
        /// the compiled text, which holds only the empty set.
        case filledAtApply(size: Int)
    }

    public struct Element: Equatable, Sendable {
        public var key: [Value]
        public var comment: String
    }

    public init(name: String, key: [KeyType], contents: Contents, comment: String) {
        self.name = name
        self.key = key
        self.contents = contents
        self.comment = comment
    }

    /// A set the packet path fills, laid out as the live table reads it (`TableLayout`).
    public init(_ layout: SetLayout, size: Int, comment: String) {
        self.init(name: layout.name, key: layout.key, contents: .dynamic(size: size), comment: comment)
    }
}

/// A verdict map: one lookup that dispatches a packet to the chain that cares about it,
/// so the cost of ordinary traffic does not grow with the spec.
public struct VerdictMapIR: Equatable, Sendable {
    public var name: String
    public var key: [KeyType]
    public var elements: [Element]
    public var comment: String

    public struct Element: Equatable, Sendable {
        public var key: [Value]
        public var verdict: Verdict
    }
}

public struct ChainIR: Equatable, Sendable {
    public var name: String
    /// Set for the one base chain that the kernel calls; nil for chains reached by `jump`.
    public var hook: Hook?
    public var rules: [RuleIR]

    public struct Hook: Equatable, Sendable {
        /// The netfilter hook; knockc only watches `input`.
        public var hook: String
        /// Runs before the host's `filter` chains (priority 0), so every knock is seen even
        /// when a later chain drops it.
        public var priority: Int
        /// `filter`, or `nat` for the chain of `dnat:` (see `DnatRules`).
        public var type: String = "filter"
    }
}

public struct RuleIR: Equatable, Sendable {
    public var statements: [Statement]
    /// Says which sequence and stage a rule serves; restricted to safe characters by lowering.
    public var comment: String?

    public init(_ statements: [Statement], comment: String? = nil) {
        self.statements = statements
        self.comment = comment
    }
}
