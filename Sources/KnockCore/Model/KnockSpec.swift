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

    /// How often to apply the spec again so that its sequences never run out of windows
    /// ahead: half the shortest `horizon`, so that one missed run (a failed apply, a pending
    /// `apply --confirm` that refuses it) still leaves time for the next; nil when no
    /// sequence holds windows ahead, and then a table needs no re-apply.
    public var refreshInterval: Duration? {
        sequences.compactMap(\.windowHorizon).min().map { Duration(milliseconds: $0.milliseconds / 2) }
    }

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

/// One `dnat:` entry: a local port (as the client addresses it) and the host and port behind
/// this one that knockc's own nat chain sends a granted source's connection to. The target's
/// family decides which clients it serves: an IPv4 target IPv4 clients, an IPv6 one IPv6.
public struct DnatTarget: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var port: TransportPort
    public var address: IPAddress
    public var targetPort: UInt16

    public init(port: TransportPort, address: IPAddress, targetPort: UInt16) {
        self.port = port
        self.address = address
        self.targetPort = targetPort
    }

    public var family: IPFamily { address.family }

    /// `198.51.100.10:22` or `[2001:db8:1::10]:80`, as the spec writes it and nft reads it.
    public var target: String {
        family == .ipv4 ? "\(address):\(targetPort)" : "[\(address)]:\(targetPort)"
    }

    public var description: String { "\(port) to \(target)" }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.port < rhs.port }

    /// Reads `A.B.C.D:PORT` or `[IPV6]:PORT`, PORT 1 to 65535; nil for anything else.
    public static func parseTarget(_ text: String) -> (IPAddress, UInt16)? {
        let host: Substring
        let portText: Substring
        let family: IPFamily
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
            family = .ipv6
        } else {
            guard let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            family = .ipv4
        }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = UInt16(portText), port >= 1,
              let address = IPAddress(String(host), family: family) else { return nil }
        return (address, port)
    }
}

/// One named knock sequence and what it opens.
public struct KnockSequence: Equatable, Sendable {
    public var name: String
    public var knocks: [Knock]
    public var open: [TransportPort]
    /// Ports this host forwards elsewhere (Docker's published ports), by the number the client
    /// connected to before any DNAT; a grant opens them in the forward hook.
    public var forward: [TransportPort] = []
    /// `dnat:` ports that knockc itself forwards to a host behind this one, by local port
    /// (see `DnatRules`); granted as `forward` ports are.
    public var dnat: [DnatTarget] = []
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
    /// How much of the knocking source's address a grant covers (`grant_prefix`).
    public var grantPrefix = GrantPrefix()
    /// Whether a grant ends with the first new connection it lets in (`open_once`); the
    /// connection stays up, and another needs a new knock.
    public var openOnce = false
    /// Hooks of this sequence alone; each replaces the top level's hook of the same kind.
    public var hooks = Hooks()
    /// One-packet authorization instead of a knock list: `knocks` is then the one packet's
    /// port, and a token in its payload decides.
    public var spa: OnePacketAuthorization?
    /// Knocks whose ports rotate with time instead of a fixed knock list: `knocks` is then
    /// empty, and the kernel holds each window's ports.
    public var rotate: RotatingKnocks?

    /// Every port a grant of this sequence opens: `open`, then `forward`. A grant is one key
    /// (source . protocol . port) whichever hook looks it up.
    public var grants: [TransportPort] { open + forward + dnat.map(\.port) }

    /// The ports a grant to a source of `family` opens: a `dnat` port only when its target
    /// is of that family, since only such clients are translated.
    public func grants(_ family: IPFamily) -> [TransportPort] {
        open + forward + dnat.filter { $0.family == family }.map(\.port)
    }

    /// How many knocks the sequence takes: its knock list, or its rotating knocks.
    public var knockCount: Int { rotate?.protocols.count ?? knocks.count }

    /// The time windows of a sequence whose knocks or token come from a secret; nil for
    /// fixed knocks.
    public var windows: (any SecretWindows)? { spa ?? rotate }

    /// How far ahead the table holds this sequence's windows (`spa` or `rotate`); nil for
    /// fixed knocks, which one apply serves for good.
    public var windowHorizon: Duration? {
        windows?.horizon
    }

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

/// `grant_prefix`: a grant covers the knocking source's prefix of this length, so a client
/// whose IPv6 privacy address changes between the knock and the connect still gets in.
public struct GrantPrefix: Equatable, Hashable, Sendable {
    public var ipv4 = 32
    public var ipv6 = 128

    public init(ipv4: Int = 32, ipv6: Int = 128) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }

    public func length(_ family: IPFamily) -> Int {
        switch family {
        case .ipv4: ipv4
        case .ipv6: ipv6
        }
    }
}

