/// Which dynamic elements of the live table survive an apply, as nft commands that run in the
/// same transaction as the new table (after it is defined), so a re-apply loses no grant and
/// no knock in progress.
///
/// - Grants are kept as they are (source, port, time left): their set keeps its type across
///   every spec. A grant for a port the new spec no longer guards does no harm and expires.
/// - Progress is kept for sequences whose name and knocks are unchanged, moved to the stage
///   tags of the new table, with at most the new step timeout left. Progress of a removed or
///   edited sequence is dropped: its next knock would mean something else.
public struct StateCarryOver: Equatable, Sendable {
    public var progress: [ProgressElement]
    public var grants: [GrantElement]
    /// Bans keep their time left when the new spec still bans; otherwise they are dropped.
    public var bans: [BanElement] = []
    /// Knocks in progress that could not be carried over.
    public var droppedProgress: Int

    public init(progress: [ProgressElement], grants: [GrantElement], droppedProgress: Int) {
        self.progress = progress
        self.grants = grants
        self.droppedProgress = droppedProgress
    }

    public static func plan(_ live: LiveState, into spec: KnockSpec) -> StateCarryOver {
        // Less than a second left (listed as 0): about to go, and nft cannot add an element
        // that expires at once.
        var live = live
        live.progress.removeAll { $0.expires.milliseconds <= 0 }
        live.grants.removeAll { $0.expires.milliseconds <= 0 }
        live.bans.removeAll { $0.expires.milliseconds <= 0 }
        var newTags: [SequenceIdentity: (tags: StageTags, machine: KnockMachine)] = [:]
        for machine in KnockMachine.all(in: spec) {
            newTags[machine.identity] = (StageTags(sequenceIndex: machine.tagIndex, family: .ipv4), machine)
        }
        var carried: [ProgressElement] = []
        for element in live.progress {
            guard let identity = live.catalog[element.sequenceTag],
                  let target = newTags[identity],
                  (1..<target.machine.knocks.count).contains(element.stage)
            else { continue }
            var moved = element
            moved.tag = target.tags.tag(element.stage)
            moved.expires = min(element.expires, target.machine.sequence.stepTimeout)
            carried.append(moved)
        }
        var plan = StateCarryOver(progress: carried, grants: live.grants, droppedProgress: live.progress.count - carried.count)
        if spec.bans { plan.bans = live.bans }
        return plan
    }

    /// `add element` commands for the new table; empty when there is nothing to carry.
    public func commands(table: String) -> String {
        var lines: [String] = []
        for family in IPFamily.allCases {
            for set in RulesetLowering.Names.progressSets(family) {
                let progress = self.progress.filter { $0.family == family && RulesetLowering.Names.progress(family, stage: $0.stage) == set }.map {
                    "\($0.source) . \(family.address($0.tag)) timeout \($0.expires) expires \($0.expires)"
                }
                if !progress.isEmpty {
                    lines.append("add element inet \(table) \(set) { \(progress.joined(separator: ", ")) }")
                }
            }
            let grants = self.grants.filter { $0.family == family }.map {
                "\($0.source) . \($0.port.proto.number) . \($0.port.port) timeout \($0.timeout) expires \($0.expires)"
            }
            if !grants.isEmpty {
                lines.append("add element inet \(table) \(RulesetLowering.Names.granted(family)) { \(grants.joined(separator: ", ")) }")
            }
            let bans = self.bans.filter { $0.family == family }.map { "\($0.source) timeout \($0.expires) expires \($0.expires)" }
            if !bans.isEmpty {
                lines.append("add element inet \(table) \(RulesetLowering.Names.banned(family)) { \(bans.joined(separator: ", ")) }")
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }
}
