/// How `apply` turns the live table into the spec's in one transaction, keeping what the
/// packet path wrote in the kernel instead of reading it out and writing it back.
///
/// - Sets the packet path fills (grants, knocks in progress, bans, rate meters) whose
///   definitions are unchanged stay as they are; they are not read.
/// - Chains, maps, constant sets and the catalog are replaced; counters of the new spec keep
///   counting.
/// - Stage tags follow a sequence's identity (`KnockMachine.all`), so an unchanged sequence's
///   knocks in progress stay valid. A changed or removed sequence's tags are no longer in any
///   rule: its knocks in progress can no longer advance and time out.
/// - A grant whose port no sequence that opened it still opens ends now (`endedGrants`).
/// - A set whose definition changes (for example `max_tracked_sources`) is read, redefined and
///   refilled, and so is progress whose sequence is unchanged but whose tags moved (a table
///   written by an older knockc, or a new sequence taking an old one's tags).
/// - A table that is not knockc's shape (dormant, objects knockc never makes, names knockc
///   would not write, no catalog) is replaced whole, as the compiled script does; what it
///   holds is carried into the new table when its catalog can be read.
public struct ApplyPlan: Equatable, Sendable {
    public var spec: KnockSpec
    public var table: TableIR
    /// Why the live table is replaced whole rather than changed in place; nil when it is not.
    public var replacement: Replacement?
    public var removals: [TableObject]
    /// Sets the packet path fills that stay in the kernel untouched.
    public var keptSets: [String]
    /// Sets whose definitions change: read, redefined, refilled (when their key allows it).
    public var redefinedSets: [String]
    /// Old stage-0 tag to new, for unchanged sequences whose tags moved.
    public var retagged: [UInt32: UInt32]
    /// Tags that named one sequence in the live table and name another in the new one (a
    /// sequence took a vacated tag): knocks in progress there are deleted, not inherited.
    public var reoccupiedTags: Set<UInt32>
    /// Guarded ports whose grants end: no sequence that opened them in the live table still does.
    public var endedOpenings: Set<TableCatalog.Opening>
    /// Sequences of the live table whose knocks changed, and those the spec no longer has:
    /// their knocks in progress end.
    public var changedSequences: [String]
    public var removedSequences: [String]
    /// The live catalog, which names the sequences of the grants that end.
    public var liveCatalog: TableCatalog

    /// Why a live table cannot be changed in place.
    public enum Replacement: Equatable, Sendable, CustomStringConvertible {
        case dormant
        case foreignObjects([String])
        case unknownNames([String])
        case noCatalog

        public var description: String {
            switch self {
            case .dormant: "it is dormant"
            case .foreignObjects(let names): "it has objects knockc does not make: \(names.sorted().joined(separator: ", "))"
            case .unknownNames(let names): "it has objects knockc would not name so: \(names.sorted().prefix(5).joined(separator: ", "))"
            case .noCatalog: "it has no catalog of knockc's sequences"
            }
        }
    }

    /// An element about to time out is left to do so: deleting it could race its expiry and
    /// fail the whole transaction, and carrying it could not outlive it.
    public static let leftToExpire = Duration(milliseconds: 2000)

