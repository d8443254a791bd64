/// The dynamic state of a live knockc table, as read back from the kernel: the catalog that
/// names its stage tags, every knock in progress and every grant, with the time each has left.
public struct LiveState: Equatable, Sendable {
    /// Each sequence's stage-0 tag, and what the table that wrote it called that sequence.
    public var catalog: [UInt32: SequenceIdentity]
    public var progress: [ProgressElement]
    public var grants: [GrantElement]
    public var bans: [BanElement]

    public init(catalog: [UInt32: SequenceIdentity] = [:], progress: [ProgressElement] = [], grants: [GrantElement] = [],
                bans: [BanElement] = []) {
        self.catalog = catalog
        self.progress = progress
        self.grants = grants
        self.bans = bans
    }
}

/// A banned source, and how long the ban has left.
public struct BanElement: Equatable, Sendable {
    public var family: IPFamily
    public var source: IPAddress
    public var expires: Duration

    public init(family: IPFamily, source: IPAddress, expires: Duration) {
        self.family = family
        self.source = source
        self.expires = expires
    }
}

/// A source part-way through a sequence.
public struct ProgressElement: Equatable, Sendable {
    public var family: IPFamily
    public var source: IPAddress
    public var tag: UInt32
    /// Time left before the kernel forgets it.
    public var expires: Duration

    public init(family: IPFamily, source: IPAddress, tag: UInt32, expires: Duration) {
        self.family = family
        self.source = source
        self.tag = tag
        self.expires = expires
    }

    /// The sequence's stage-0 tag and the stage within it (see `StageTags`).
    public var sequenceTag: UInt32 { tag & ~0xff }
    public var stage: Int { Int(tag & 0xff) }
}

/// A source granted one guarded port.
public struct GrantElement: Equatable, Sendable {
    public var family: IPFamily
    public var source: IPAddress
    public var port: TransportPort
    /// The grant's full length, and the time it has left.
    public var timeout: Duration
    public var expires: Duration

    public init(family: IPFamily, source: IPAddress, port: TransportPort, timeout: Duration, expires: Duration) {
        self.family = family
        self.source = source
        self.port = port
        self.timeout = timeout
        self.expires = expires
    }
}

/// An IP address in its canonical text form. Only constructed from text that parses as an
/// address of its family, so it is safe to write into nft commands.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let text: String

    /// Accepts dotted-quad IPv4 or RFC 4291 IPv6 text; nothing else (no names, no spaces).
    public init?(_ text: String, family: IPFamily) {
        let allowed: (Character) -> Bool = switch family {
        case .ipv4: { $0.isASCII && ($0.isNumber || $0 == ".") }
        case .ipv6: { $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }
        }
        guard !text.isEmpty, text.count <= 45, text.allSatisfy(allowed) else { return nil }
        if family == .ipv4 {
            let octets = text.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4, octets.allSatisfy({ !$0.isEmpty && $0.count <= 3 && Int($0)! <= 255 }) else { return nil }
        } else {
            guard text.contains(":"), text.components(separatedBy: "::").count <= 2 else { return nil }
        }
        self.text = text
    }

    public var description: String { text }
}
