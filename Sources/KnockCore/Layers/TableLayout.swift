/// The live table as every reader and writer of it sees it: the name and key of each set
/// that holds state or describes the table, and how a key is laid out in the kernel's bytes.
/// Lowering declares the sets from here; `apply`, `status`, `revoke` and `watch` decode and
/// encode their elements through here, and nowhere else.
public enum TableLayout {
    /// Sources part-way through the first knock of a sequence: `(source . stage tag)`.
    public static func started(_ family: IPFamily) -> SetLayout {
        SetLayout(name: Names.started(family), fields: [.address(family), .stageTag(family)])
    }

    /// Sources past the first knock: `(source . stage tag)`.
    public static func progress(_ family: IPFamily) -> SetLayout {
        SetLayout(name: Names.progress(family), fields: [.address(family), .stageTag(family)])
    }

    /// The set that holds a source at `stage` (1 or more) of a sequence.
    public static func progress(_ family: IPFamily, stage: Int) -> SetLayout {
        stage == 1 ? started(family) : progress(family)
    }

    /// Granted sources: `(source . protocol . port)`.
    public static func granted(_ family: IPFamily) -> SetLayout {
        SetLayout(name: Names.granted(family), fields: [.address(family), .transportProtocol, .port])
    }

    /// Grants made, renewed or ended by a knock in the last `freshFor`, keyed as in `granted`:
    /// where the watcher finds what the packet path changed, without reading every grant.
    public static func fresh(_ family: IPFamily) -> SetLayout {
        SetLayout(name: Names.fresh(family), fields: [.address(family), .transportProtocol, .port])
    }

    /// How long a knock's change stays in the fresh set: the watcher must read it at least this
    /// often (with room to spare) to rely on it, and reads every grant when it could not.
    public static let freshFor = Duration.seconds(30)

    /// Banned sources.
    public static func banned(_ family: IPFamily) -> SetLayout {
        SetLayout(name: Names.banned(family), fields: [.address(family)])
    }

    /// Every set the packet path writes, which an apply keeps in place.
    /// A rotating sequence's knocks: `protocol . port . stage`, the stage typed as a port.
    public static func rotateKnocks(_ name: String) -> SetLayout {
        SetLayout(name: name, fields: [.transportProtocol, .port, .port])
    }

    /// The granted set's comment, which also tells readers (revoke) the prefix lengths grants
    /// are made with: `sources granted a guarded port` alone for whole addresses, else
    /// followed by `, by prefixes /64 /128`.
    public static func grantedComment(lengths: [Int], family: IPFamily) -> String {
        let base = "sources granted a guarded port"
        guard !lengths.isEmpty, lengths != [family.addressLength * 8] else { return base }
        return base + ", by prefixes " + lengths.map { "/\($0)" }.joined(separator: " ")
    }

    /// The prefix lengths `grantedComment` wrote; whole addresses for any other comment.
    public static func grantLengths(comment: String?, family: IPFamily) -> [Int] {
        guard let comment, let range = comment.range(of: ", by prefixes ") else { return [family.addressLength * 8] }
        let lengths = comment[range.upperBound...].split(separator: " ").compactMap { Int($0.dropFirst()) }
            .filter { (1...family.addressLength * 8).contains($0) }
        return lengths.isEmpty ? [family.addressLength * 8] : lengths
    }

    public static func stateSets(_ family: IPFamily) -> [SetLayout] {
        [started(family), progress(family), granted(family), fresh(family), banned(family)]
    }

    /// The catalog of sequences: `(stage-0 tag . last tag)`, commented with the sequence's
    /// name and knock fingerprint. The last tag's stage is the number of knocks.
    public static let sequences = SetLayout(name: Names.sequenceCatalog, fields: [.stageTag(.ipv4), .stageTag(.ipv4)])

    /// The ports each sequence opens: `(stage-0 tag . family . protocol . port)`.
    public static let openings = SetLayout(name: Names.openings, fields: [.stageTag(.ipv4), .family, .transportProtocol, .port])

