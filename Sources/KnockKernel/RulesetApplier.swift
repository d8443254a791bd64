import KnockCore

/// Puts a compiled spec into the kernel of the current network namespace.
public struct RulesetApplier {
    private let nft: NftContext

    public init() throws(NftError) {
        nft = try NftContext()
    }

    /// What an apply did to the live table's state.
    public struct Report: Equatable, Sendable {
        /// True when the live table was changed in place (its state sets kept in the kernel);
        /// false when there was none, or when it was not knockc's shape and was replaced whole.
        public var inPlace = false
        /// State sets left untouched in the kernel, with everything in them.
        public var keptSets: [String] = []
        /// State sets whose definitions changed: read, redefined and refilled.
        public var redefinedSets: [String] = []
        /// Elements refilled into redefined sets, and knocks in progress moved to new tags.
        public var carried = 0
        public var movedProgress = 0
        /// Grants ended because no sequence that opened their port still opens it.
        public var endedGrants: [Grant] = []
        /// Sequences whose knocks changed, or that the spec removed: their knocks in progress end.
        public var changedSequences: [String] = []
        public var removedSequences: [String] = []
    }

    /// One line for the operator: what was kept, and what ended.
    public static func summary(_ report: Report, table: String, sequences: Int) -> String {
        var parts = ["applied table inet \(table): \(sequences) sequence\(sequences == 1 ? "" : "s")"]
        if report.inPlace {
            parts.append("grants, knocks in progress and bans stayed in the kernel")
        }
        if !report.redefinedSets.isEmpty {
            parts.append("redefined set\(report.redefinedSets.count == 1 ? "" : "s") \(report.redefinedSets.joined(separator: ", ")) "
                         + "and carried \(report.carried) element\(report.carried == 1 ? "" : "s") over")
        }
        if report.movedProgress > 0 {
            parts.append("moved \(report.movedProgress) knock\(report.movedProgress == 1 ? "" : "s") in progress to new stage tags")
        }
        let ended = report.changedSequences + report.removedSequences
        if !ended.isEmpty {
            parts.append("knocks in progress of changed or removed sequences end: \(ended.joined(separator: ", "))")
        }
        if !report.endedGrants.isEmpty {
            let count = report.endedGrants.count
            parts.append("ended \(count) grant\(count == 1 ? "" : "s") of ports their sequences no longer open")
        }
        return parts.joined(separator: "; ")
    }

    /// Changes the spec's table in one transaction, in place (see `ApplyPlan`): the sets the
    /// packet path fills stay in the kernel and are not read, unless their definitions change.
    @discardableResult
    public func apply(_ spec: KnockSpec) throws(NftError) -> Report {
        let reader = try LiveStateReader()
        let definitions = try reader.definitions(table: spec.tableName)
        let catalog = definitions == nil ? nil : try reader.catalog(table: spec.tableName)
        let plan = ApplyPlan(spec: spec, definitions: definitions, catalog: catalog)
        var report = Report(inPlace: definitions != nil && !plan.replacesTable, keptSets: plan.keptSets,
                            redefinedSets: plan.redefinedSets, changedSequences: plan.changedSequences,
                            removedSequences: plan.removedSequences)
        if plan.replacesTable {
            try apply(Pipeline.nftScript(for: RulesetIR(table: plan.table)))
            return report
        }
        let toRead = plan.setsToRead
        let state = toRead.isEmpty || catalog == nil
            ? LiveState() : try reader.state(table: spec.tableName, catalog: catalog!, sets: Set(toRead))
        let elements = plan.elements(given: state)
        report.carried = elements.carried
        report.movedProgress = elements.movedProgress
        report.endedGrants = elements.endedGrants
        try apply(NftTextRenderer.render(plan.update(elements)))
        return report
    }

    /// Applies `script` as one transaction. When the kernel refuses any part, nothing changes.
    public func apply(_ script: String) throws(NftError) {
        try nft.run(script)
    }

    /// Lets the kernel check the whole transaction without committing it.
    public func check(_ script: String) throws(NftError) {
        try nft.run(script, dryRun: true)
    }

    /// The live definition of `table` without the state the packet path writes (see
    /// `NftContext.listDefinitions`), or nil when there is no such table.
    public func listDefinitions(_ table: String) throws(NftError) -> String? {
        try nft.listDefinitions(table)
    }

    /// The live definition of `table`, or nil when there is no such table.
    public func listTable(_ table: String) throws(NftError) -> String? {
        try nft.listTable(table)
    }
}
