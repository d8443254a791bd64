import Foundation
import KnockCore

/// The knocks and tokens of one sequence, derived from its secret, its name and the time
/// window, exactly as the README's "Rotating knocks and one-packet authorization: the
/// derivation" writes them down for other clients.
///
/// - Window: `W = floor(unixSeconds / every)`, `every` in whole seconds, 1 to 3600.
/// - Message: `"knockc-v1" 0x00 PURPOSE 0x00 SEQUENCE 0x00 W INDEX`, where PURPOSE is the
///   ASCII word `spa` or `rotate`, SEQUENCE is the sequence's name in UTF-8, W is 8 bytes
///   big-endian (two's complement) and INDEX 4 bytes big-endian.
/// - SPA token of slot S: the first 16 bytes of HMAC-SHA256(secret, message(`spa`, W, S)).
/// - Rotating knocks: a keyed permutation of the range's N ports per epoch of
///   M = floor(N / n) windows (n knocks), so that no port serves two knocks anywhere in an
///   epoch (see `rotatingPorts`). The kernel can then hold every window of the horizon as
///   plain keys with timeouts, none of them written twice.
///
/// The secret's bytes are the HMAC key, every byte of the file as it is.
public struct KnockDerivation: Sendable {
    /// The lengths of window `every` allows, in seconds: 1 s to 1 h.
    public static let windowLengths: ClosedRange<Int64> = 1...3600
    /// Bytes in an SPA token, which the kernel matches as `@th,64,128`.
    public static let tokenLength = 16

    /// The first bytes of every message: the derivation's name and version.
    static let domain = Array("knockc-v1".utf8)

    /// What a message is for; its word is part of the message, so a token is never a port.
    enum Purpose: String {
        case spa, rotate
    }

    /// The sequence's name, as the spec spells it.
    public let sequence: String
    private let secret: Secret

    /// The derivation for `sequence` under `secret`. The name is part of every message, so
    /// two sequences that share a secret get unrelated knocks and tokens.
    public init(secret: Secret, sequence: String) {
        // A NUL would let two (purpose, name) pairs spell the same message.
        precondition(!sequence.utf8.contains(0), "a sequence name with a NUL byte")
        self.secret = secret
        self.sequence = sequence
    }

    /// The window holding `unixSeconds`: floor(unixSeconds / every), also before 1970.
    public static func window(unixSeconds: Int64, every: Int64) -> Int64 {
        precondition(windowLengths.contains(every), "a window of \(every) s")
        let quotient = unixSeconds / every
        return unixSeconds % every < 0 ? quotient - 1 : quotient
    }

    /// The window holding `date`, from its whole Unix seconds.
    public static func window(at date: Date, every: Int64) -> Int64 {
        window(unixSeconds: Int64(date.timeIntervalSince1970.rounded(.down)), every: every)
    }

    /// The Unix seconds that window `window` covers, for the kernel's `meta time` intervals.
    public static func unixSeconds(of window: Int64, every: Int64) -> Range<Int64> {
        precondition(windowLengths.contains(every), "a window of \(every) s")
        return window * every ..< (window + 1) * every
    }

    /// The SPA token of `slot` in `window`: the first 16 bytes of
    /// HMAC-SHA256(secret, message(`spa`, window, slot)). Several slots let several clients
    /// in within one window, each token once.
    public func spaToken(window: Int64, slot: UInt32) -> [UInt8] {
        Array(authenticationCode(.spa, window: window, index: slot).prefix(Self.tokenLength))
    }

    /// Windows per epoch of a rotating sequence: each window takes one position of the
    /// epoch's permutation per knock, and the permutation has as many positions as `range`
    /// has ports. Zero when the range has fewer ports than there are knocks.
    public static func windowsPerEpoch(range: ClosedRange<UInt16>, knocks: Int) -> Int64 {
        precondition(knocks > 0, "no knocks")
        return (Int64(range.upperBound) - Int64(range.lowerBound) + 1) / Int64(knocks)
    }

    /// The ports of a rotating sequence's knocks in `window`, one per entry of `protocols`
    /// (the spec's `knocks:`, which the derivation does not choose), all in `range`.
    ///
    /// With N ports in the range and n knocks, an epoch is M = floor(N / n) windows:
    /// E = floor(W / M), and knock i of window W takes position x = (W − E·M)·n + i of the
    /// epoch's permutation P_E of 0..<N; its port is LO + P_E(x). Within an epoch no two
    /// knocks, of one window or of two, share a port, so a table holding at most M windows
    /// holds each (protocol, port, knock) key for one window of each epoch at most.
    ///
    /// P_E: with b the bit length of N − 1 and h = max(1, ceil(b / 2)), split x into
    /// L = x >> h and R = x mod 2^h; for rounds r = 0 ... 7, F = the first 4 bytes (big-endian)
    /// of HMAC-SHA256(secret, message(`rotate`, E, r × 65536 + R)) mod 2^h, and
    /// (L, R) = (R, L xor F); the result is L·2^h + R. While it is N or more, permute it
    /// again (cycle walking), which ends because x < N and the rounds permute 0..<2^2h.
    ///
    /// - Throws: `RotationError.rangeIncludesPortZero` when `range` starts at 0, and
    ///   `RotationError.rangeTooSmall` when it has fewer ports than there are knocks.
    public func rotatingPorts(
        window: Int64, protocols: [TransportProtocol], range: ClosedRange<UInt16>
    ) throws(RotationError) -> [TransportPort] {
        try rotatingPorts(windows: window...window, protocols: protocols, range: range)[0]
    }