    /// Plans the apply of `spec` over a live table with `definitions` and `catalog` (nil
    /// definitions: there is no table; nil catalog: none knockc could read).
    public init(spec: KnockSpec, definitions: LiveDefinitions?, catalog: TableCatalog?) {
        self.spec = spec
        table = RulesetLowering.lower(spec).table
        removals = []
        keptSets = []
        redefinedSets = []
        retagged = [:]
        reoccupiedTags = []
        endedOpenings = []
        changedSequences = []
        removedSequences = []
        liveCatalog = catalog ?? TableCatalog()
        guard let definitions else { return }
        replacement = Self.replacement(definitions, catalog: catalog)
        let next = TableCatalog(spec)
        if let catalog {
            noteSequenceChanges(from: catalog, to: next)
        }
        guard replacement == nil else {
            // Everything is read and whatever still fits is carried into the new table.
            redefinedSets = table.sets.compactMap { set in
                guard let wanted = SetDefinition(set), let live = definitions.sets[set.name], wanted.holdsElements(of: live)
                else { return nil }
                return set.name
            }
            return
        }

        var redeclared = Set<String>()
        for set in table.sets {
            guard let wanted = SetDefinition(set), let live = definitions.sets[set.name] else { continue }
            if live == wanted {
                keptSets.append(set.name)
                redeclared.insert(set.name)
            } else if wanted.holdsElements(of: live) {
                redefinedSets.append(set.name)
            }
        }
        for (name, live) in definitions.sets.sorted(by: { $0.key < $1.key }) where !redeclared.contains(name) {
            removals.append(live.isMap ? .map(name) : .set(name))
        }
        removals += definitions.chains.sorted().map { .chain($0) }
        let counters = Set(table.counters.map(\.name))
        removals += definitions.counters.sorted().filter { !counters.contains($0) }.map { .counter($0) }
    }

    private mutating func noteSequenceChanges(from catalog: TableCatalog, to next: TableCatalog) {
        let nextTags = Dictionary(next.entries.map { ($0.value.identity, $0.key) }, uniquingKeysWith: { first, _ in first })
        for (tag, entry) in catalog.entries {
            if let moved = nextTags[entry.identity], moved != tag { retagged[tag] = moved }
            if let now = next.entries[tag], now.identity != entry.identity { reoccupiedTags.insert(tag) }
        }
        let nextOpeners = next.openers
        for (opening, names) in catalog.openers where Set(names).isDisjoint(with: nextOpeners[opening] ?? []) {
            endedOpenings.insert(opening)
        }
        let identities = Set(next.entries.values.map(\.identity))
        let names = Set(spec.sequences.map(\.name))
        let live = Set(catalog.entries.values.map(\.identity))
        changedSequences = Set(live.subtracting(identities).map(\.name).filter(names.contains)).sorted()
        removedSequences = Set(live.map(\.name).filter { !names.contains($0) }).sorted()
    }

    private static func replacement(_ definitions: LiveDefinitions, catalog: TableCatalog?) -> Replacement? {
        if definitions.dormant { return .dormant }
        if !definitions.foreignObjects.isEmpty { return .foreignObjects(definitions.foreignObjects) }
        let names = Array(definitions.sets.keys) + definitions.chains + definitions.counters
        let unknown = names.filter { !isKnockcObjectName($0) }
        if !unknown.isEmpty { return .unknownNames(unknown) }
        return catalog == nil ? .noCatalog : nil
    }

