import Foundation
import KnockCore

/// What a live knockc table holds right now, for `knockc status`: every grant, every knock in
/// progress, and bans. Times are the kernel's, to the millisecond (the sets are read over
/// netlink); `StatusReader.readStatus` leaves out elements with less than a second left, which
/// would show as `0s`, and the JSON form rounds down to whole seconds.
public struct TableStatus: Equatable, Sendable, Encodable {
    public var table: String
    public var grants: [Grant]
    public var progress: [SequenceProgress]
    /// Every source in the table's banned sets (put there by wrong knocks or a decoy),
    /// including bans that cannot take effect (`Ban.effective` false); empty when the spec
    /// bans nothing.
    public var bans: [Ban]

    public init(table: String, grants: [Grant] = [], progress: [SequenceProgress] = [], bans: [Ban] = []) {
        self.table = table
        self.grants = grants
        self.progress = progress
        self.bans = bans
    }
}

/// Reads `TableStatus` from the kernel of the current network namespace. Which sequences
/// open a grant's port, and the name and knock count of a knock in progress, come from the
/// table's catalog (`TableCatalog`), decoded like every other element.
public struct StatusReader {
    public init() {}

    /// The status of `table` (family inet), or nil when there is no such table.
    public func readStatus(table: String) throws(NftError) -> TableStatus? {
        let reader = try LiveStateReader()
        guard let state = try reader.read(table: table) else { return nil }
        let allowed = state.bans.isEmpty ? AddressIntervals() : try reader.readAllowed(table: table)
        return Self.status(state: state, allowed: allowed, table: table)
    }

    /// Builds the status from the live state, sorted by family and address.
    ///
    /// Elements with less than a second left are left out: the dump gives milliseconds, and
    /// such an element would show as `0s` left, or has ended and is only waiting for the
    /// kernel to collect it.
    static func status(state: LiveState, allowed: AddressIntervals = AddressIntervals(), table: String) -> TableStatus {
        let second = Duration(milliseconds: 1000)
        return TableStatus(
            table: table,
            grants: state.grants.filter { $0.expires >= second }.sorted { ($0.source, $0.port) < ($1.source, $1.port) },
            progress: state.progress.filter { $0.expires >= second }.sorted {
                ($0.source, $0.sequence ?? "", $0.stage) < ($1.source, $1.sequence ?? "", $1.stage)
            },
            bans: state.bans.filter { $0.expires >= second }.map { ban in
                var ban = ban
                ban.effective = !allowed.contains(ban.source)
                return ban
            }.sorted { $0.source < $1.source })
    }
}
