import KnockCore

/// Puts a compiled spec into the kernel of the current network namespace.
public struct RulesetApplier {
    private let nft: NftContext

    public init() throws(NftError) {
        nft = try NftContext()
    }

    /// What an apply kept of the live table's state.
    public struct Report: Equatable, Sendable {
        public var grantsKept: Int
        public var progressKept: Int
        public var progressDropped: Int
    }

    /// Replaces the spec's table in one transaction and carries the live grants and knocks in
    /// progress over into it (see `StateCarryOver`). A knock that lands in the instant between
    /// reading the state and committing may need repeating; nothing else is lost.
    @discardableResult
    public func apply(_ spec: KnockSpec) throws(NftError) -> Report {
        let live = try LiveStateReader().read(table: spec.tableName) ?? LiveState()
        let carried = StateCarryOver.plan(live, into: spec)
        // What the kernel counted so far goes on counting in the new table.
        let counters = try CounterReader(table: spec.tableName).values()
        try apply(Pipeline.nftScript(for: spec, counters: counters) + carried.commands(table: spec.tableName))
        return Report(grantsKept: carried.grants.count, progressKept: carried.progress.count,
                      progressDropped: carried.droppedProgress)
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
