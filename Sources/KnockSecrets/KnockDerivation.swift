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
/// - Rotating knock i (0-based) of window W: for attempt a = 0, 1, ... 63, take
///   HMAC-SHA256(secret, message(`rotate`, W, i × 256 + a)), read its first 4 bytes as a
///   big-endian unsigned v, and port = LO + v mod (HI − LO + 1). The first attempt whose port
///   is not excluded for the knock's protocol and is not the port of knock i − 1 (whatever its
///   protocol) is knock i's port.
///
/// The secret's bytes are the HMAC key, every byte of the file as it is.
public struct KnockDerivation: Sendable {
    /// The lengths of window `every` allows, in seconds: 1 s to 1 h.
    public static let windowLengths: ClosedRange<Int64> = 1...3600
    /// Bytes in an SPA token, which the kernel matches as `@th,64,128`.
    public static let tokenLength = 16
    /// Attempts at each rotating knock's port before `rotatingPorts` gives up.
    public static let maximumAttempts = 64

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

    /// The ports of a rotating sequence's knocks in `window`, one per entry of `protocols`
    /// (the spec's `knocks:`, which the derivation does not choose), each in `range` and not
    /// in `excluded[its protocol]` (guarded ports, decoys, other sequences' fixed knocks), and
    /// none equal to the port of the knock before it.
    ///
    /// Knock i tries attempts a = 0, 1, ... `maximumAttempts` − 1 with index i × 256 + a and
    /// keeps the first port that is allowed. A client must pass the same `excluded` as the
    /// server to derive the same ports; when `excluded` has no port inside `range`, it can
    /// pass none. With u allowed ports out of n in the range, a knock fails with probability
    /// about ((n − u + 1) / n)^64, so keep excluded ports a small share of the range.
    ///
    /// - Throws: `RotationError.rangeIncludesPortZero` when `range` starts at 0, and
    ///   `RotationError.rangeTooSmall` when a knock found no allowed port.
    public func rotatingPorts(
        window: Int64, protocols: [TransportProtocol], range: ClosedRange<UInt16>,
        excluded: [TransportProtocol: Set<UInt16>] = [:]
    ) throws(RotationError) -> [TransportPort] {
        guard range.lowerBound > 0 else { throw .rangeIncludesPortZero(range: range) }
        precondition(protocols.count < 1 << 24, "\(protocols.count) knocks")
        let size = UInt32(range.upperBound - range.lowerBound) + 1
        var knocks: [TransportPort] = []
        for (index, proto) in protocols.enumerated() {
            let refused = excluded[proto] ?? []
            let previous = knocks.last?.port
            var found: UInt16?
            for attempt in 0..<UInt32(Self.maximumAttempts) {
                let code = authenticationCode(.rotate, window: window, index: UInt32(index) << 8 | attempt)
                let value = code.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                let port = range.lowerBound + UInt16(value % size)
                if port != previous, !refused.contains(port) {
                    found = port
                    break
                }
            }
            guard let found else {
                throw .rangeTooSmall(range: range, knock: index, proto: proto, attempts: Self.maximumAttempts)
            }
            knocks.append(TransportPort(proto, found))
        }
        return knocks
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
    /// Every attempt at knock `knock` (0-based) hit an excluded port or the previous knock's.
    case rangeTooSmall(range: ClosedRange<UInt16>, knock: Int, proto: TransportProtocol, attempts: Int)

    public var description: String {
        switch self {
        case .rangeIncludesPortZero(let range):
            "ports \(range.lowerBound)-\(range.upperBound) include port 0; start the range at 1 or above"
        case .rangeTooSmall(let range, let knock, let proto, let attempts):
            "ports \(range.lowerBound)-\(range.upperBound) are too few: \(attempts) tries at knock \(knock + 1) (\(proto.rawValue)) "
                + "all hit an excluded port (guarded, decoy or another sequence's knock) or the knock before; "
                + "widen the range or move those ports out of it"
        }
    }
}