/// `spa:`: a sequence that opens on one UDP datagram whose payload starts with a token only
/// the secret's holder can make, valid for a time window and usable once. The table holds
/// the tokens of the windows ahead, so the kernel checks and consumes them on its own.
public struct OnePacketAuthorization: Equatable, Sendable {
    /// The secret file's path; the secret itself is read only at apply and by the client.
    public var secret: String
    public var port: TransportPort
    /// The length of a window; whole seconds.
    public var every: Duration
    /// Windows either side of the current one whose tokens are accepted, for clocks that differ.
    public var skew: Int
    /// How far ahead the table holds tokens; past it nothing opens until the next apply.
    public var horizon: Duration
    /// Tokens per window: how many clients can get in within one window.
    public var slots: Int

    public static let defaultEvery = Duration.seconds(30)
    public static let defaultSkew = 1
    public static let defaultHorizon = Duration.seconds(86_400)
    public static let defaultSlots = 4
    /// Windows from 1 s to 1 h, and a horizon of at most 7 days: what one table holds.
    public static let everyRange = Duration.seconds(1)...Duration.seconds(3600)
    public static let longestHorizon = Duration.seconds(7 * 86_400)

    public init(secret: String, port: TransportPort, every: Duration = Self.defaultEvery, skew: Int = Self.defaultSkew,
                horizon: Duration = Self.defaultHorizon, slots: Int = Self.defaultSlots) {
        self.secret = secret
        self.port = port
        self.every = every
        self.skew = skew
        self.horizon = horizon
        self.slots = slots
    }

    /// Tokens the table holds at once.
    public var tokensHeld: Int { windowsHeld * slots }
}

extension OnePacketAuthorization: SecretWindows {}

/// What `spa:` and `rotate:` share: a secret, and time windows the table holds ahead.
public protocol SecretWindows: Sendable {
    /// The secret file's path; the secret itself is read only at apply and by the client.
    var secret: String { get }
    /// The length of a window; whole seconds.
    var every: Duration { get }
    /// Windows either side of the current one that are accepted, for clocks that differ.
    var skew: Int { get }
    /// How far ahead the table holds windows; past it nothing opens until the next apply.
    var horizon: Duration { get }
}

extension SecretWindows {
    /// Seconds in a window.
    public var windowSeconds: Int64 { every.milliseconds / 1000 }

    /// Windows the table holds at once: the skew behind, the horizon ahead.
    public var windowsHeld: Int { Int(horizon.milliseconds / every.milliseconds) + 2 * skew + 1 }

    /// How long a window's knocks or tokens stay valid: the window and the skew either side.
    public var validity: Duration { Duration(milliseconds: every.milliseconds * Int64(2 * skew + 1)) }
}

/// `rotate:`: knocks whose ports the secret and the time window choose, within `ports`, so
/// that recorded knocks open nothing once their window has passed. The table holds the
/// ports of the windows ahead, so the kernel rotates them on its own.
public struct RotatingKnocks: Equatable, Sendable, SecretWindows {
    public var secret: String
    public var every: Duration
    /// Each knock's protocol, in order; the derivation picks the ports.
    public var protocols: [TransportProtocol]
    /// The ports the knocks are drawn from.
    public var ports: ClosedRange<UInt16>
    public var skew: Int
    public var horizon: Duration

    public init(secret: String, protocols: [TransportProtocol], ports: ClosedRange<UInt16>,
                every: Duration = OnePacketAuthorization.defaultEvery, skew: Int = OnePacketAuthorization.defaultSkew,
                horizon: Duration = OnePacketAuthorization.defaultHorizon) {
        self.secret = secret
        self.protocols = protocols
        self.ports = ports
        self.every = every
        self.skew = skew
        self.horizon = horizon
    }

    /// Ports in the range.
    public var portCount: Int { Int(ports.upperBound) - Int(ports.lowerBound) + 1 }

    /// Windows per epoch of the derivation (see `KnockDerivation.rotatingPorts`).
    public var windowsPerEpoch: Int { protocols.isEmpty ? 0 : portCount / protocols.count }

    /// The fewest windows per epoch that keep each key once in its parity's sets: the table
    /// holds `windowsHeld` windows, and a used mark (kept `validity` from a grant up to the
    /// end of its window's validity, 3 × skew + 1 windows after it began) must be gone before
    /// the epoch after next, of the same parity, can use its port: 4 × skew + 1 windows.
    public var windowsNeededPerEpoch: Int { max(windowsHeld, 4 * skew + 1) }

    /// About how many packets, as a power of two (rounded down), a guesser who knows the
    /// protocols needs to hit every knock of some valid window: each knock is one of the
    /// range's ports, and 2 × skew + 1 windows are valid at once.
    public var guessingBits: Int {
        let perKnock = max(portCount / (2 * skew + 1), 1)
        return protocols.count * (Int.bitWidth - perKnock.leadingZeroBitCount - 1)
    }

    /// The range as the spec and the client's `--ports` spell it.
    public var portsText: String { "\(ports.lowerBound)-\(ports.upperBound)" }
}
