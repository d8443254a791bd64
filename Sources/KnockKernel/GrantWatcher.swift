import Foundation
import KnockCore

/// Reads what `knockc watch` reports on: the granted and banned sets, each reading compared
/// with the one before (see `GrantSnapshot`). It only reads; the kernel decides who gets in
/// whether or not a watcher runs.
///
/// Why reading the sets rather than NFLOG: the kernel sends no netlink event for elements
/// added from the packet path or timed out, so expiries can only be seen by reading; and one
/// mechanism for both grants and expiries keeps the events consistent with `status`, costs
/// the packet path nothing (no log statement in a knock rule), and survives a watcher
/// restart, since the sets are the truth. The price is latency up to one interval.
public final class GrantWatcher {
    private let json: NftContext
    public let table: String
    private var tableHandle: Int?
    private var opening: [Opening: Set<String>] = [:]

    /// One reading of the live table.
    public struct Reading: Sendable {
        public var grants: GrantSnapshot
        /// Banned sources, per family.
        public var bans: [IPFamily: Int]
        /// True when the table was replaced (an apply) since the reading before.
        public var tableReplaced: Bool
    }

    public init(table: String) throws(NftError) {
        json = try NftContext(output: .json)
        self.table = table
    }

    /// The current grants and bans, or nil when the table is absent (between a delete and
    /// an apply).
    public func read(now: Date = Date()) throws(NftError) -> Reading? {
        // Every apply creates the table anew, with a new handle: a cheap way to notice one.
        guard let handle = try currentTableHandle(),
              let state = try LiveStateReader(nft: json).read(table: table, sets: LiveStateReader.grantAndBanSets) else {
            return nil
        }
        let replaced = tableHandle != nil && handle != tableHandle
        if handle != tableHandle {
            // Learn again which sequences open which ports. The rules are read only now,
            // since the table's listing can be large.
            tableHandle = handle
            opening = try json.listTable(table).map { KnockRuleSummary.parse($0).opening } ?? [:]
        }
        return Reading(grants: GrantSnapshot(state.grants, at: now),
                       bans: Dictionary(grouping: state.bans, by: \.family).mapValues(\.count),
                       tableReplaced: replaced)
    }

    /// The kernel's handle of the table (`list tables` lists no contents), nil without one.
    private func currentTableHandle() throws(NftError) -> Int? {
        let listing = try json.run("list tables inet")
        guard let root = try? JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else { return nil }
        return objects.lazy.compactMap { $0["table"] as? [String: Any] }
            .first { $0["name"] as? String == self.table }?["handle"] as? Int
    }

    /// The sequences of the live table that open `port` in `family`.
    public func sequencesOpening(_ family: IPFamily, _ port: TransportPort) -> [String] {
        opening[Opening(family: family, port: port)]?.sorted() ?? []
    }
}
