import KnockCore

/// Puts a compiled spec into the kernel of the current network namespace.
public struct RulesetApplier {
    private let nft: NftContext

    public init() throws(NftError) { nft = try NftContext() }

    /// Applies `script` as one transaction. When the kernel refuses any part, nothing changes.
    public func apply(_ script: String) throws(NftError) {
        try nft.run(script)
    }

    /// Lets the kernel check the whole transaction without committing it.
    public func check(_ script: String) throws(NftError) {
        try nft.run(script, dryRun: true)
    }

    /// The live definition of `table`, or nil when there is no such table.
    public func listTable(_ table: String) throws(NftError) -> String? {
        precondition(NameRules.isValidTableName(table), "not a table name: \(table)")
        do {
            return try nft.run("list table inet \(table)")
        } catch where error.message.contains("No such file or directory") {
            return nil
        }
    }
}
