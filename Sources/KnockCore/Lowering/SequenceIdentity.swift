/// What makes two sequences "the same" across applies: the name and the exact knocks. Progress
/// made on a sequence is carried over to the new table only when both are unchanged, so a
/// source never finishes a sequence whose knocks have changed under it.
public struct SequenceIdentity: Hashable, Sendable {
    public var name: String
    /// FNV-1a (64 bit) of the knocks as written, in hex. It only has to tell an edited
    /// sequence from an unchanged one; it is not a secret.
    public var fingerprint: String

    public init(name: String, fingerprint: String) {
        self.name = name
        self.fingerprint = fingerprint
    }

    public init(_ sequence: KnockSequence) {
        let knocks = sequence.rotate.map { "rotate " + $0.protocols.map(\.rawValue).joined(separator: ",") + " " + $0.portsText }
        self.init(name: sequence.name, knocks: knocks ?? sequence.knocks.map(\.description).joined(separator: ","))
    }

    /// The sequence's `close` machine: the same name, a fingerprint of its close knocks.
    public init(closing sequence: KnockSequence) {
        self.init(name: sequence.name, knocks: "close " + (sequence.close ?? []).map(\.description).joined(separator: ","))
    }

    private init(name: String, knocks: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in knocks.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        self.init(name: name, fingerprint: String(repeating: "0", count: 16 - hex.count) + hex)
    }

    /// Where this machine's stage tags start looking for a free value: 1 to 2^24 - 1, from
    /// FNV-1a of the name and fingerprint.
    var tagBase: UInt32 {
        var hash: UInt32 = 0x811c_9dc5
        for byte in catalogComment.utf8 {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        return (hash ^ hash >> 24) % 0xff_ffff + 1
    }

    /// `NAME FINGERPRINT`: safe inside an nft comment, since names are validated.
    public var catalogComment: String { "\(name) \(fingerprint)" }

    /// Reads a catalog comment back; nil for anything knockc did not write.
    public init?(catalogComment: String) {
        let parts = catalogComment.split(separator: " ")
        guard parts.count == 2, NameRules.isValidSequenceName(String(parts[0])),
              parts[1].count == 16, parts[1].allSatisfy(\.isHexDigit) else { return nil }
        self.init(name: String(parts[0]), fingerprint: String(parts[1]))
    }
}
