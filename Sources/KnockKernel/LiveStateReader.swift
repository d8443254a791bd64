import Foundation
import KnockCore

/// Reads a knockc table's dynamic state back from the kernel. Anything that does not look as
/// knockc wrote it is skipped, never trusted: these values are written back into nft commands.
///
/// It takes the elements straight from nf_tables over netlink (`NetlinkDump`): with a
/// million live grants, libnftables' JSON listing of them took about 100 s and 10 GiB in
/// `knockc apply`, and it rounds times left to whole seconds, where the dump gives
/// milliseconds.
struct LiveStateReader {
    private let dump: NetlinkDump

    init() throws(NftError) {
        do {
            dump = try NetlinkDump()
        } catch {
            throw NftError(command: "netlink", message: error.description)
        }
    }

    /// The state of `table`, or nil when the table does not exist.
    ///
    /// Reads only the sets that hold state and the catalog. A table without knockc's catalog
    /// (absent, or not made by knockc) gives nil: there is nothing in it knockc could carry over.
    func read(table: String, sets: [String] = Self.stateSets) throws(NftError) -> LiveState? {
        let names = RulesetLowering.Names.self
        var state = LiveState()
        do {
            let catalogFound = try dump.forEachElement(table: table, set: names.sequenceCatalog) { element in
                guard element.key.count == 4, let comment = element.comment,
                      let identity = SequenceIdentity(catalogComment: comment) else { return }
                state.catalog[UInt32(bigEndian: element.key.loadUnaligned(as: UInt32.self))] = identity
            }
            guard catalogFound else { return nil }
            for family in IPFamily.allCases {
                let size = family == .ipv4 ? 4 : 16
                for progressSet in names.progressSets(family) where sets.contains(progressSet) {
                    _ = try dump.forEachElement(table: table, set: progressSet) { element in
                        guard element.key.count == 2 * size, let expires = element.expires,
                              element.key[size..<(2 * size - 4)].allSatisfy({ $0 == 0 }),
                              let source = NetlinkDump.address(UnsafeRawBufferPointer(rebasing: element.key[0..<size]), family: family)
                        else { return }
                        let tag = UInt32(bigEndian: element.key.loadUnaligned(fromByteOffset: 2 * size - 4, as: UInt32.self))
                        state.progress.append(ProgressElement(family: family, source: source, tag: tag, expires: Self.duration(expires)))
                    }
                }
                if sets.contains(names.granted(family)) {
                    _ = try dump.forEachElement(table: table, set: names.granted(family)) { element in
                        guard element.key.count == size + 8, let timeout = element.timeout, let expires = element.expires,
                              let proto = TransportProtocol.allCases.first(where: { $0.number == element.key[size] }),
                              let source = NetlinkDump.address(UnsafeRawBufferPointer(rebasing: element.key[0..<size]), family: family)
                        else { return }
                        let port = UInt16(element.key[size + 4]) << 8 | UInt16(element.key[size + 5])
                        guard port > 0 else { return }
                        state.grants.append(GrantElement(family: family, source: source, port: TransportPort(proto, port),
                                                         timeout: Self.duration(timeout), expires: Self.duration(expires)))
                    }
                }
                if sets.contains(names.banned(family)) {
                    _ = try dump.forEachElement(table: table, set: names.banned(family)) { element in
                        guard element.key.count == size, let expires = element.expires,
                              let source = NetlinkDump.address(element.key, family: family) else { return }
                        state.bans.append(BanElement(family: family, source: source, expires: Self.duration(expires)))
                    }
                }
            }
        } catch {
            throw NftError(command: "netlink dump of table inet \(table)", message: error.description)
        }
        return state
    }

    /// The sources of `table`'s top-level `allow` list, read from its interval sets; empty when
    /// the table has no such list.
    func readAllowed(table: String) throws(NftError) -> AddressIntervals {
        var allowed = AddressIntervals()
        do {
            for family in IPFamily.allCases {
                let size = family == .ipv4 ? 4 : 16
                var bounds: [AddressIntervals.Bound] = []
                _ = try dump.forEachElement(table: table, set: RulesetLowering.Names.allowed(family)) { element in
                    guard element.key.count == size else { return }
                    bounds.append(.init(key: Array(element.key), isEnd: element.flags & NetlinkDump.ElementView.intervalEnd != 0))
                }
                allowed.add(bounds, family: family)
            }
        } catch {
            throw NftError(command: "netlink dump of table inet \(table)", message: error.description)
        }
        return allowed
    }

    private static func duration(_ milliseconds: UInt64) -> Duration {
        Duration(milliseconds: Int64(clamping: milliseconds))
    }

    static let stateSets = [RulesetLowering.Names.sequenceCatalog] + IPFamily.allCases.flatMap {
        RulesetLowering.Names.progressSets($0) + [RulesetLowering.Names.granted($0), RulesetLowering.Names.banned($0)]
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
    func contains(_ address: IPAddress, family: IPFamily) -> Bool {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(family == .ipv4 ? AF_INET : AF_INET6, address.text, &bytes) == 1 else { return false }
        let key = Array(bytes.prefix(family == .ipv4 ? 4 : 16))
        return (ranges[family] ?? []).contains { range in
            !key.lexicographicallyPrecedes(range.start) && (range.end.map { key.lexicographicallyPrecedes($0) } ?? true)
        }
    }
}
