import KnockCore

/// Reads the table's named counters (see `RulesetLowering.counters`; an apply keeps them counting): what the kernel itself
/// counted, whether or not a watcher was running.
public struct CounterReader {
    private let dump: NetlinkDump
    public let table: String

    public init(table: String) throws(NftError) {
        precondition(NameRules.isValidTableName(table), "not a table name: \(table)")
        dump = try NetlinkDump.opened()
        self.table = table
    }

    /// Packets counted by each counter, by name; empty when the table does not exist.
    public func packets() throws(NftError) -> [String: UInt64] {
        try values().mapValues(\.packets)
    }

    /// Packets and bytes of each counter, by name; empty when the table does not exist.
    public func values() throws(NftError) -> [String: (packets: UInt64, bytes: UInt64)] {
        do {
            return try dump.counters(table: table)
        } catch {
            throw NftError(command: "netlink dump of the counters of table inet \(table)", message: error.description)
        }
    }
}
