/// The table's description of itself, held in two constant sets so that any reader decodes
/// any element without a listing of the rules: for each knock machine (a sequence, or its
/// `close` knocks) its stage tags, name, knock fingerprint and number of knocks, and the
/// ports each sequence opens. Lowering writes it from the spec; `status`, `revoke`, `watch`
/// and `apply` read it back from the kernel.
public struct TableCatalog: Equatable, Sendable {
    /// A knock machine, by its stage-0 tag.
    public struct Entry: Equatable, Sendable {
        public var identity: SequenceIdentity
        public var knocks: Int
        /// The ports a grant machine opens, per family; empty for a close machine.
        public var opens: [IPFamily: [TransportPort]]
        /// True for a sequence's `close` knocks, whose element's comment ends in ` close`.
        public var closes: Bool

        public init(identity: SequenceIdentity, knocks: Int, opens: [IPFamily: [TransportPort]] = [:], closes: Bool = false) {
            self.identity = identity
            self.knocks = knocks
            self.opens = opens
            self.closes = closes
        }
    }

    public var entries: [UInt32: Entry]

    public init(entries: [UInt32: Entry] = [:]) {
        self.entries = entries
    }

    /// What the spec's table says of itself.
    public init(_ spec: KnockSpec) {
        var entries: [UInt32: Entry] = [:]
        for machine in KnockMachine.all(in: spec) {
            var opens: [IPFamily: [TransportPort]] = [:]
            if machine.purpose == .grant {
                for family in IPFamily.allCases where machine.sequence.mayKnock(from: family) {
                    opens[family] = machine.sequence.grants(family).sorted()
                }
            }
            entries[machine.tags.tag(0)] = Entry(identity: machine.identity, knocks: machine.stageCount, opens: opens,
                                                 closes: machine.purpose == .close)
        }
        self.init(entries: entries)
    }

    /// The names of the sequences that open `port` in `family`, sorted.
    public func sequencesOpening(_ port: TransportPort, family: IPFamily) -> [String] {
        Set(entries.values.filter { $0.opens[family]?.contains(port) == true }.map(\.identity.name)).sorted()
    }

    /// Every (family, port) some sequence opens, with the names of the sequences that do: what
    /// a reader of many grants looks up once instead of per grant.
    public var openers: [Opening: [String]] {
        var openers: [Opening: Set<String>] = [:]
        for entry in entries.values {
            for (family, ports) in entry.opens {
                for port in ports { openers[Opening(family: family, port: port), default: []].insert(entry.identity.name) }
            }
        }
        return openers.mapValues { $0.sorted() }
    }

    /// A guarded port in one family.
    public struct Opening: Hashable, Sendable {
        public var family: IPFamily
        public var port: TransportPort

        public init(family: IPFamily, port: TransportPort) {
            self.family = family
            self.port = port
        }
    }

    /// What ends a close machine's comment, after its name and fingerprint.
    static let closeMark = " close"

    /// The entry of the machine that `tag` (of any stage) belongs to.
    public func entry(forTag tag: UInt32) -> Entry? { entries[tag & ~0xff] }

    /// The two constant sets that hold the catalog in the table.
    public var sets: [SetIR] {
        let tags = entries.keys.sorted()
        let machines = tags.map { tag in
            let entry = entries[tag]!
            return SetIR.Element(key: [.tag(tag, .ipv4), .tag(tag | UInt32(entry.knocks), .ipv4)],
                                 comment: entry.identity.catalogComment + (entry.closes ? Self.closeMark : ""))
        }
        let openings = tags.flatMap { tag in
            IPFamily.allCases.flatMap { family in
                (entries[tag]!.opens[family] ?? []).map { port -> [Value] in
                    [.tag(tag, .ipv4), .family(family), .proto(port.proto), .port(port.port)]
                }
            }
        }
        return [
            SetIR(name: TableLayout.sequences.name, key: TableLayout.sequences.key, contents: .constant(machines),
                  comment: "each sequence's stage tags, first to last: name and knock fingerprint"),
            SetIR(name: TableLayout.openings.name, key: TableLayout.openings.key, contents: .plain(openings),
                  comment: "the ports each sequence opens, by its first stage tag"),
        ]
    }

    /// Adds what one element of the `sequences` set says; false for an element knockc did not
    /// write, which is skipped.
    @discardableResult
    public mutating func add(sequence key: [Value], comment: String?) -> Bool {
        guard key.count == 2, case .tag(let first, _) = key[0], case .tag(let last, _) = key[1],
              first & 0xff == 0, last & ~0xff == first, last & 0xff > 0,
              let comment else { return false }
        let closes = comment.hasSuffix(Self.closeMark)
        guard let identity = SequenceIdentity(catalogComment: closes ? String(comment.dropLast(Self.closeMark.count)) : comment)
        else { return false }
        let opens = entries[first]?.opens ?? [:]
        entries[first] = Entry(identity: identity, knocks: Int(last & 0xff), opens: opens, closes: closes)
        return true
    }

    /// Adds what one element of the `openings` set says. Read after the `sequences` set; an
    /// opening of a tag it does not name is skipped.
    @discardableResult
    public mutating func add(opening key: [Value]) -> Bool {
        guard key.count == 4, case .tag(let tag, _) = key[0], case .family(let family) = key[1],
              case .proto(let proto) = key[2], case .port(let port) = key[3], entries[tag] != nil else { return false }
        entries[tag]!.opens[family, default: []].append(TransportPort(proto, port))
        entries[tag]!.opens[family]!.sort()
        return true
    }
}

extension KnockSequence {
    /// False when `from` lists no source of `family`: the sequence has no knock rules there.
    func mayKnock(from family: IPFamily) -> Bool {
        from.map { $0.contains { $0.family == family } } ?? true
    }
}