    /// `rotatingPorts(window:...)` for consecutive windows, working out each epoch's
    /// permutation once (apply derives a whole horizon of windows).
    public func rotatingPorts(
        windows: ClosedRange<Int64>, protocols: [TransportProtocol], range: ClosedRange<UInt16>
    ) throws(RotationError) -> [[TransportPort]] {
        guard range.lowerBound > 0 else { throw .rangeIncludesPortZero(range: range) }
        guard !protocols.isEmpty else { return windows.map { _ in [] } }
        let perEpoch = Self.windowsPerEpoch(range: range, knocks: protocols.count)
        guard perEpoch > 0 else { throw .rangeTooSmall(range: range, knocks: protocols.count) }
        let size = Int(range.upperBound) - Int(range.lowerBound) + 1
        var permutation: PortPermutation?
        var ports: [[TransportPort]] = []
        ports.reserveCapacity(windows.count)
        for window in windows {
            let epoch = Self.floorDivision(window, perEpoch)
            if permutation?.epoch != epoch {
                permutation = PortPermutation(epoch: epoch, size: size) { round, right in
                    let code = authenticationCode(.rotate, window: epoch, index: UInt32(round) << 16 | right)
                    return code.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                }
            }
            let first = Int(window - epoch * perEpoch) * protocols.count
            ports.append(protocols.enumerated().map { index, proto in
                TransportPort(proto, range.lowerBound + UInt16(permutation!.position(of: first + index)))
            })
        }
        return ports
    }

    /// The epoch holding `window`, floored like windows themselves.
    public static func epoch(of window: Int64, range: ClosedRange<UInt16>, knocks: Int) -> Int64 {
        floorDivision(window, max(windowsPerEpoch(range: range, knocks: knocks), 1))
    }

    static func floorDivision(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return value % divisor < 0 ? quotient - 1 : quotient
    }

    /// `"knockc-v1" 0x00 purpose 0x00 sequence 0x00 window(8, big-endian) index(4, big-endian)`.
    func message(_ purpose: Purpose, window: Int64, index: UInt32) -> [UInt8] {
        var message = Self.domain
        message.append(0)
        message += purpose.rawValue.utf8
        message.append(0)
        message += sequence.utf8
        message.append(0)
        withUnsafeBytes(of: UInt64(bitPattern: window).bigEndian) { message += $0 }
        withUnsafeBytes(of: index.bigEndian) { message += $0 }
        return message
    }

    private func authenticationCode(_ purpose: Purpose, window: Int64, index: UInt32) -> [UInt8] {
        let message = message(purpose, window: window, index: index)
        return secret.withUnsafeBytes { HMACSHA256.authenticationCode(key: $0, message: message) }
    }
}

/// Why `rotatingPorts` found no ports.
public enum RotationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Port 0 is not a port a knock can go to.
    case rangeIncludesPortZero(range: ClosedRange<UInt16>)
    /// Fewer ports than knocks: not even one window fits the range.
    case rangeTooSmall(range: ClosedRange<UInt16>, knocks: Int)

    public var description: String {
        switch self {
        case .rangeIncludesPortZero(let range):
            "ports \(range.lowerBound)-\(range.upperBound) include port 0; start the range at 1 or above"
        case .rangeTooSmall(let range, let knocks):
            "ports \(range.lowerBound)-\(range.upperBound) are too few for \(knocks) knocks; each knock of a window takes a port of its own"
        }
    }
}

/// One epoch's keyed permutation of 0..<size: eight Feistel rounds over 2h bits, whose
/// round function is looked up in a table worked out once (2^h values per round), and
/// cycle walking down into the range.
struct PortPermutation {
    let epoch: Int64
    let size: Int
    private let halfBits: Int
    private let rounds: [[UInt32]]
    static let roundCount = 8

    init(epoch: Int64, size: Int, function: (_ round: Int, _ right: UInt32) -> UInt32) {
        precondition(size >= 1 && size <= 1 << 16, "a range of \(size) ports")
        self.epoch = epoch
        self.size = size
        let bits = size <= 1 ? 1 : Int.bitWidth - (size - 1).leadingZeroBitCount
        halfBits = max(1, (bits + 1) / 2)
        let mask = UInt32(1) << halfBits - 1
        rounds = (0..<Self.roundCount).map { round in (0...mask).map { function(round, $0) & mask } }
    }

    func position(of x: Int) -> Int {
        precondition(x >= 0 && x < size, "position \(x) of \(size)")
        var value = x
        repeat {
            value = permute(value)
        } while value >= size
        return value
    }

    private func permute(_ x: Int) -> Int {
        let mask = 1 << halfBits - 1
        var left = x >> halfBits
        var right = x & mask
        for round in rounds {
            (left, right) = (right, left ^ Int(round[right]))
        }
        return left << halfBits | right
    }
}
