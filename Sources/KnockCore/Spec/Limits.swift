/// A rate as the spec writes it: `5/minute`.
public struct Rate: Hashable, Comparable, Sendable, CustomStringConvertible {
    public enum Unit: String, CaseIterable, Sendable {
        case second, minute, hour, day

        public var period: Duration {
            switch self {
            case .second: .seconds(1)
            case .minute: .seconds(60)
            case .hour: .seconds(3600)
            case .day: .seconds(86_400)
            }
        }
    }

    public var count: Int
    public var unit: Unit

    public init(count: Int, unit: Unit) {
        self.count = count
        self.unit = unit
    }

    public static let maximumCount = 100_000

    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 6, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
              let count = Int(parts[0]), (1...Self.maximumCount).contains(count),
              let unit = Unit(rawValue: String(parts[1])) else { return nil }
        self.init(count: count, unit: unit)
    }

    public var description: String { "\(count)/\(unit.rawValue)" }

    public static func < (lhs: Rate, rhs: Rate) -> Bool {
        (lhs.unit.period, lhs.count) < (rhs.unit.period, rhs.count)
    }
}

/// A protocol and a range of ports, as `tcp/2000-2100` or `udp/161`.
public struct PortRange: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var proto: TransportProtocol
    public var first: UInt16
    public var last: UInt16

    public init(_ proto: TransportProtocol, _ first: UInt16, _ last: UInt16) {
        self.proto = proto
        self.first = first
        self.last = last
    }

    public init(parsing text: String) throws(KnockSyntaxError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .malformed(text) }
        let bounds = parts[1].split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count) else { throw .malformed(text) }
        let first = try TransportPort(parsing: "\(parts[0])/\(bounds[0])")
        let last = bounds.count == 2 ? try TransportPort(parsing: "\(parts[0])/\(bounds[1])") : first
        guard first.port <= last.port else { throw .malformed(text) }
        self.init(first.proto, first.port, last.port)
    }

    public func contains(_ port: TransportPort) -> Bool {
        port.proto == proto && (first...last).contains(port.port)
    }

    public var description: String { "\(proto.rawValue)/\(first)" + (first == last ? "" : "-\(last)") }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.proto, lhs.first, lhs.last) < (rhs.proto, rhs.first, rhs.last) }
}
