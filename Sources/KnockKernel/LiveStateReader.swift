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
                if sets.contains(names.progress(family)) {
                    _ = try dump.forEachElement(table: table, set: names.progress(family)) { element in
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

    private static func duration(_ milliseconds: UInt64) -> Duration {
        Duration(milliseconds: Int64(clamping: milliseconds))
    }

    static let stateSets = [RulesetLowering.Names.sequenceCatalog] + IPFamily.allCases.flatMap {
        [RulesetLowering.Names.progress($0), RulesetLowering.Names.granted($0), RulesetLowering.Names.banned($0)]
    }
}
