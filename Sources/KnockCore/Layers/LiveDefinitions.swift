/// What a live table is made of, without any element of its sets: the named sets and maps
/// with their definitions, the chains and the counters. Enough to change the table in place
/// (`ApplyPlan`) and to know which sets can stay as they are.
public struct LiveDefinitions: Equatable, Sendable {
    /// True when the table is dormant (`flags dormant`): its chains see no packet, and a
    /// transaction that wakes it while changing its base chain is refused, so an apply
    /// replaces it whole.
    public var dormant = false
    public var sets: [String: SetDefinition]
    public var chains: [String]
    public var counters: [String]
    /// Objects of kinds knockc never makes (flowtables, quotas, limits, ...). A table that
    /// has any is not knockc's shape, and an apply replaces it whole.
    public var foreignObjects: [String]

    public init(sets: [String: SetDefinition] = [:], chains: [String] = [], counters: [String] = [], foreignObjects: [String] = []) {
        self.sets = sets
        self.chains = chains
        self.counters = counters
        self.foreignObjects = foreignObjects
    }
}

/// A named set or map as the kernel defines it: what decides whether a set can keep its
/// elements across an apply. Declaring an existing set again with another size or key is
/// accepted by the kernel and changes nothing, so a changed definition must be seen here.
public struct SetDefinition: Hashable, Sendable {
    public var isMap: Bool
    /// The comment nft keeps in the set's user data.
    public var comment: String?
    /// Anything else that shapes a set and that knockc never declares: statements on its
    /// elements (`counter`), a memory policy, a default timeout. Such a set is never kept.
    public var hasExtras = false
    /// nft's key type (concatenations packed 6 bits a part) and the key's length in bytes.
    public var keyType: UInt32
    public var keyLength: Int
    /// NFT_SET_* flags that shape the set: interval, timeout, dynamic (eval).
    public var flags: UInt32
    /// The bound on elements; 0 for none.
    public var size: Int

    public init(isMap: Bool, keyType: UInt32, keyLength: Int, flags: UInt32, size: Int,
                comment: String? = nil, hasExtras: Bool = false) {
        self.isMap = isMap
        self.comment = comment
        self.hasExtras = hasExtras
        self.keyType = keyType
        self.keyLength = keyLength
        self.flags = flags & Self.shapingFlags
        self.size = size
    }

    /// NFT_SET_INTERVAL, NFT_SET_TIMEOUT and NFT_SET_EVAL.
    public static let shapingFlags: UInt32 = 0x4 | 0x10 | 0x20
    static let dynamicFlags: UInt32 = 0x10 | 0x20

    /// The definition the kernel holds for a set the packet path fills, as lowering declares
    /// it; nil for a constant set, whose elements are the compiler's and are never kept.
    public init?(_ set: SetIR) {
        guard case .dynamic(let size) = set.contents else { return nil }
        let keyType = set.key.reduce(UInt32(0)) { $0 << 6 | $1.nftTypeID }
        let keyLength = set.key.reduce(0) { $0 + ($1.length + 3) & ~3 }
        self.init(isMap: false, keyType: keyType, keyLength: keyLength, flags: Self.dynamicFlags, size: size,
                  comment: set.comment)
    }

    /// Whether the elements of a set so defined fit one defined as `other`: the same key.
    public func holdsElements(of other: SetDefinition) -> Bool {
        !isMap && !other.isMap && keyType == other.keyType && keyLength == other.keyLength
    }
}

extension KeyType {
    /// nft's number for the type (`enum datatypes`).
    var nftTypeID: UInt32 {
        switch self {
        case .nfProto: 2
        case .ipv4Address: 7
        case .ipv6Address: 8
        case .inetProto: 12
        case .inetService: 13
        // A raw payload field is a plain integer to nft.
        case .token: 4
        }
    }

    /// Bytes of data, before padding.
    var length: Int {
        switch self {
        case .nfProto, .inetProto: 1
        case .inetService: 2
        case .ipv4Address: 4
        case .ipv6Address, .token: 16
        }
    }
}
