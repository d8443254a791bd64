/// A value and where the spec wrote it, so later stages can point at the line.
public struct Located<Value: Sendable>: Sendable {
    public var value: Value
    public var location: SourceLocation

    public init(_ value: Value, at location: SourceLocation) {
        self.value = value
        self.location = location
    }
}

extension Located: Equatable where Value: Equatable {}

/// The spec as written: every key known, every scalar typed, nothing yet cross-checked.
/// Optional fields are the ones the spec may leave out; the validator fills in defaults.
public struct ParsedSpec: Sendable {
    public var file: String
    public var table: Located<String>?
    public var defaults: ParsedTimings
    public var sequences: [ParsedSequence]
    /// Where `sequences:` stands, for errors about the list as a whole.
    public var sequencesLocation: SourceLocation?
    /// False when `sequences` was not a usable mapping, already reported.
    public var sequencesComplete = true
    public var access = ParsedAccess()
    public var maxTrackedSources: Located<Int>?
    public var limits = ParsedLimits()
    public var grantPrefix = ParsedGrantPrefix()
    public var decoys: [Located<PortRange>] = []
    public var hooks = ParsedHooks()
    public var hookTimeout: Located<Duration>?
}

/// `on_grant` and `on_expire`, at the top level or per sequence: argv arrays the watcher runs.
public struct ParsedHooks: Sendable {
    public var onGrant: Located<HookCommand>?
    public var onExpire: Located<HookCommand>?
}

/// The timing keys that `defaults` and each sequence share.
public struct ParsedTimings: Sendable {
    public var stepTimeout: Located<Duration>?
    public var openFor: Located<Duration>?
}

public struct ParsedSequence: Sendable {
    public var name: Located<String>
    public var knocks: [Located<Knock>]
    /// False when `knock` held something unusable, already reported: checks of the knock
    /// list as a whole are skipped rather than repeating the same problem in other words.
    public var knocksComplete = true
    /// Where `knock:` stands, or the name when the key is missing.
    public var knocksLocation: SourceLocation
    public var open: [Located<TransportPort>]
    public var openComplete = true
    public var openLocation: SourceLocation
    /// `forward:` ports this host forwards (before any DNAT) that a grant opens; nil when absent.
    public var forward: [Located<TransportPort>]?
    /// `dnat:` local ports and their targets; nil when absent.
    public var dnat: [ParsedDnat]?
    /// `forward` and `dnat` ports: what a grant opens beyond this host's own ports.
    public var forwarded: [Located<TransportPort>] { (forward ?? []) + (dnat ?? []).map(\.port) }
    public var timings: ParsedTimings
    public var access = ParsedAccess()
    /// Sources that may knock this sequence; nil when the spec does not restrict it.
    public var from: [Located<CIDR>]?
    public var limits = ParsedLimits()
    public var grantPrefix = ParsedGrantPrefix()
    public var strict = false
    /// `open_once: true`: a grant ends with the first connection it lets in.
    public var openOnce: Located<Bool>?
    public var hooks = ParsedHooks()
    /// The `close` knocks and where the list stands; nil when absent.
    public var close: [Located<Knock>]?
    public var closeLocation: SourceLocation?
    /// `spa:`, one-packet authorization instead of `knock:`; nil when absent.
    public var spa: ParsedOnePacketAuthorization?
    /// `rotate:`, rotating knocks instead of `knock:`; nil when absent.
    public var rotate: ParsedRotatingKnocks?
}

/// `spa: { secret: PATH, port: udp/62201, every: 30s, skew: 1, horizon: 24h, slots: 4 }`.
public struct ParsedOnePacketAuthorization: Sendable {
    /// Where `spa:` stands.
    public var location: SourceLocation
    public var secret: Located<String>?
    public var port: Located<TransportPort>?
    public var every: Located<Duration>?
    public var skew: Located<Int>?
    public var horizon: Located<Duration>?
    public var slots: Located<Int>?
}

/// `rotate: { secret: PATH, every: 30s, knocks: [tcp, udp, tcp], ports: 20000-40000, skew: 1, horizon: 24h }`.
public struct ParsedRotatingKnocks: Sendable {
    /// Where `rotate:` stands.
    public var location: SourceLocation
    public var secret: Located<String>?
    public var every: Located<Duration>?
    /// The knocks' protocols; nil when the list is missing or has a word that is not one.
    public var knocks: [Located<TransportProtocol>]?
    public var knocksLocation: SourceLocation?
    public var ports: Located<ClosedRange<UInt16>>?
    public var skew: Located<Int>?
    public var horizon: Located<Duration>?
}

/// `grant_prefix: { ipv4: 32, ipv6: 64 }`, at the top level or per sequence.
public struct ParsedGrantPrefix: Sendable {
    public var ipv4: Located<Int>?
    public var ipv6: Located<Int>?
}

/// `limits: { wrong_knocks: 5/minute, ban_for: 10m }`, at the top level or per sequence.
public struct ParsedLimits: Sendable {
    public var wrongKnocks: Located<Rate>?
    public var banFor: Located<Duration>?
}

/// `allow` and `deny`, which the top level and each sequence share.
public struct ParsedAccess: Sendable {
    public var allow: [Located<CIDR>] = []
    public var deny: [Located<CIDR>] = []
}

/// One `dnat:` entry as written: the local port and its target, each with its place.
public struct ParsedDnat: Sendable {
    public var port: Located<TransportPort>
    public var target: Located<DnatTarget>
}
