import Foundation

/// An IPv4 or IPv6 address, held as its bytes: decoding one from a set element costs two
/// loads and no text, so reading 100,000 grants formats none of them. Its text is the
/// canonical form nft prints (`inet_ntop`), made only when asked for; every value of this
/// type is a real address, so that text is safe to write into nft commands.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible, Encodable {
    /// The address in network order, left-aligned: an IPv4 address fills the top 4 bytes of
    /// `high`, so addresses of one family compare numerically as (high, low).
    private let high: UInt64
    private let low: UInt64
    /// Last, so that a value that holds an address can use the 7 bytes after it: a grant's
    /// key (`Grant.ID`) is 24 bytes rather than 32, which the watcher holds 100,000 of.
    public let family: IPFamily

    /// Accepts dotted-quad IPv4 or RFC 4291 IPv6 text of `family`; nothing else (no names,
    /// no prefix lengths, no spaces).
    public init?(_ text: String, family: IPFamily) {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard text.utf8.count <= 45, inet_pton(family.addressFamily, text, &bytes) == 1 else { return nil }
        self.init(bytes: bytes.prefix(family.addressLength), family: family)
    }

    /// The address in `bytes` (4 or 16 of them, in network order, as the kernel stores it).
    public init?<Bytes: Collection<UInt8>>(bytes: Bytes, family: IPFamily) {
        guard bytes.count == family.addressLength else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 {
                high |= UInt64(byte) << (56 - 8 * UInt64(index))
            } else {
                low |= UInt64(byte) << (56 - 8 * UInt64(index - 8))
            }
        }
        self.family = family
        self.high = high
        self.low = low
    }

    /// The netmask of a prefix of `length` bits (`255.255.255.0` for an IPv4 /24).
    public static func mask(length: Int, family: IPFamily) -> IPAddress {
        let bits = family.addressLength * 8
        let bytes = (0..<family.addressLength).map { index -> UInt8 in
            let set = min(max(length - index * 8, 0), 8)
            return set == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - set))
        }
        precondition((0...bits).contains(length), "a /\(length) of \(family)")
        return IPAddress(bytes: bytes, family: family)!
    }

    /// This address with every bit past the first `length` cleared: the prefix a grant of
    /// that length covers.
    public func masked(to length: Int) -> IPAddress {
        let mask = Self.mask(length: length, family: family).bytes
        return IPAddress(bytes: zip(bytes, mask).map { $0 & $1 }, family: family)!
    }

    /// Parses what a person typed (`192.0.2.7`, `2001:DB8::7`) in either family.
    public static func parse(_ text: String) -> IPAddress? {
        IPAddress(text, family: .ipv4) ?? IPAddress(text, family: .ipv6)
    }

    /// The address in network order: 4 bytes for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for word in [high, low] {
            for shift in stride(from: 56, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return Array(bytes.prefix(family.addressLength))
    }

    /// The canonical text, as nft lists it.
    public var text: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let bytes = self.bytes
        _ = inet_ntop(family.addressFamily, bytes, &buffer, socklen_t(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { text }

    /// IPv4 before IPv6, then numerically (192.0.2.9 before 192.0.2.10).
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.family == .ipv4 ? 0 : 1, lhs.high, lhs.low) < (rhs.family == .ipv4 ? 0 : 1, rhs.high, rhs.low)
    }

    /// As its text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

extension IPFamily {
    /// AF_INET or AF_INET6.
    var addressFamily: Int32 {
        switch self {
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        }
    }

    /// Bytes in an address of this family.
    public var addressLength: Int {
        switch self {
        case .ipv4: 4
        case .ipv6: 16
        }
    }
}
