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
/// - A table that is not knockc's shape (no catalog, objects knockc never makes, names
///   knockc would not write) is replaced whole, as the compiled script does.
public struct ApplyPlan: Equatable, Sendable {
    public var spec: KnockSpec
    public var table: TableIR
    public var replacesTable: Bool
    public var removals: [TableObject]
    /// Sets the packet path fills that stay in the kernel untouched.
    public var keptSets: [String]
    /// Sets whose definitions change: read, redefined, refilled.
    public var redefinedSets: [String]
    /// Old stage-0 tag to new, for unchanged sequences whose tags moved.
    public var retagged: [UInt32: UInt32]
    /// Guarded ports whose grants end: no sequence that opened them in the live table still does.
    public var endedOpenings: Set<TableCatalog.Opening>
    /// Sequences of the live table whose knocks changed, and those the spec no longer has:
    /// their knocks in progress end.
    public var changedSequences: [String]
    public var removedSequences: [String]
    /// The live catalog, which names the sequences of the grants that end.
    public var liveCatalog: TableCatalog

    /// Plans the apply of `spec` over a live table with `definitions` and `catalog` (nil
    /// definitions: there is no table; nil catalog: none knockc could read).
    public init(spec: KnockSpec, definitions: LiveDefinitions?, catalog: TableCatalog?) {
        self.spec = spec
        table = RulesetLowering.lower(spec).table
        removals = []
        keptSets = []
        redefinedSets = []
        retagged = [:]
        endedOpenings = []
        changedSequences = []
        removedSequences = []
        liveCatalog = catalog ?? TableCatalog()
        replacesTable = definitions.map { !Self.isKnockcShape($0) || catalog == nil } ?? false
        guard let definitions, !replacesTable, let catalog else {
            if let catalog { noteSequenceChanges(from: catalog) }
            return
        }

        var redeclared = Set<String>()
        for set in table.sets {
            guard let wanted = SetDefinition(set), let live = definitions.sets[set.name] else { continue }
            if live == wanted {
                keptSets.append(set.name)
                redeclared.insert(set.name)
            } else if !live.isMap && live.keyLength == wanted.keyLength && live.keyType == wanted.keyType {
                // Same key, another size or other flags: the elements fit the new set.
                redefinedSets.append(set.name)
            }
        }
        for (name, live) in definitions.sets.sorted(by: { $0.key < $1.key }) where !redeclared.contains(name) {
            removals.append(live.isMap ? .map(name) : .set(name))
        }
        removals += definitions.chains.sorted().map { .chain($0) }
        let counters = Set(table.counters.map(\.name))
        removals += definitions.counters.sorted().filter { !counters.contains($0) }.map { .counter($0) }

        let next = TableCatalog(spec)
        let nextTags = Dictionary(next.entries.map { ($0.value.identity, $0.key) }, uniquingKeysWith: { first, _ in first })
        for (tag, entry) in catalog.entries {
            if let moved = nextTags[entry.identity], moved != tag { retagged[tag] = moved }
        }
        let nextOpeners = next.openers
        for (opening, names) in catalog.openers where Set(names).isDisjoint(with: nextOpeners[opening] ?? []) {
            endedOpenings.insert(opening)
        }
        noteSequenceChanges(from: catalog)
    }

    private mutating func noteSequenceChanges(from catalog: TableCatalog) {
        let next = Set(TableCatalog(spec).entries.values.map(\.identity))
        let names = Set(spec.sequences.map(\.name))
        let live = Set(catalog.entries.values.map(\.identity))
        changedSequences = Set(live.subtracting(next).map(\.name).filter(names.contains)).sorted()
        removedSequences = Set(live.map(\.name).filter { !names.contains($0) }).sorted()
    }

    /// The sets whose elements the transaction needs: redefined sets, progress to move to new
    /// tags, and granted sets with grants that end. Empty on a plain re-apply.
    public var setsToRead: [String] {
        var sets = redefinedSets
        if !retagged.isEmpty {
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
        /// Elements refilled into redefined sets.
        public var carried = 0
        /// Knocks in progress moved to their sequence's new tags.
        public var movedProgress = 0

        public init() {}
    }

    /// The element operations, given `state`: the elements of `setsToRead`.
    public func elements(given state: LiveState) -> Elements {
        var result = Elements()
        let redefined = Set(redefinedSets)
        let machines = Dictionary(KnockMachine.all(in: spec).map { ($0.tags.tag(0), $0) }, uniquingKeysWith: { first, _ in first })
        // Less than a second left (listed as 0): about to go, and nft cannot add an element
        // that expires at once.
        func alive(_ expires: Duration) -> Bool { expires.milliseconds > 0 }
        var deletes: [ElementOperation] = []
        var adds: [ElementOperation] = []
        for grant in state.grants {
            if endedOpenings.contains(TableCatalog.Opening(family: grant.family, port: grant.port)) {
                var ended = grant
                ended.sequences = liveCatalog.sequencesOpening(grant.port, family: grant.family)
                result.endedGrants.append(ended)
                if !redefined.contains(grant.set.name) { deletes.append(.delete(grant)) }
            } else if redefined.contains(grant.set.name), alive(grant.expires) {
                adds.append(.add(grant))
                result.carried += 1
            }
        }
        for progress in state.progress {
            if let tag = retagged[progress.sequenceTag], let machine = machines[tag] {
                var moved = progress
                moved.tag = tag | UInt32(progress.stage)
                moved.expires = min(progress.expires, machine.sequence.stepTimeout)
                if !redefined.contains(progress.set.name) { deletes.append(.delete(progress)) }
                if alive(moved.expires), progress.stage < machine.knocks.count {
                    adds.append(.add(moved))
                    result.movedProgress += 1
                }
            } else if redefined.contains(progress.set.name), alive(progress.expires), machines[progress.sequenceTag] != nil {
                adds.append(.add(progress))
                result.carried += 1
            }
        }
        for ban in state.bans where redefined.contains(ban.set.name) && alive(ban.expires) {
            adds.append(.add(ban))
            result.carried += 1
        }
        // Deletes first: a moved element may land in the set it left.
        result.operations = deletes + adds
        return result
    }

    /// The transaction, given what `elements(given:)` made of the sets it read.
    public func update(_ elements: Elements) -> TableUpdate {
        var removals = self.removals
        for name in redefinedSets where !removals.contains(.set(name)) { removals.append(.set(name)) }
        return TableUpdate(table: table, removals: removals, elements: elements.operations)
    }

    /// Objects knockc makes, with names it would write: nothing that could read as nft syntax
    /// when spelled back into the transaction.
    static func isKnockcShape(_ definitions: LiveDefinitions) -> Bool {
        definitions.foreignObjects.isEmpty
            && (Array(definitions.sets.keys) + definitions.chains + definitions.counters).allSatisfy(NameRules.isSafeObjectName)
    }
}
