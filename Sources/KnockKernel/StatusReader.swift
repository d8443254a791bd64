import Foundation
import KnockCore

/// What a live knockc table holds right now, for `knockc status`: every grant, every knock in
/// progress, and bans. Times are the kernel's, to the millisecond (the sets are read over
/// netlink); `StatusReader.readStatus` leaves out elements with less than a second left, which
/// would show as `0s`, and the JSON form rounds down to whole seconds.
public struct TableStatus: Equatable, Sendable, Encodable {
    public var table: String
    public var grants: [Grant]
    public var progress: [Progress]
    /// Every source in the table's banned sets (put there by wrong knocks or a decoy),
    /// including bans that cannot take effect (`Ban.effective` false); empty when the spec
    /// bans nothing.
    public var bans: [Ban]

    public init(table: String, grants: [Grant] = [], progress: [Progress] = [], bans: [Ban] = []) {
        self.table = table
        self.grants = grants
        self.progress = progress
        self.bans = bans
    }

    /// One source granted one guarded port.
    public struct Grant: Equatable, Sendable, Encodable {
        public var family: IPFamily
        public var source: IPAddress
        public var port: TransportPort
        /// The sequences of the live table whose last knock opens this port, in name order. The
        /// kernel does not record which one granted it; empty when none opens it any more (a
        /// grant carried over from an earlier spec).
        public var sequences: [String]
        /// The grant's full length (its sequence's `open_for`), and the time it has left.
        public var timeout: Duration
        public var expires: Duration

        public init(family: IPFamily, source: IPAddress, port: TransportPort, sequences: [String], timeout: Duration, expires: Duration) {
            self.family = family
            self.source = source
            self.port = port
            self.sequences = sequences
            self.timeout = timeout
            self.expires = expires
        }

        enum CodingKeys: String, CodingKey {
            case source, family, port, sequences
            case timeout = "timeout_seconds"
            case expires = "expires_in_seconds"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(source.text, forKey: .source)
            try container.encode(family.rawValue, forKey: .family)
            try container.encode(port.description, forKey: .port)
            try container.encode(sequences, forKey: .sequences)
            try container.encode(timeout.milliseconds / 1000, forKey: .timeout)
            try container.encode(expires.milliseconds / 1000, forKey: .expires)
        }
    }

    /// A source part-way through a sequence: it has made `stage` of its `knocks` knocks.
    public struct Progress: Equatable, Sendable, Encodable {
        public var family: IPFamily
        public var source: IPAddress
        /// The sequence's name from the table's catalog; nil when the catalog does not name it.
        public var sequence: String?
        public var stage: Int
        /// The sequence's number of knocks, from the table's knock rules; nil when unknown.
        public var knocks: Int?
        /// Time left before the kernel forgets the progress (the step timeout).
        public var expires: Duration

        public init(family: IPFamily, source: IPAddress, sequence: String?, stage: Int, knocks: Int?, expires: Duration) {
            self.family = family
            self.source = source
            self.sequence = sequence
            self.stage = stage
            self.knocks = knocks
            self.expires = expires
        }

        enum CodingKeys: String, CodingKey {
            case source, family, sequence, stage
            case knocks = "of"
            case expires = "expires_in_seconds"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(source.text, forKey: .source)
            try container.encode(family.rawValue, forKey: .family)
            try container.encode(sequence, forKey: .sequence)
            try container.encode(stage, forKey: .stage)
            try container.encode(knocks, forKey: .knocks)
            try container.encode(expires.milliseconds / 1000, forKey: .expires)
        }
    }

    /// A banned source (by wrong knocks or a decoy) and the time its ban has left.
    public struct Ban: Equatable, Sendable, Encodable {
        public var family: IPFamily
        public var source: IPAddress
        public var expires: Duration
        /// False when the ban cannot take effect: the source is in the top-level `allow` list,
        /// which reaches every guarded port without knocking, so the knocks a ban ignores are
        /// knocks it never needs. Bans are triggered by packets whose source can be forged, so
        /// such a ban is often someone else's doing.
        public var effective: Bool

        public init(family: IPFamily, source: IPAddress, expires: Duration, effective: Bool = true) {
            self.family = family
            self.source = source
            self.expires = expires
            self.effective = effective
        }

