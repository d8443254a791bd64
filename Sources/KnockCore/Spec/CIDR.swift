import Foundation

/// An address prefix from the spec (`192.0.2.0/24`, `2001:db8::/32`, or one address).
/// Parsed strictly and printed canonically, so a spec value can never carry nft syntax.
public struct CIDR: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var family: IPFamily
    /// The network address, 4 or 16 bytes, with the host bits clear.
    public var bytes: [UInt8]
    public var prefixLength: Int

    public enum ParseError: Error, Equatable, Sendable {
        case malformed(String)
        case hostBitsSet(String, network: String)
        /// Inside `::ffff:0:0/96`: the kernel sees an IPv4 client's packets as IPv4, so such
        /// an entry never matches one; `ipv4` is what to write instead.
        case ipv4Mapped(String, ipv4: String)
    }

    public init(parsing text: String) throws(ParseError) {
        // inet_pton stops at a NUL; only address characters may reach it.
        guard text.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ":./".unicodeScalars.contains($0)) })
        else { throw .malformed(text) }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else { throw .malformed(text) }
        let address = String(parts[0])
        if let bytes = Self.bytes(address, family: AF_INET) {
            family = .ipv4
            self.bytes = bytes
        } else if address.contains(":"), let bytes = Self.bytes(address, family: AF_INET6) {
            family = .ipv6
            self.bytes = bytes
        } else {
            throw .malformed(text)
        }
        let maximum = bytes.count * 8
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                  let length = Int(parts[1]), length <= maximum else { throw .malformed(text) }
            prefixLength = length
        } else {
            prefixLength = maximum
        }
        let network = Self.masked(bytes, prefixLength)
        if family == .ipv6, prefixLength >= 96, network.prefix(12) == Self.ipv4MappedPrefix[...] {
            let ipv4 = CIDR(family: .ipv4, bytes: Array(network.suffix(4)), prefixLength: prefixLength - 96)
            throw .ipv4Mapped(text, ipv4: ipv4.description)
        }
        guard network == bytes else {
            throw .hostBitsSet(text, network: CIDR(family: family, bytes: network, prefixLength: prefixLength).description)
        }
    }

    /// The first 96 bits of every IPv4-mapped IPv6 address (RFC 4291 2.5.5.2).
    static let ipv4MappedPrefix: [UInt8] = Array(repeating: 0, count: 10) + [0xff, 0xff]

    private init(family: IPFamily, bytes: [UInt8], prefixLength: Int) {
        self.family = family
        self.bytes = bytes
        self.prefixLength = prefixLength
    }

    /// Strict dotted-quad IPv4 (inet_pton accepts no shorthand) or RFC 4291 IPv6.
    private static func bytes(_ text: String, family: Int32) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: family == AF_INET ? 4 : 16)
        guard text.count <= 45, inet_pton(family, text, &buffer) == 1 else { return nil }
        return buffer
    }

    private static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 8 ? byte : byte & ~(UInt8(0xff) >> bits)
        }
    }

    /// Whether every address of `other` is in this prefix.
    public func contains(_ other: CIDR) -> Bool {
        family == other.family && other.prefixLength >= prefixLength && Self.masked(other.bytes, prefixLength) == bytes
    }

    /// The network address alone, canonical (`192.0.2.0`, `2001:db8::`).
    public var address: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var bytes = self.bytes
        _ = inet_ntop(family == .ipv4 ? AF_INET : AF_INET6, &bytes, &buffer, socklen_t(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var isSingleAddress: Bool { prefixLength == bytes.count * 8 }

    public var description: String { isSingleAddress ? address : "\(address)/\(prefixLength)" }

    /// IPv4 first, then by address, then shorter prefixes first.
    public static func < (lhs: CIDR, rhs: CIDR) -> Bool {
        if lhs.family != rhs.family { return lhs.family == .ipv4 }
        if lhs.bytes != rhs.bytes { return lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }
        return lhs.prefixLength < rhs.prefixLength
    }

    /// The smallest list covering the same addresses: prefixes inside others are dropped, so
    /// the rest are disjoint, as an nft interval set requires. Sorted.
    public static func covering(_ list: [CIDR]) -> [CIDR] {
        let sorted = Set(list).sorted { ($0.prefixLength, $0.description) < ($1.prefixLength, $1.description) }
        var kept: [CIDR] = []
        for cidr in sorted where !kept.contains(where: { $0.contains(cidr) }) {
            kept.append(cidr)
        }
        return kept.sorted()
    }
}
