import Foundation
import CNftables
import KnockCore
import Glibc

/// Reads set elements, table handles and counters straight from nf_tables over netlink: the
/// live state that `apply` carries over, `status` shows and `revoke` deletes, and what the
/// watcher polls and counts.
///
/// Why not libnftables here: listing 10,000 grants through its JSON output and parsing that
/// back cost the watcher a third of a core at four readings a second, a million grants took
/// `apply` about 100 s and 10 GiB, and even `list counters` makes libnftables fetch every set
/// element into its cache (2 KiB a grant, kept until the context is freed). The binary dump is
/// the same data with no text in between, and it carries each element's time left in
/// milliseconds, where the listing rounds to whole seconds. Writes still go through
/// libnftables only; this reads.
///
/// Message and attribute types are the kernel's own names (`NFT_MSG_*`, `NFTA_*`), from
/// `<linux/netfilter/nf_tables.h>` and `<linux/netfilter/nfnetlink.h>` through the CNftables
/// shim.
final class NetlinkDump {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// NFPROTO_INET, the family of knockc's tables. Its header, <linux/netfilter.h>, cannot
    /// be in the CNftables shim (see there), so this one name is spelled here.
    private static let familyInet: UInt8 = 1

    private let descriptor: Int32
    private var sequence: UInt32 = 0
    private var buffer = [UInt8](repeating: 0, count: 1 << 17)

    /// A socket for the readers (`LiveStateReader`, `GrantWatcher`, `CounterReader`,
    /// `SecretCurrency`), whose callers see failures as `NftError`.
    static func opened() throws(NftError) -> NetlinkDump {
        do {
            return try NetlinkDump()
        } catch {
            throw NftError(command: "netlink", message: error.description)
        }
    }

    init() throws(Failure) {
        descriptor = try Self.openSocket(receiveBuffer: 1 << 20)
    }