    /// The nft names of everything lowering creates, in one place.
    public enum Names {
        public static let inputChain = "input"
        public static let dispatchMap = "dispatch"
        public static let portSet = "ports"
        public static let sequenceCatalog = "sequences"
        public static let openings = "openings"
        public static let decoyChain = "decoy"
        /// Knocks in progress past the first.
        public static func progress(_ family: IPFamily) -> String { "progress\(family.suffix)" }
        /// Knocks in progress at the first stage.
        public static func started(_ family: IPFamily) -> String { "started\(family.suffix)" }
        /// The set that holds a source at `stage` (1 or more) of a sequence.
        public static func progress(_ family: IPFamily, stage: Int) -> String { stage == 1 ? started(family) : progress(family) }
        /// Every set of knocks in progress.
        public static func progressSets(_ family: IPFamily) -> [String] { [started(family), progress(family)] }
        public static func granted(_ family: IPFamily) -> String { "granted\(family.suffix)" }
        public static func fresh(_ family: IPFamily) -> String { "fresh\(family.suffix)" }
        public static func banned(_ family: IPFamily) -> String { "banned\(family.suffix)" }
        /// The top-level `allow` list: sources that reach every guarded port without knocking.
        public static func allowed(_ family: IPFamily) -> String { AccessSets.name("allow", family) }
        public static func guardChain(_ family: IPFamily) -> String { "guard\(family.suffix)" }
        /// `forward:` (see `ForwardRules`): the base chain, its guard per family, the ports.
        public static let forwardChain = "forward"
        public static func forwardGuardChain(_ family: IPFamily) -> String { "guard_forward\(family.suffix)" }
        public static let forwardPorts = "forward_ports"
        /// `dnat:` (see `DnatRules`): the nat chain. Not `dnat`, which is an nft keyword.
        public static let dnatChain = "dnat_prerouting"
        // Counter names: a fixed prefix keeps a sequence name from ever reading as an nft keyword.
        public static let wrongKnocksCounter = "wrong_knocks"
        public static let bansCounter = "bans"
        /// Bumped by every rule that adds to, renews or deletes from the granted and banned
        /// sets (after it marks a grant's change in the fresh set), so the watcher can tell a
        /// quiet table in one small read.
        public static let stateChangesCounter = "state_changes"
        public static let grantsCounterPrefix = "grants_"
        public static let closesCounterPrefix = "closes_"
        /// Datagrams to a sequence's `spa` port that did not carry a valid unused token.
        public static let spaRejectedCounterPrefix = "spa_rejected_"
        /// A `spa` sequence's tokens, those not yet valid, and those used (see `AuthorizedPacketRules`).
        public static func spaTokens(_ sequence: String) -> String { "spa_\(sequence)" }
        public static func spaEarly(_ sequence: String) -> String { "spa_early_\(sequence)" }
        public static func spaUsed(_ sequence: String) -> String { "spa_used_\(sequence)" }
        /// A `rotate` sequence's knocks of the epochs of one parity, those not yet valid, and
        /// the last knocks that granted (see `RotatingKnockRules`).
        public static func rotateKnocks(_ sequence: String, _ parity: EpochParity) -> String { "rotate_\(parity)_\(sequence)" }
        public static func rotateEarly(_ sequence: String, _ parity: EpochParity) -> String { "rotate_early_\(parity)_\(sequence)" }
        public static func rotateUsed(_ sequence: String) -> String { "rotate_used_\(sequence)" }
        /// `open_once` (see `OneShotRules`): the ports, the connections let in, the count.
        public static let oneShotPorts = "once_ports"
        public static func oneShotFlows(_ family: IPFamily) -> String { "once_flows\(family.suffix)" }
        public static let oneShotCounter = "once_used"
        /// The ports whose grants hold the source's prefix of `length` (`grant_prefix`).
        public static func grantPorts(_ family: IPFamily, length: Int) -> String { "grant_ports\(family.suffix)_\(length)" }
        /// The chain every rotating range goes through, and each sequence's own, per family.
        public static let rotatingChain = "rotating"
        public static func rotateChain(_ family: IPFamily, _ sequence: String) -> String { "rotate\(family.suffix)_\(sequence)" }
        public static func grantsCounter(_ sequence: KnockSequence) -> String { grantsCounterPrefix + sequence.name }
        public static func closesCounter(_ sequence: KnockSequence) -> String { closesCounterPrefix + sequence.name }
        public static func knockChain(_ family: IPFamily, _ knock: Knock) -> String {
            switch knock {
            case .port(let port): "knock\(family.suffix)_\(port.proto.rawValue)_\(port.port)"
            case .icmpEcho(let length): "knock\(family.suffix)_icmp_\(length)"
            }
        }
    }
}

/// One set's name and key. The kernel stores a concatenated key as its fields one after
/// another, each padded to 4 bytes; numbers are in network order.
public struct SetLayout: Hashable, Sendable {
    public var name: String
    public var fields: [Field]

    /// What one part of a key means.
    public enum Field: Hashable, Sendable {
        /// A source address.
        case address(IPFamily)
        /// A stage tag, typed as an address of the family (see `StageTags`).
        case stageTag(IPFamily)
        /// `meta nfproto`.
        case family
        /// `meta l4proto`: tcp or udp.
        case transportProtocol
        case port