        enum CodingKeys: String, CodingKey {
            case family, source, effective
            case expires = "expires_in_seconds"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(family.rawValue, forKey: .family)
            try container.encode(source.text, forKey: .source)
            try container.encode(expires.milliseconds / 1000, forKey: .expires)
            try container.encode(effective, forKey: .effective)
        }
    }
}

/// Reads `TableStatus` from the kernel of the current network namespace.
///
/// Grants are stored as `(source . protocol . port)`, without their sequence. The sequences
/// are read from the table itself, which adds nothing to the ruleset: the knock chains' grant
/// rules (commented `NAME: knock N of N, grant`) name the ports each sequence opens, and the
/// `sequences` catalog names the stage tags of knocks in progress.
public struct StatusReader {
    private let json: NftContext

    public init() throws(NftError) {
        json = try NftContext(output: .json)
    }

    /// The status of `table` (family inet), or nil when there is no such table.
    ///
    /// The rules come from a listing without set contents and the state from the state sets
    /// alone: one listing of everything took seconds for a large spec with many grants.
    public func readStatus(table: String) throws(NftError) -> TableStatus? {
        try readStatus(table: table, hidingEnded: true)
    }

    /// With `hidingEnded` false, elements with less than a second left are kept: `revoke`
    /// reads which ports each sequence opens from every grant there is.
    func readStatus(table: String, hidingEnded: Bool) throws(NftError) -> TableStatus? {
        let reader = try LiveStateReader()
        guard let rules = try json.listTable(table, elements: false),
              let state = try reader.read(table: table) else { return nil }
        let allowed = state.bans.isEmpty ? AddressIntervals() : try reader.readAllowed(table: table)
        return Self.status(state: state, rules: KnockRuleSummary.parse(rules), allowed: allowed, table: table,
                           hidingEnded: hidingEnded)
    }

    /// Builds the status from the live state and what the rules say about each sequence.
    ///
    /// Elements with less than a second left are left out, as the listing did when status read
    /// it through libnftables: the dump gives milliseconds, and such an element would show as
    /// `0s` left, or has ended and is only waiting for the kernel to collect it.
    static func status(state: LiveState, rules: KnockRuleSummary, allowed: AddressIntervals = AddressIntervals(),
                       table: String, hidingEnded: Bool = true) -> TableStatus {
        var state = state
        if hidingEnded {
            let second = Duration(milliseconds: 1000)
            state.grants.removeAll { $0.expires < second }
            state.progress.removeAll { $0.expires < second }
            state.bans.removeAll { $0.expires < second }
        }
        let grants = state.grants.map { grant in
            TableStatus.Grant(
                family: grant.family, source: grant.source, port: grant.port,
                sequences: rules.opening[Opening(family: grant.family, port: grant.port)]?.sorted() ?? [],
                timeout: grant.timeout, expires: grant.expires)
        }
        let progress = state.progress.map { element in
            let name = state.catalog[element.sequenceTag]?.name
            return TableStatus.Progress(
                family: element.family, source: element.source, sequence: name, stage: element.stage,
                knocks: name.flatMap { rules.knockCounts[$0] }, expires: element.expires)
        }
        return TableStatus(
            table: table,
            grants: grants.sorted { ($0.family.order, AddressOrder($0.source, $0.family), $0.port) < ($1.family.order, AddressOrder($1.source, $1.family), $1.port) },
            progress: progress.sorted {
                ($0.family.order, AddressOrder($0.source, $0.family), $0.sequence ?? "", $0.stage)
                    < ($1.family.order, AddressOrder($1.source, $1.family), $1.sequence ?? "", $1.stage)
            },
            bans: state.bans.map {
                TableStatus.Ban(family: $0.family, source: $0.source, expires: $0.expires,
                                effective: !allowed.contains($0.source, family: $0.family))
            }
                .sorted { ($0.family.order, AddressOrder($0.source, $0.family)) < ($1.family.order, AddressOrder($1.source, $1.family)) })
    }
}

/// A guarded port in one family.
struct Opening: Hashable {
    var family: IPFamily
    var port: TransportPort
}