    /// Whether knockc could have named an object so, which makes the name safe to spell back
    /// into nft commands: lowercase letters, digits, `-` and `_`, and either an `_` (no nft
    /// keyword has one) or one of knockc's own plain names.
    static func isKnockcObjectName(_ name: String) -> Bool {
        guard let first = name.utf8.first, (0x61...0x7a).contains(first), name.utf8.count <= 64,
              name.utf8.allSatisfy({ (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5f || $0 == 0x2d })
        else { return false }
        return name.contains("_") || plainNames.contains(name)
    }

    private static let plainNames: Set<String> = {
        var names: Set<String> = ["input", "forward", "dispatch", "ports", "sequences", "openings", "decoy", "decoys", "bans", "rotating"]
        for stem in ["guard", "started", "progress", "granted", "fresh", "banned", "allow", "deny", "allowports", "strict", "strictknocks"] {
            for family in IPFamily.allCases { names.insert(stem + family.suffix) }
        }
        return names
    }()

    /// The sets whose elements the transaction needs: redefined or replaced sets, progress
    /// to move or to delete, and granted sets with grants that end. Empty on a plain
    /// re-apply.
    public var setsToRead: [String] {
        var sets = redefinedSets
        if !retagged.isEmpty || !reoccupiedTags.isEmpty {
            sets += IPFamily.allCases.flatMap { [TableLayout.started($0).name, TableLayout.progress($0).name] }
        }
        for family in IPFamily.allCases where endedOpenings.contains(where: { $0.family == family }) {
            sets.append(TableLayout.granted(family).name)
        }
        var seen = Set<String>()
        return sets.filter { seen.insert($0).inserted }
    }

    /// What the transaction does to the elements it read.
    public struct Elements: Equatable, Sendable {
        public var operations: [ElementOperation] = []
        /// Grants ended because the new spec no longer opens their ports for their sequences,
        /// each named by the sequences of the live table that opened it.
        public var endedGrants: [Grant] = []
        /// Elements refilled into redefined or replaced sets.
        public var carried = 0
        /// Knocks in progress moved to their sequence's new tags.
        public var movedProgress = 0

        public init() {}
    }

    /// The element operations, given `state`: the elements of `setsToRead`.
    public func elements(given state: LiveState) -> Elements {
        var result = Elements()
        let rewritten = Set(redefinedSets)
        let machines = Dictionary(KnockMachine.all(in: spec).map { ($0.tags.tag(0), $0) }, uniquingKeysWith: { first, _ in first })
        let nextIdentities = Dictionary(machines.map { ($0.key, $0.value.identity) }, uniquingKeysWith: { first, _ in first })
        // Less than a second left (listed as 0): about to go, and nft cannot add an element
        // that expires at once.
        func alive(_ expires: Duration) -> Bool { expires.milliseconds > 0 }
        func deletable(_ expires: Duration) -> Bool { expires >= Self.leftToExpire }
        var deletes: [ElementOperation] = []
        var adds: [ElementOperation] = []
        for grant in state.grants {
            if endedOpenings.contains(TableCatalog.Opening(family: grant.family, port: grant.port)) {
                var ended = grant
                ended.sequences = liveCatalog.sequencesOpening(grant.port, family: grant.family)
                result.endedGrants.append(ended)
                if !rewritten.contains(grant.set.name), deletable(grant.expires) { deletes.append(.delete(grant)) }
            } else if rewritten.contains(grant.set.name), alive(grant.expires) {
                adds.append(.add(grant))
                result.carried += 1
            }
        }
        for progress in state.progress {
            let inPlace = !rewritten.contains(progress.set.name)
            if let tag = retagged[progress.sequenceTag], let machine = machines[tag] {
                var moved = progress
                moved.tag = tag | UInt32(progress.stage)
                moved.expires = min(progress.expires, machine.sequence.stepTimeout)
                if alive(moved.expires), progress.stage < machine.stageCount {
                    adds.append(.add(moved))
                    result.movedProgress += 1
                }
                // The old tag names nothing now; left in place it only waits to time out,
                // unless a sequence took it over.
                if inPlace, reoccupiedTags.contains(progress.sequenceTag), deletable(progress.expires) {
                    deletes.append(.delete(progress))
                }
            } else if inPlace {
                if reoccupiedTags.contains(progress.sequenceTag), alive(progress.expires) { deletes.append(.delete(progress)) }
            } else if alive(progress.expires), let identity = liveCatalog.entry(forTag: progress.tag)?.identity,
                      nextIdentities[progress.sequenceTag] == identity {
                adds.append(.add(progress))
                result.carried += 1
            }
        }
        for ban in state.bans where rewritten.contains(ban.set.name) && alive(ban.expires) {
            adds.append(.add(ban))
            result.carried += 1
        }
        // Deletes first: a moved element may land in the set it left.
        result.operations = deletes + adds
        return result
    }

    /// The transaction, given what `elements(given:)` made of the sets it read.
    public func update(_ elements: Elements) -> TableUpdate {
        guard replacement == nil else { return TableUpdate(table: table, replacesTable: true, elements: elements.operations) }
        var removals = self.removals
        for name in redefinedSets where !removals.contains(.set(name)) { removals.append(.set(name)) }
        return TableUpdate(table: table, removals: removals, elements: elements.operations)
    }
}