        public var type: KeyType {
            switch self {
            case .address(let family), .stageTag(let family): family.addressType
            case .family: .nfProto
            case .transportProtocol: .inetProto
            case .port: .inetService
            }
        }

        /// Bytes of data, before padding.
        var length: Int {
            switch self {
            case .address(let family), .stageTag(let family): family.addressLength
            case .family, .transportProtocol: 1
            case .port: 2
            }
        }

        var paddedLength: Int { (length + 3) & ~3 }

        /// The value in this field's `bytes` (its data, without padding).
        func decode(_ bytes: UnsafeRawBufferPointer) -> Value? {
            switch self {
            case .address(let family):
                return IPAddress(bytes: bytes, family: family).map { .address($0) }
            case .stageTag(let family):
                guard bytes.prefix(family.addressLength - 4).allSatisfy({ $0 == 0 }) else { return nil }
                return .tag(bytes.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, family)
            case .family:
                return IPFamily.allCases.first { $0.nfproto == bytes[0] }.map { .family($0) }
            case .transportProtocol:
                return TransportProtocol.allCases.first { $0.number == bytes[0] }.map { .proto($0) }
            case .port:
                let port = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
                return port > 0 ? .port(port) : nil
            }
        }
    }

    /// The key types, as a set declaration names them.
    public var key: [KeyType] { fields.map(\.type) }

    /// Bytes in a key as the kernel stores it.
    public var keyLength: Int { fields.reduce(0) { $0 + $1.paddedLength } }

    /// The key of an element as the kernel stores it; nil for bytes that are not a key this
    /// layout would write (wrong length, a tag outside the low 32 bits, an unknown protocol,
    /// port 0), which a reader skips rather than trusts.
    public func decode(_ key: UnsafeRawBufferPointer) -> [Value]? {
        var values: [Value] = []
        values.reserveCapacity(fields.count)
        return forEachValue(in: key) { values.append($0) } ? values : nil
    }

    /// The grant a key of the granted (or fresh) set names, decoded as `decode` does but into
    /// the grant's ID, without an array: a full reading decodes every grant, 100,000 at a time.
    public func decodeGrant(_ key: UnsafeRawBufferPointer) -> Grant.ID? {
        var source: IPAddress?
        var proto: TransportProtocol?
        var port: UInt16?
        let decoded = forEachValue(in: key) { value in
            switch value {
            case .address(let address): source = address
            case .proto(let value): proto = value
            case .port(let value): port = value
            default: break
            }
        }
        guard decoded, fields.count == 3, let source, let proto, let port else { return nil }
        return Grant.ID(source: source, port: TransportPort(proto, port))
    }

    /// Hands each field's value in `key` to `body`, in order; false as soon as one is not a
    /// value this layout would write.
    private func forEachValue(in key: UnsafeRawBufferPointer, _ body: (Value) -> Void) -> Bool {
        guard key.count == keyLength else { return false }
        var offset = 0
        for field in fields {
            guard let value = field.decode(UnsafeRawBufferPointer(rebasing: key[offset..<(offset + field.length)])) else {
                return false
            }
            offset += field.paddedLength
            body(value)
        }
        return true
    }

    /// The bytes the kernel stores for `values`; nil when they do not fit the fields.
    public func encode(_ values: [Value]) -> [UInt8]? {
        guard values.count == fields.count else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(keyLength)
        for (field, value) in zip(fields, values) {
            var part: [UInt8]
            switch (field, value) {
            case (.address(let family), .address(let address)) where address.family == family:
                part = address.bytes
            case (.stageTag(let family), .tag(let tag, let tagFamily)) where tagFamily == family:
                part = [UInt8](repeating: 0, count: family.addressLength - 4)
                    + [UInt8(tag >> 24), UInt8((tag >> 16) & 0xff), UInt8((tag >> 8) & 0xff), UInt8(tag & 0xff)]
            case (.family, .family(let family)):
                part = [family.nfproto]
            case (.transportProtocol, .proto(let proto)):
                part = [proto.number]
            case (.port, .port(let port)):
                part = [UInt8(port >> 8), UInt8(port & 0xff)]
            default:
                return nil
            }
            part += [UInt8](repeating: 0, count: field.paddedLength - field.length)
            bytes += part
        }
        return bytes
    }
}

extension IPFamily {
    /// NFPROTO_IPV4 or NFPROTO_IPV6, as `meta nfproto` holds it.
    var nfproto: UInt8 {
        switch self {
        case .ipv4: 2
        case .ipv6: 10
        }
    }
}