/// What the knock chains' rules say about each sequence, read from their comments and their
/// grant statements:
/// - `NAME: knock N of COUNT...`: the sequence has COUNT knocks;
/// - `NAME: knock N of N, grant`: its `update @granted4 { ip saddr . tcp . 22 ... }`
///   statements are the ports it opens.
struct KnockRuleSummary {
    var knockCounts: [String: Int] = [:]
    var opening: [Opening: Set<String>] = [:]

    static func parse(_ json: String) -> KnockRuleSummary {
        var summary = KnockRuleSummary()
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else { return summary }
        for object in objects {
            guard let rule = object["rule"] as? [String: Any], let comment = rule["comment"] as? String,
                  let parsed = Comment(comment) else { continue }
            summary.knockCounts[parsed.sequence] = parsed.knocks
            guard parsed.grants else { continue }
            for statement in rule["expr"] as? [Any] ?? [] {
                guard let opening = grantedOpening(statement) else { continue }
                summary.opening[opening, default: []].insert(parsed.sequence)
            }
        }
        return summary
    }

    /// `{"set": {"op": "update", "set": "@granted4", "elem": ... {"concat": [saddr, "tcp", 22]}}}`.
    private static func grantedOpening(_ statement: Any) -> Opening? {
        guard let body = (statement as? [String: Any])?["set"] as? [String: Any],
              let op = body["op"] as? String, op == "update" || op == "add",
              let setName = body["set"] as? String,
              let family = IPFamily.allCases.first(where: { setName == "@" + RulesetLowering.Names.granted($0) })
        else { return nil }
        var element = body["elem"]
        // With a timeout, the key is wrapped: {"elem": {"val": KEY, "timeout": N}}.
        if let wrapper = (element as? [String: Any])?["elem"] as? [String: Any] { element = wrapper["val"] }
        guard let parts = (element as? [String: Any])?["concat"] as? [Any], parts.count == 3,
              let proto = transportProtocol(parts[1]),
              let port = parts[2] as? Int, (1...65535).contains(port) else { return nil }
        return Opening(family: family, port: TransportPort(proto, UInt16(port)))
    }

    /// libnftables writes the protocol by name (`"tcp"`); a number is accepted too.
    private static func transportProtocol(_ value: Any) -> TransportProtocol? {
        if let name = value as? String { return TransportProtocol(rawValue: name) }
        if let number = value as? Int { return TransportProtocol.allCases.first { Int($0.number) == number } }
        return nil
    }

    /// A knock rule's comment, as `RulesetLowering.knockRules` writes it.
    struct Comment: Equatable {
        var sequence: String
        var knocks: Int
        var grants: Bool

        init(sequence: String, knocks: Int, grants: Bool) {
            self.sequence = sequence
            self.knocks = knocks
            self.grants = grants
        }

        /// `NAME: knock N of COUNT` followed by nothing, `, grant` or ` again, from stage S`.
        init?(_ text: String) {
            guard let colon = text.range(of: ": knock ") else { return nil }
            let name = String(text[..<colon.lowerBound])
            let words = text[colon.upperBound...].split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard NameRules.isValidSequenceName(name), words.count >= 3, words[1] == "of",
                  let knock = Int(words[0]), knock >= 1 else { return nil }
            var countText = words[2]
            let grants = countText.hasSuffix(",") && words.count == 4 && words[3] == "grant"
            if grants { countText = countText.dropLast() }
            guard let count = Int(countText), (1...255).contains(count), knock <= count else { return nil }
            if grants && knock != count { return nil }
            sequence = name
            knocks = count
            self.grants = grants
        }
    }
}

extension IPFamily {
    /// IPv4 before IPv6 in listings.
    fileprivate var order: Int { self == .ipv4 ? 0 : 1 }
}

/// Orders addresses numerically (192.0.2.9 before 192.0.2.10), not as text.
private struct AddressOrder: Comparable {
    var bytes: [UInt8]
    var text: String

    init(_ address: IPAddress, _ family: IPFamily) {
        text = address.text
        var buffer = [UInt8](repeating: 0, count: 16)
        let parsed = inet_pton(family == .ipv4 ? AF_INET : AF_INET6, address.text, &buffer)
        bytes = parsed == 1 ? Array(buffer.prefix(family == .ipv4 ? 4 : 16)) : []
    }

    static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes) || (lhs.bytes == rhs.bytes && lhs.text < rhs.text)
    }
}
