import Foundation
import KnockCore

/// Reads a knockc table's catalog and dynamic state back from the kernel, decoding every
/// element through `TableLayout`. Anything that does not look as knockc wrote it is skipped,
/// never trusted: these values are written back into nft commands.
///
/// It takes the elements straight from nf_tables over netlink (`NetlinkDump`): with a
/// million live grants, libnftables' JSON listing of them took about 100 s and 10 GiB, and it
/// rounds times left to whole seconds, where the dump gives milliseconds.
struct LiveStateReader {
    private let dump: NetlinkDump

    init() throws(NftError) {
        dump = try NetlinkDump.opened()
    }

    init(dump: NetlinkDump) {
        self.dump = dump
    }

    /// What the table is made of, without elements; nil when there is no such table.
    func definitions(table: String) throws(NftError) -> LiveDefinitions? {
        do {
            return try dump.definitions(table: table)
        } catch {
            throw NftError(command: "netlink dump of table inet \(table)", message: error.description)
        }
    }

    /// The table's catalog, or nil when the table has none knockc could read (absent, or not
    /// made by knockc). A catalog written before the `openings` set existed (a stage tag per
    /// sequence, named in its comment) is read too, without knock counts or ports.
    func catalog(table: String) throws(NftError) -> TableCatalog? {
        var catalog = TableCatalog()
        do {
            let layout = TableLayout.sequences
            let found = try dump.forEachElement(table: table, set: layout.name) { element in
                if let key = layout.decode(element.key) {
                    catalog.add(sequence: key, comment: element.comment)
                } else if element.key.count == 4, let comment = element.comment,
                          let identity = SequenceIdentity(catalogComment: comment) {
                    let tag = element.key.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    catalog.entries[tag] = TableCatalog.Entry(identity: identity, knocks: 0)
                }
            }
            guard found else { return nil }
            _ = try dump.forEachElement(table: table, set: TableLayout.openings.name) { element in
                if let key = TableLayout.openings.decode(element.key) { catalog.add(opening: key) }
            }
        } catch {
            throw NftError(command: "netlink dump of table inet \(table)", message: error.description)
        }
        return catalog
    }

    /// The elements of the state sets among `sets` (all of them by default), named through
    /// `catalog`. Sets the table does not have are skipped.
    func state(table: String, catalog: TableCatalog, sets: Set<String>? = nil) throws(NftError) -> LiveState {
        var state = LiveState(catalog: catalog)
        func wanted(_ layout: SetLayout) -> Bool { sets?.contains(layout.name) ?? true }
        do {
            // Which sequences open each port, worked out once for every grant of both families.
            let openers = catalog.openers
            for family in IPFamily.allCases {
                for layout in [TableLayout.started(family), TableLayout.progress(family)] where wanted(layout) {
                    _ = try dump.forEachElement(table: table, set: layout.name) { element in
                        guard let key = layout.decode(element.key), let expires = element.expires,
                              var progress = SequenceProgress(key: key, expires: Self.duration(expires)) else { return }
                        if let entry = catalog.entry(forTag: progress.tag) {
                            progress.sequence = entry.identity.name
                            progress.knocks = entry.knocks > 0 ? entry.knocks : nil
                            progress.closing = entry.closes
                        }
                        state.progress.append(progress)
                    }
                }
                let granted = TableLayout.granted(family)
                if wanted(granted) {
                    _ = try dump.forEachElement(table: table, set: granted.name) { element in
                        guard let key = granted.decode(element.key), let timeout = element.timeout, let expires = element.expires,
                              var grant = Grant(key: key, timeout: Self.duration(timeout), expires: Self.duration(expires))
                        else { return }
                        grant.sequences = openers[TableCatalog.Opening(family: family, port: grant.port)] ?? []
                        state.grants.append(grant)
                    }
                }
                let banned = TableLayout.banned(family)
                if wanted(banned) {
                    _ = try dump.forEachElement(table: table, set: banned.name) { element in
                        guard let key = banned.decode(element.key), case .address(let source) = key[0],
                              let expires = element.expires else { return }
                        state.bans.append(Ban(source: source, expires: Self.duration(expires)))
                    }
                }
            }
        } catch {
            throw NftError(command: "netlink dump of table inet \(table)", message: error.description)
        }
        return state
    }

    /// The whole state of `table`, or nil when it has no catalog knockc could read.
    func read(table: String) throws(NftError) -> LiveState? {
        guard let catalog = try catalog(table: table) else { return nil }
        return try state(table: table, catalog: catalog)
    }

    /// The sources of `table`'s top-level `allow` list, read from its interval sets; empty when
    /// the table has no such list.
    func readAllowed(table: String) throws(NftError) -> AddressIntervals {
        var allowed = AddressIntervals()
        do {
            for family in IPFamily.allCases {
                var bounds: [AddressIntervals.Bound] = []
                _ = try dump.forEachElement(table: table, set: TableLayout.Names.allowed(family)) { element in
                    guard element.key.count == family.addressLength else { return }
                    bounds.append(.init(key: Array(element.key), isEnd: element.flags & NetlinkDump.ElementView.intervalEnd != 0))
                }
                allowed.add(bounds, family: family)
            }
        } catch {
            throw NftError(command: "netlink dump of table inet \(table)", message: error.description)
        }
        return allowed
    }

    static func duration(_ milliseconds: UInt64) -> Duration {
        Duration(milliseconds: Int64(clamping: milliseconds))
    }
}

/// The addresses an interval set holds, from the elements the kernel lists for it.
///
/// An interval set of addresses (`flags interval`, one field) is kept by the kernel as bounds:
/// an element for the first address of each interval, and one flagged as an interval end for
/// the first address past it (none when the interval runs to the last address). The dump
/// lists them in no promised order, and may start with an end bound at the zero address.
struct AddressIntervals {
    struct Bound {
        var key: [UInt8]
        var isEnd: Bool
    }

    /// Per family, half-open `[start, end)` ranges of address bytes; a nil end runs to the
    /// last address.
    private var ranges: [IPFamily: [(start: [UInt8], end: [UInt8]?)]] = [:]

    var isEmpty: Bool { ranges.values.allSatisfy(\.isEmpty) }

    mutating func add(_ bounds: [Bound], family: IPFamily) {
        // Ends before starts at the same key, so adjacent intervals [a, b) [b, c) pair up.
        let sorted = bounds.sorted { lhs, rhs in
            lhs.key == rhs.key ? lhs.isEnd && !rhs.isEnd : lhs.key.lexicographicallyPrecedes(rhs.key)
        }
        var open: [UInt8]?
        for bound in sorted {
            if bound.isEnd {
                if let start = open { ranges[family, default: []].append((start, bound.key)) }
                open = nil
            } else if open == nil {
                open = bound.key
            }
        }
        if let start = open { ranges[family, default: []].append((start, nil)) }
    }

    /// Whether `address` lies in one of the intervals of its family.
    func contains(_ address: IPAddress) -> Bool {
        let key = address.bytes
        return (ranges[address.family] ?? []).contains { range in
            !key.lexicographicallyPrecedes(range.start) && (range.end.map { key.lexicographicallyPrecedes($0) } ?? true)
        }
    }
}
