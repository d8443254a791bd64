import Foundation
import KnockCore
import KnockSecrets

/// Puts a compiled spec into the kernel of the current network namespace.
public struct RulesetApplier {
    private let nft: NftContext

    public init() throws(NftError) {
        nft = try NftContext()
    }

    /// What an apply did to the live table's state.
    public struct Report: Equatable, Sendable {
        /// True when the live table was changed in place (its state sets kept in the kernel).
        public var inPlace = false
        /// Why the live table was replaced whole instead; nil when it was not (or there was none).
        public var replacement: ApplyPlan.Replacement?
        /// State sets left untouched in the kernel, with everything in them.
        public var keptSets: [String] = []
        /// State sets whose definitions changed: read, redefined and refilled.
        public var redefinedSets: [String] = []
        /// Elements refilled into redefined or replaced sets, and knocks in progress moved to new tags.
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
        if let replacement = report.replacement {
            parts.append("replaced the live table whole, since \(replacement), and carried \(report.carried) "
                         + "element\(report.carried == 1 ? "" : "s") of its state over")
        } else if !report.redefinedSets.isEmpty {
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
    ///
    /// When the transaction deletes elements it read (grants that end, progress whose tag
    /// another sequence took), one of them may vanish before the commit (a close, a revoke),
    /// which makes the kernel refuse the whole transaction; the apply then reads again and
    /// retries, a few times.
    ///
    /// `adding` puts more elements into the new table in the same transaction: a revert gives
    /// back the grants the apply it undoes had ended.
    @discardableResult
    public func apply(_ spec: KnockSpec, adding extra: [ElementOperation] = []) throws(NftError) -> Report {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try applyOnce(spec, adding: extra)
            } catch where attempt < 4 && error.isMissingObject {
                continue
            }
        }
    }

    private func applyOnce(_ spec: KnockSpec, adding extra: [ElementOperation]) throws(NftError) -> Report {
        let reader = try LiveStateReader()
        let definitions = try reader.definitions(table: spec.tableName)
        let catalog = definitions == nil ? nil : try reader.catalog(table: spec.tableName)
        let plan = ApplyPlan(spec: spec, definitions: definitions, catalog: catalog)
        var report = Report(inPlace: definitions != nil && plan.replacement == nil, replacement: plan.replacement,
                            keptSets: plan.keptSets, redefinedSets: plan.replacement == nil ? plan.redefinedSets : [],
                            changedSequences: plan.changedSequences, removedSequences: plan.removedSequences)
        let toRead = plan.setsToRead
        let state = toRead.isEmpty || catalog == nil
            ? LiveState() : try reader.state(table: spec.tableName, catalog: catalog!, sets: Set(toRead))
        var elements = plan.elements(given: state)
        try Self.checkFit(elements, into: plan.table)
        elements.operations += try Self.tokens(spec) + extra
        report.carried = elements.carried
        report.movedProgress = elements.movedProgress
        report.endedGrants = elements.endedGrants
        try apply(NftTextRenderer.render(plan.update(elements)))
        return report
    }

    /// Refuses, before the kernel does with a bare "Too many open files in system", to carry
    /// more elements into a set than its new size holds (a lowered `max_tracked_sources`).
    static func checkFit(_ elements: ApplyPlan.Elements, into table: TableIR) throws(NftError) {
        var counts: [String: Int] = [:]
        for operation in elements.operations where operation.kind == .add { counts[operation.set, default: 0] += 1 }
        for set in table.sets {
            guard case .dynamic(let size) = set.contents, let count = counts[set.name], count > size else { continue }
            throw NftError(command: "carry the elements of set \(set.name)",
                           message: "set \(set.name) holds \(count) live elements, more than its new size of \(size) "
                               + "(max_tracked_sources); raise it, or apply once they have timed out")
        }
    }

    /// The tokens of the spec's `spa` sequences and the knocks of its `rotate` sequences,
    /// computed now from their secrets (root's own, read only here); the sets that hold them
    /// are written anew at every apply.
    static func tokens(_ spec: KnockSpec) throws(NftError) -> [ElementOperation] {
        var operations: [ElementOperation] = []
        let now = Date()
        for sequence in spec.sequences {
            guard let windows = sequence.windows else { continue }
            let secret: Secret
            do {
                secret = try Secret.ofServer(at: windows.secret)
            } catch {
                throw NftError(command: "read the secret of sequence \(sequence.name)", message: error.description)
            }
            if let spa = sequence.spa {
                operations += TokenSchedule.operations(sequence, spa, secret: secret, now: now)
            }
            if let rotate = sequence.rotate {
                do {
                    operations += try RotationSchedule.operations(sequence, rotate, secret: secret, now: now)
                } catch {
                    throw NftError(command: "derive the rotating knocks of sequence \(sequence.name)", message: error.description)
                }
            }
        }
        return operations
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
