/// The transport protocols a knock or a guarded port can use.
public enum TransportProtocol: String, CaseIterable, Hashable, Comparable, Sendable {
    case tcp, udp

    /// The IANA protocol number, as the kernel matches it in `meta l4proto`.
    public var number: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.number < rhs.number }
}

/// A protocol and a port, as `tcp/22`.
public struct TransportPort: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var proto: TransportProtocol
    public var port: UInt16

    public init(_ proto: TransportProtocol, _ port: UInt16) {
        self.proto = proto
        self.port = port
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.proto, lhs.port) < (rhs.proto, rhs.port) }

    public var description: String { "\(proto.rawValue)/\(port)" }
}

/// One packet of a knock sequence. An enum, not a port, because later knock kinds (ICMP echo
/// by payload length, payload tokens) carry no port at all.
public enum Knock: Hashable, Comparable, Sendable, CustomStringConvertible {
    case port(TransportPort)
    /// An ICMP or ICMPv6 echo request whose payload is this many bytes: what
    /// `ping -c1 -s LEN HOST` sends.
    case icmpEcho(payloadLength: Int)

    /// Payload lengths an echo knock may have: unfragmented on any IPv6 path (1280 bytes,
    /// less 40 of IPv6 header and 8 of ICMPv6 header).
    public static let echoPayloadLengths = 1...1232
    /// ping's default payload: every ordinary ping would count as this knock.
    public static let defaultPingPayloadLength = 56

    /// The knock words a spec and `knockc knock` accept, for messages.
    public static let syntaxHint = "tcp/PORT or udp/PORT with PORT 1 to 65535, or icmp/LENGTH with LENGTH 1 to 1232, as tcp/7000"

    public static func tcp(_ port: UInt16) -> Knock { .port(TransportPort(.tcp, port)) }
    public static func udp(_ port: UInt16) -> Knock { .port(TransportPort(.udp, port)) }

    public var description: String {
        switch self {
        case .port(let transportPort): transportPort.description
        case .icmpEcho(let length): "icmp/\(length)"
        }
    }

    /// The number that orders knocks in a sequential port scan, for the monotonic-sequence
    /// warning; nil for knocks a port scan does not send.
    var scanOrder: Int? {
        switch self {
        case .port(let transportPort): Int(transportPort.port)
        case .icmpEcho: nil
        }
    }

    public static func < (lhs: Knock, rhs: Knock) -> Bool {
        switch (lhs, rhs) {
        case (.port(let left), .port(let right)): left < right
        case (.icmpEcho(let left), .icmpEcho(let right)): left < right
        case (.port, .icmpEcho): true
        case (.icmpEcho, .port): false
        }
    }
}

/// Why a knock word did not parse; the validator turns it into a diagnostic.
public enum KnockSyntaxError: Error, Equatable, Sendable {
    case malformed(String)
    case unknownProtocol(String)
    case portOutOfRange(String)
    case lengthOutOfRange(String)
}

extension TransportPort {
    /// Parses `tcp/7000` or `udp/53`.
    public init(parsing text: String) throws(KnockSyntaxError) {
        if let plain = Self(plain: text) {
            self = plain
            return
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw .malformed(text) }
        guard let proto = TransportProtocol(rawValue: String(parts[0])) else {
            throw .unknownProtocol(String(parts[0]))
        }
        guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else { throw .malformed(text) }
        guard parts[1].count <= 5, let port = Int(parts[1]), (1...65535).contains(port) else {
            throw .portOutOfRange(String(parts[1]))
        }
        self.init(proto, UInt16(port))
    }

    /// The well-formed case, byte by byte: `tcp/` or `udp/`, then one to five ASCII digits
    /// making 1 to 65535. A spec of 10,000 sequences has 40,000 of these words. Anything
    /// else, every mistake included, is left to `init(parsing:)`, which says what is wrong.
    private init?(plain text: String) {
        let bytes = text.utf8
        guard (5...9).contains(bytes.count) else { return nil }
        var index = bytes.startIndex
        func next() -> UInt8 {
            defer { index = bytes.index(after: index) }
            return bytes[index]
        }
        let proto: TransportProtocol
        switch (next(), next(), next(), next()) {
        case (UInt8(ascii: "t"), UInt8(ascii: "c"), UInt8(ascii: "p"), UInt8(ascii: "/")): proto = .tcp
        case (UInt8(ascii: "u"), UInt8(ascii: "d"), UInt8(ascii: "p"), UInt8(ascii: "/")): proto = .udp
        default: return nil
        }
        var port = 0
        while index != bytes.endIndex {
            let digit = next()
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            port = port * 10 + Int(digit - UInt8(ascii: "0"))
        }
        guard (1...65535).contains(port) else { return nil }
        self.init(proto, UInt16(port))
    }
}

extension Knock {
    /// Parses a knock word from a spec or the command line.
    public init(parsing text: String) throws(KnockSyntaxError) {
        if text.hasPrefix("icmp/") {
            let length = text.dropFirst("icmp/".count)
            guard !length.isEmpty, length.count <= 5, length.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw .malformed(text) }
            guard let value = Int(length), Self.echoPayloadLengths.contains(value) else { throw .lengthOutOfRange(String(length)) }
            self = .icmpEcho(payloadLength: value)
            return
        }
        self = .port(try TransportPort(parsing: text))
    }
}

extension TransportPort: Encodable {
    /// As `tcp/22`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
