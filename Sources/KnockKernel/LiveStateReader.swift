import Foundation
import KnockCore

/// Reads a knockc table's dynamic state back from the kernel. Anything that does not look as
/// knockc wrote it is skipped, never trusted: these values are written back into nft commands.
///
/// `read` takes the elements straight from nf_tables over netlink (`NetlinkDump`): with a
/// million live grants, libnftables' JSON listing of them took about 100 s and 10 GiB in
/// `knockc apply`, and it rounds times left to whole seconds, where the dump gives
/// milliseconds. `parse` still reads a JSON listing (`nft -j list table`).
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

    /// Parses `nft -j list table` output.
    static func parse(_ json: String) -> LiveState {
        var state = LiveState()
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else { return state }
        for object in objects {
            guard let set = object["set"] as? [String: Any], let name = set["name"] as? String else { continue }
            let elements = (set["elem"] as? [Any] ?? []).compactMap(Element.init)
            for family in IPFamily.allCases {
                if name == RulesetLowering.Names.progress(family) {
                    state.progress += elements.compactMap { progress($0, family: family) }
                } else if name == RulesetLowering.Names.granted(family) {
                    state.grants += elements.compactMap { grant($0, family: family) }
                } else if name == RulesetLowering.Names.banned(family) {
                    state.bans += elements.compactMap { element in
                        guard element.value.count == 1, case .string(let text) = element.value[0],
                              let source = IPAddress(text, family: family), let expires = element.expires else { return nil }
                        return BanElement(family: family, source: source, expires: expires)
                    }
                }
            }
            if name == RulesetLowering.Names.sequenceCatalog {
                for element in elements {
                    guard case .string(let text)? = element.value.first, let tag = tag(text, family: .ipv4),
                          let identity = element.comment.flatMap(SequenceIdentity.init(catalogComment:)) else { continue }
                    state.catalog[tag] = identity
                }
            }
        }
        return state
    }

    private static func progress(_ element: Element, family: IPFamily) -> ProgressElement? {
        guard element.value.count == 2,
              case .string(let sourceText) = element.value[0], case .string(let tagText) = element.value[1],
              let source = IPAddress(sourceText, family: family), let tag = tag(tagText, family: family),
              let expires = element.expires else { return nil }
        return ProgressElement(family: family, source: source, tag: tag, expires: expires)
    }

    private static func grant(_ element: Element, family: IPFamily) -> GrantElement? {
        guard element.value.count == 3,
              case .string(let sourceText) = element.value[0], case .number(let port) = element.value[2],
              let source = IPAddress(sourceText, family: family),
              let proto = transportProtocol(element.value[1]), (1...65535).contains(port),
              let timeout = element.timeout, let expires = element.expires else { return nil }
        return GrantElement(family: family, source: source, port: TransportPort(proto, UInt16(port)),
                            timeout: timeout, expires: expires)
    }

    /// A protocol as libnftables lists it: by number with numeric output, by name otherwise.
    private static func transportProtocol(_ part: Element.Part) -> TransportProtocol? {
        switch part {
        case .string(let name): TransportProtocol(rawValue: name)
        case .number(let number): TransportProtocol.allCases.first { Int($0.number) == number }
        }
    }

    /// A stage tag written as an address: `0.0.1.2`, or `::0.0.1.2` / `::102` in IPv6 sets.
    static func tag(_ text: String, family: IPFamily) -> UInt32? {
        var dotted = text
        if family == .ipv6 {
            guard text.hasPrefix("::") else { return nil }
            dotted = String(text.dropFirst(2))
            if !dotted.contains(".") {
                let groups = dotted.split(separator: ":", omittingEmptySubsequences: false)
                guard (1...2).contains(groups.count), groups.allSatisfy({ (1...4).contains($0.count) }),
                      let values = Optional(groups.compactMap { UInt32($0, radix: 16) }), values.count == groups.count
                else { return nil }
                return values.reduce(0) { $0 << 16 | $1 }
            }
        }
        let octets = dotted.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt32($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 <= 255 }) else { return nil }
        return octets.reduce(0) { $0 << 8 | $1 }
    }

    /// One set element as the JSON listing gives it.
    struct Element {
        enum Part { case string(String), number(Int) }
        var value: [Part]
        var timeout: Duration?
        var expires: Duration?
        var comment: String?

        init?(_ json: Any) {
            var body = json
            if let wrapper = json as? [String: Any], let inner = wrapper["elem"] as? [String: Any] {
                body = inner["val"] as Any
                timeout = (inner["timeout"] as? Int).flatMap(Self.seconds)
                expires = (inner["expires"] as? Int).flatMap(Self.seconds)
                comment = inner["comment"] as? String
            }
            let parts: [Any] = (body as? [String: Any])?["concat"] as? [Any] ?? [body]
            value = parts.compactMap { part in
                if let text = part as? String { return .string(text) }
                if let number = part as? Int { return .number(number) }
                return nil
            }
            guard value.count == parts.count else { return nil }
        }

        /// Whole seconds, as the JSON listing rounds them down: an element with less than a
        /// second left lists as 0, and still exists (the watcher must see a 1s grant).
        private static func seconds(_ value: Int) -> Duration? {
            value >= 0 ? .seconds(Int64(value)) : nil
        }
    }
}