    /// A NETLINK_NETFILTER socket bound to a port the kernel picks, in the calling thread's
    /// network namespace. `force` lets root's buffer exceed the system's `rmem_max`.
    static func openSocket(receiveBuffer: Int32, force: Bool = false) throws(Failure) -> Int32 {
        let descriptor = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_NETFILTER)
        guard descriptor >= 0 else { throw Failure(description: "netlink socket: \(String(cString: strerror(errno)))") }
        var size = receiveBuffer
        if !force || setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard bound == 0 else {
            let error = errno
            close(descriptor)
            throw Failure(description: "netlink bind: \(String(cString: strerror(error)))")
        }
        return descriptor
    }

    deinit { close(descriptor) }

    /// The kernel's handle of `inet table`, or nil when there is no such table. Every apply
    /// creates the table anew, so a new handle means the table was replaced.
    func tableHandle(_ table: String) throws(Failure) -> UInt64? {
        var handle: UInt64?
        let found = try request(type: wire(NFT_MSG_GETTABLE), dump: false,
                                attributes: [(wire(NFTA_TABLE_NAME), Self.cString(table))]) { kind, value in
            if kind == wire(NFTA_TABLE_HANDLE), value.count == 8 { handle = Self.bigEndian64(value) }
        }
        return found ? handle : nil
    }

    /// One element as the dump gives it; the bytes are valid only during the call.
    struct ElementView {
        /// The key as the kernel stores it: each part of a concatenation padded to 4 bytes.
        var key: UnsafeRawBufferPointer
        /// Milliseconds.
        var timeout: UInt64?
        /// Milliseconds left.
        var expires: UInt64?
        /// The element's comment, if it has one.
        var comment: String?
        /// NFTA_SET_ELEM_FLAGS; in an interval set, `intervalEnd` marks the first key past an
        /// interval.
        var flags: UInt32 = 0

        static let intervalEnd = UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue)
    }

    /// Calls `body` with each element of `set` in `inet table`. False when the table or the
    /// set is missing. Nothing is copied on the way.
    func forEachElement(table: String, set: String, _ body: (ElementView) -> Void) throws(Failure) -> Bool {
        try request(type: wire(NFT_MSG_GETSETELEM), dump: true,
                    attributes: [(wire(NFTA_SET_ELEM_LIST_TABLE), Self.cString(table)),
                                 (wire(NFTA_SET_ELEM_LIST_SET), Self.cString(set))]) { kind, list in
            if kind == wire(NFTA_SET_ELEM_LIST_ELEMENTS) { Self.forEachElement(inList: list, body) }
        }
    }

    /// Each element in the payload of an NFTA_SET_ELEM_LIST_ELEMENTS attribute: a list of
    /// NFTA_LIST_ELEM, each an element's attributes. The same in a dump, in the answer about
    /// one element, and in a notification.
    static func forEachElement(inList list: UnsafeRawBufferPointer, _ body: (ElementView) -> Void) {
        forEachAttribute(list) { _, item in
            var key: UnsafeRawBufferPointer?
            var timeout: UInt64?
            var expires: UInt64?
            var comment: String?
            var flags: UInt32 = 0
            forEachAttribute(item) { field, value in
                switch field {
                case wire(NFTA_SET_ELEM_KEY):
                    forEachAttribute(value) { inner, data in if inner == wire(NFTA_DATA_VALUE) { key = data } }
                case wire(NFTA_SET_ELEM_FLAGS) where value.count == 4: flags = bigEndian32(value)
                case wire(NFTA_SET_ELEM_TIMEOUT) where value.count == 8: timeout = bigEndian64(value)
                case wire(NFTA_SET_ELEM_EXPIRATION) where value.count == 8: expires = bigEndian64(value)
                case wire(NFTA_SET_ELEM_USERDATA): comment = Self.comment(userdata: value)
                default: break
                }
            }
            if let key { body(ElementView(key: key, timeout: timeout, expires: expires, comment: comment, flags: flags)) }
        }
    }

    /// The element of `set` with exactly `key` (the kernel's bytes), asked of the kernel for
    /// that element alone, with its time left as of now; nil when the set does not hold it or
    /// its time has run out (the lookup does not find an element past its time even before
    /// the kernel collects it; one that runs out as the kernel answers comes with 0 left).
    ///
    /// A dump of a large set comes in batches, and the kernel resumes each batch by skipping
    /// as many elements as it has sent; when elements time out or arrive in between, a dump
    /// can miss some that never left. The watcher asks again for each one before calling it
    /// gone. It also asks this way about each grant that a knock or a transaction changed, and
    /// each whose time has come: one lookup, where a dump of 100,000 grants walks the set
    /// about 200 times over.
    func element(table: String, set: String, key: [UInt8]) throws(Failure) -> (timeout: UInt64?, expires: UInt64?)? {
        let nested = UInt16(NLA_F_NESTED)
        let element = Self.attribute(wire(NFTA_SET_ELEM_KEY) | nested, Self.attribute(wire(NFTA_DATA_VALUE), key))
        let list = Self.attribute(wire(NFTA_LIST_ELEM) | nested, element)
        var found: (timeout: UInt64?, expires: UInt64?)?
        let answered = try request(type: wire(NFT_MSG_GETSETELEM), dump: false,
                                   attributes: [(wire(NFTA_SET_ELEM_LIST_TABLE), Self.cString(table)),
                                                (wire(NFTA_SET_ELEM_LIST_SET), Self.cString(set)),
                                                (wire(NFTA_SET_ELEM_LIST_ELEMENTS) | nested, list)]) { kind, list in
            guard kind == wire(NFTA_SET_ELEM_LIST_ELEMENTS) else { return }
            Self.forEachElement(inList: list) { found = ($0.timeout, $0.expires) }
        }
        guard answered else { return nil }
        return found?.expires == 0 ? nil : found ?? (nil, nil)
    }

    /// Whether `set` holds an element with exactly `key`; see `element(table:set:key:)`.
    func containsElement(table: String, set: String, key: [UInt8]) throws(Failure) -> Bool {
        try element(table: table, set: set, key: key) != nil
    }

    /// One attribute: length, type, value, padded to 4 bytes.
    private static func attribute(_ kind: UInt16, _ value: [UInt8]) -> [UInt8] {
        var header = nlattr()
        header.nla_len = UInt16(MemoryLayout<nlattr>.size + value.count)
        header.nla_type = kind
        return withUnsafeBytes(of: header) { Array($0) } + value + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }

    /// Record types in libnftnl's user data, which no installed header declares: an
    /// element's comment (`NFTNL_UDATA_SET_ELEM_COMMENT`) and a set's comment
    /// (`NFTNL_UDATA_SET_COMMENT`).
    private static let commentRecord: UInt8 = 0
    private static let setCommentRecord: UInt8 = 7

    /// An element's comment, from its user data.
    static func comment(userdata: UnsafeRawBufferPointer) -> String? {
        userdataRecord(commentRecord, in: userdata)
    }

    /// One record of libnftnl's user data: records of a type byte, a length byte and the
    /// value; text is NUL-terminated.
    static func userdataRecord(_ record: UInt8, in userdata: UnsafeRawBufferPointer) -> String? {
        var offset = 0
        while offset + 2 <= userdata.count {
            let type = userdata[offset]
            let length = Int(userdata[offset + 1])
            guard offset + 2 + length <= userdata.count else { return nil }
            if type == record {
                let bytes = userdata[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            offset += 2 + length
        }
        return nil
    }

    /// What `inet table` is made of, without any set's elements: its named sets and maps with
    /// their definitions, its chains, counters and other objects. Nil when there is no such
    /// table. Four small dumps, whatever the sets hold.
    func definitions(table: String) throws(Failure) -> LiveDefinitions? {
        var tableFlags: UInt32?
        let found = try request(type: wire(NFT_MSG_GETTABLE), dump: false,
                                attributes: [(wire(NFTA_TABLE_NAME), Self.cString(table))]) { kind, value in
            if kind == wire(NFTA_TABLE_FLAGS), value.count == 4 { tableFlags = Self.bigEndian32(value) }
        }
        guard found else { return nil }
        var definitions = LiveDefinitions()
        definitions.dormant = (tableFlags ?? 0) & UInt32(NFT_TABLE_F_DORMANT.rawValue) != 0
        var name = ""
        var owner = ""
        var flags: UInt32 = 0
        var keyType: UInt32 = 0
        var keyLength = 0
        var size = 0
        var comment: String?
        var hasExtras = false
        func reset() {
            (name, owner, flags, keyType, keyLength, size) = ("", "", 0, 0, 0, 0)
            (comment, hasExtras) = (nil, false)
        }
        _ = try request(type: wire(NFT_MSG_GETSET), dump: true, attributes: [(wire(NFTA_SET_TABLE), Self.cString(table))],
                        messageEnd: {
                            // Anonymous sets belong to the rules that hold them.
                            if owner == table, flags & UInt32(NFT_SET_ANONYMOUS.rawValue) == 0 {
                                definitions.sets[name] = SetDefinition(
                                    isMap: flags & UInt32(NFT_SET_MAP.rawValue) != 0, keyType: keyType, keyLength: keyLength,
                                    flags: flags, size: size, comment: comment, hasExtras: hasExtras)
                            }
                            reset()
                        }) { kind, value in
            switch kind {
            case wire(NFTA_SET_NAME): name = Self.string(value)
            case wire(NFTA_SET_TABLE): owner = Self.string(value)
            case wire(NFTA_SET_FLAGS) where value.count == 4: flags = Self.bigEndian32(value)
            case wire(NFTA_SET_KEY_TYPE) where value.count == 4: keyType = Self.bigEndian32(value)
            case wire(NFTA_SET_KEY_LEN) where value.count == 4: keyLength = Int(Self.bigEndian32(value))
            case wire(NFTA_SET_DESC):
                Self.forEachAttribute(value) { field, data in
                    if field == wire(NFTA_SET_DESC_SIZE), data.count == 4 { size = Int(Self.bigEndian32(data)) }
                }
            case wire(NFTA_SET_USERDATA):
                comment = Self.userdataRecord(Self.setCommentRecord, in: value)
            case wire(NFTA_SET_EXPR), wire(NFTA_SET_EXPRESSIONS), wire(NFTA_SET_TIMEOUT):
                hasExtras = true
            case wire(NFTA_SET_POLICY) where value.count == 4:
                if Self.bigEndian32(value) != UInt32(NFT_SET_POL_PERFORMANCE.rawValue) { hasExtras = true }
            default: break
            }
        }
        _ = try request(type: wire(NFT_MSG_GETCHAIN), dump: true, attributes: [(wire(NFTA_CHAIN_TABLE), Self.cString(table))],
                        messageEnd: {
                            if owner == table { definitions.chains.append(name) }
                            reset()
                        }) { kind, value in
            if kind == wire(NFTA_CHAIN_NAME) { name = Self.string(value) }
            if kind == wire(NFTA_CHAIN_TABLE) { owner = Self.string(value) }
        }
        var objectType: UInt32 = 0
        _ = try request(type: wire(NFT_MSG_GETOBJ), dump: true, attributes: [(wire(NFTA_OBJ_TABLE), Self.cString(table))],
                        messageEnd: {
                            if owner == table {
                                if objectType == UInt32(NFT_OBJECT_COUNTER) {
                                    definitions.counters.append(name)
                                } else {
                                    definitions.foreignObjects.append(name)
                                }
                            }
                            reset()
                        }) { kind, value in
            switch kind {
            case wire(NFTA_OBJ_NAME): name = Self.string(value)
            case wire(NFTA_OBJ_TABLE): owner = Self.string(value)
            case wire(NFTA_OBJ_TYPE) where value.count == 4: objectType = Self.bigEndian32(value)
            default: break
            }
        }
        _ = try request(type: wire(NFT_MSG_GETFLOWTABLE), dump: true,
                        attributes: [(wire(NFTA_FLOWTABLE_TABLE), Self.cString(table))],
                        messageEnd: {
                            if owner == table { definitions.foreignObjects.append(name) }
                            reset()
                        }) { kind, value in
            if kind == wire(NFTA_FLOWTABLE_NAME) { name = Self.string(value) }
            if kind == wire(NFTA_FLOWTABLE_TABLE) { owner = Self.string(value) }
        }
        return definitions
    }

    static func string(_ value: UnsafeRawBufferPointer) -> String {
        String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }

    static func bigEndian32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))
    }

    /// The ruleset's generation: the kernel counts up with every committed transaction (an
    /// apply, a revoke, `nft delete element`), but not for what the packet path writes.
    func generation() throws(Failure) -> UInt32? {
        var generation: UInt32?
        _ = try request(type: wire(NFT_MSG_GETGEN), dump: false, attributes: []) { kind, value in
            if kind == wire(NFTA_GEN_ID), value.count == 4 { generation = UInt32(bigEndian: value.loadUnaligned(as: UInt32.self)) }
        }
        return generation
    }

    /// The packets one named counter of `inet table` has counted; nil when there is no such
    /// counter. One object, not a dump of every counter.
    func counter(table: String, name: String) throws(Failure) -> UInt64? {
        let type = withUnsafeBytes(of: UInt32(NFT_OBJECT_COUNTER).bigEndian) { Array($0) }
        var packets: UInt64?
        _ = try request(type: wire(NFT_MSG_GETOBJ), dump: false,
                        attributes: [(wire(NFTA_OBJ_TABLE), Self.cString(table)), (wire(NFTA_OBJ_NAME), Self.cString(name)),
                                     (wire(NFTA_OBJ_TYPE), type)]) { kind, value in
            guard kind == wire(NFTA_OBJ_DATA) else { return }
            Self.forEachAttribute(value) { field, data in
                if field == wire(NFTA_COUNTER_PACKETS), data.count == 8 { packets = Self.bigEndian64(data) }
            }
        }
        return packets
    }

    /// Packets and bytes counted by each named counter of `inet table`, by name; empty
    /// without the table (the kernel filters an object dump by table rather than refusing it).
    func counters(table: String) throws(Failure) -> [String: (packets: UInt64, bytes: UInt64)] {
        var counts: [String: (packets: UInt64, bytes: UInt64)] = [:]
        let type = withUnsafeBytes(of: UInt32(NFT_OBJECT_COUNTER).bigEndian) { Array($0) }
        var name: String?
        var packets: UInt64?
        var bytes: UInt64 = 0
        _ = try request(type: wire(NFT_MSG_GETOBJ), dump: true,
                        attributes: [(wire(NFTA_OBJ_TABLE), Self.cString(table)), (wire(NFTA_OBJ_TYPE), type)],
                        messageEnd: {
                            if let name, let packets { counts[name] = (packets, bytes) }
                            name = nil
                            packets = nil
                            bytes = 0
                        }) { kind, value in
            switch kind {
            case wire(NFTA_OBJ_NAME):
                name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
            case wire(NFTA_OBJ_DATA):
                Self.forEachAttribute(value) { field, data in
                    if field == wire(NFTA_COUNTER_PACKETS), data.count == 8 { packets = Self.bigEndian64(data) }
                    if field == wire(NFTA_COUNTER_BYTES), data.count == 8 { bytes = Self.bigEndian64(data) }
                }
            default: break
            }
        }
        return counts
    }

    // MARK: Netlink

    /// Sends one request and hands each top-level attribute of each reply to `body`. False
    /// when the kernel answered ENOENT (no such table or set). Netlink headers are in the
    /// host's byte order; nf_tables values in network order.
    private func request(type: UInt16, dump: Bool, attributes: [(UInt16, [UInt8])], messageEnd: () -> Void = {},
                         _ body: (UInt16, UnsafeRawBufferPointer) -> Void) throws(Failure) -> Bool {
        sequence &+= 1
        var header = nlmsghdr()
        header.nlmsg_type = UInt16(NFNL_SUBSYS_NFTABLES) << 8 | type
        header.nlmsg_flags = UInt16(NLM_F_REQUEST) | (dump ? UInt16(NLM_F_DUMP) : 0)
        header.nlmsg_seq = sequence
        var family = nfgenmsg()
        family.nfgen_family = Self.familyInet
        family.version = UInt8(NFNETLINK_V0)
        var payload = withUnsafeBytes(of: family) { Array($0) }
        for (kind, value) in attributes { payload += Self.attribute(kind, value) }
        header.nlmsg_len = UInt32(MemoryLayout<nlmsghdr>.size + payload.count)
        let message = withUnsafeBytes(of: header) { Array($0) } + payload

        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = withUnsafePointer(to: &kernel) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(descriptor, message, message.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        guard sent == message.count else { throw Failure(description: "netlink send: \(String(cString: strerror(errno)))") }

        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "netlink receive: \(String(cString: strerror(errno)))")
            }
            let outcome: Bool? = buffer.withUnsafeBytes { raw in
                let headerSize = MemoryLayout<nlmsghdr>.size
                let attributesStart = headerSize + MemoryLayout<nfgenmsg>.size
                var offset = 0
                while offset + headerSize <= count {
                    let header = raw.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self)
                    let length = Int(header.nlmsg_len)
                    guard length >= headerSize, offset + length <= count else { return false }
                    defer { offset += (length + 3) & ~3 }
                    guard header.nlmsg_seq == sequence else { continue }
                    switch header.nlmsg_type {
                    case UInt16(NLMSG_DONE):
                        return true
                    case UInt16(NLMSG_ERROR): // nlmsgerr: a negative errno, 0 for an acknowledgement
                        let code = raw.loadUnaligned(fromByteOffset: offset + headerSize, as: Int32.self)
                        if code == 0 || -code == ENOENT { return code == 0 }
                        errorCode = -code
                        return false
                    default:
                        guard length >= attributesStart else { continue }
                        Self.forEachAttribute(UnsafeRawBufferPointer(rebasing: raw[(offset + attributesStart)..<(offset + length)]), body)
                        messageEnd()
                        if !dump { return true }
                    }
                }
                return nil
            }
            if let errorCode {
                self.errorCode = nil
                throw Failure(description: "netlink: \(String(cString: strerror(errorCode)))")
            }
            if let outcome { return outcome }
        }
    }

    private var errorCode: Int32?

    /// Calls `body` with each attribute in `bytes`: its type without the nested and
    /// byte-order flags, and its payload.
    static func forEachAttribute(_ bytes: UnsafeRawBufferPointer, _ body: (UInt16, UnsafeRawBufferPointer) -> Void) {
        let headerSize = MemoryLayout<nlattr>.size
        var offset = 0
        while offset + headerSize <= bytes.count {
            let header = bytes.loadUnaligned(fromByteOffset: offset, as: nlattr.self)
            let length = Int(header.nla_len)
            let kind = header.nla_type & ~UInt16(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
            guard length >= headerSize, offset + length <= bytes.count else { return }
            body(kind, UnsafeRawBufferPointer(rebasing: bytes[(offset + headerSize)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
    }

    private static func cString(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    static func bigEndian64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }
}

/// The number netlink carries for one of the kernel headers' message or attribute names, which
/// Swift imports as wrapper types of their C enums.
func wire<Name: RawRepresentable>(_ name: Name) -> UInt16 where Name.RawValue: BinaryInteger {
    UInt16(name.rawValue)
}
