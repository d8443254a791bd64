import Foundation
import KnockCore

/// Reads what `knockc watch` reports on: the granted sets, each reading compared with the
/// one before (see `GrantSnapshot`). It only reads; the kernel decides who gets in whether
/// or not a watcher runs.
///
/// Why reading the sets rather than NFLOG: the kernel sends no netlink event for elements
/// added from the packet path or timed out, so expiries can only be seen by reading; and one
/// mechanism for both grants and expiries keeps the events consistent with `status`, costs
/// the packet path nothing, and survives a watcher restart, since the sets are the truth.
public final class GrantWatcher {
    private let json: NftContext
    public let table: String
    private var catalog: [UInt32: SequenceIdentity]?
    private var opening: [Opening: Set<String>] = [:]

    public init(table: String) throws(NftError) {
        json = try NftContext(output: .json)
        self.table = table
    }

    /// The current grants, or nil when the table is absent (between a delete and an apply).
    public func snapshot(now: Date = Date()) throws(NftError) -> GrantSnapshot? {
        guard let state = try LiveStateReader(nft: json).read(table: table) else { return nil }
        if state.catalog != catalog {
            // A new table (an apply): learn again which sequences open which ports. The
            // rules are read only then, since the table's listing can be large.
            catalog = state.catalog
            opening = try json.listTable(table).map { KnockRuleSummary.parse($0).opening } ?? [:]
        }
        return GrantSnapshot(state.grants, at: now)
    }

    /// The sequences of the live table that open `port` in `family`.
    public func sequencesOpening(_ family: IPFamily, _ port: TransportPort) -> [String] {
        opening[Opening(family: family, port: port)]?.sorted() ?? []
    }
}
