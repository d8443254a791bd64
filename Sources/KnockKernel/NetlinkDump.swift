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
final class NetlinkDump {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let descriptor: Int32
    private var sequence: UInt32 = 0
    private var buffer = [UInt8](repeating: 0, count: 1 << 17)

    // From linux/netfilter/nfnetlink.h and nf_tables.h.
    private static let subsystemNftables: UInt16 = 10
    private static let getTable: UInt16 = 1
    private static let newSetElement: UInt16 = 12
    private static let getSetElement: UInt16 = 13
    private static let getObject: UInt16 = 19
    private static let objectCounter: UInt32 = 1
    private static let familyInet: UInt8 = 1

    init() throws(Failure) {
        descriptor = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_NETFILTER)
        guard descriptor >= 0 else { throw Failure(description: "netlink socket: \(String(cString: strerror(errno)))") }
        var size: Int32 = 1 << 20
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard bound == 0 else {
            close(descriptor)
            throw Failure(description: "netlink bind: \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(descriptor) }

    /// The kernel's handle of `inet table`, or nil when there is no such table. Every apply
    /// creates the table anew, so a new handle means the table was replaced.
    func tableHandle(_ table: String) throws(Failure) -> UInt64? {
        var handle: UInt64?
        let found = try request(type: Self.getTable, dump: false, attributes: [(1, Self.cString(table))]) { kind, value in
            if kind == 4, value.count == 8 { handle = Self.bigEndian64(value) }
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

        static let intervalEnd: UInt32 = 1 // NFT_SET_ELEM_INTERVAL_END
    }

    /// Calls `body` with each element of `set` in `inet table`. False when the table or the
    /// set is missing. Nothing is copied on the way.
    func forEachElement(table: String, set: String, _ body: (ElementView) -> Void) throws(Failure) -> Bool {
        try request(type: Self.getSetElement, dump: true, attributes: [(1, Self.cString(table)), (2, Self.cString(set))]) { kind, list in
            // NFTA_SET_ELEM_LIST_ELEMENTS, a list of NFTA_LIST_ELEM.
            guard kind == 3 else { return }
            Self.forEachAttribute(list) { _, item in
                var key: UnsafeRawBufferPointer?
                var timeout: UInt64?
                var expires: UInt64?
                var comment: String?
                var flags: UInt32 = 0
                Self.forEachAttribute(item) { field, value in
                    switch field {
                    case 1: // NFTA_SET_ELEM_KEY, holding NFTA_DATA_VALUE
                        Self.forEachAttribute(value) { inner, data in if inner == 1 { key = data } }
                    case 3 where value.count == 4: // NFTA_SET_ELEM_FLAGS
                        flags = UInt32(value[0]) << 24 | UInt32(value[1]) << 16 | UInt32(value[2]) << 8 | UInt32(value[3])
                    case 4 where value.count == 8: timeout = Self.bigEndian64(value)
                    case 5 where value.count == 8: expires = Self.bigEndian64(value)
                    case 6: comment = Self.comment(userdata: value) // NFTA_SET_ELEM_USERDATA
                    default: break
                    }
                }
                if let key { body(ElementView(key: key, timeout: timeout, expires: expires, comment: comment, flags: flags)) }
            }
        }
    }

    /// Whether `set` holds an element with exactly `key` (the kernel's bytes), asked of the
    /// kernel for that element alone.
    ///
    /// A dump of a large set comes in batches, and the kernel resumes each batch by skipping
    /// as many elements as it has sent; when elements time out or arrive in between, a dump
    /// can miss some that never left. The watcher asks again for each one before calling it
    /// gone.
    func containsElement(table: String, set: String, key: [UInt8]) throws(Failure) -> Bool {
        let nested: UInt16 = 0x8000
        let element = Self.attribute(1 | nested, Self.attribute(1, key)) // NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
        let list = Self.attribute(1 | nested, element)                     // NFTA_LIST_ELEM
        return try request(type: Self.getSetElement, dump: false,
                           attributes: [(1, Self.cString(table)), (2, Self.cString(set)), (3 | nested, list)]) { _, _ in }
    }

    /// One attribute: length, type, value, padded to 4 bytes.
    private static func attribute(_ kind: UInt16, _ value: [UInt8]) -> [UInt8] {
        var bytes = [UInt8]()
        append16(&bytes, UInt16(4 + value.count))
        append16(&bytes, kind)
        bytes += value
        bytes += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        return bytes
    }

    /// The comment in libnftnl's user data: records of a type byte, a length byte and the
    /// value; a comment is type 0, NUL-terminated.
    static func comment(userdata: UnsafeRawBufferPointer) -> String? {
        var offset = 0
        while offset + 2 <= userdata.count {
            let type = userdata[offset]
            let length = Int(userdata[offset + 1])
            guard offset + 2 + length <= userdata.count else { return nil }
            if type == 0 {
                let bytes = userdata[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            offset += 2 + length
        }
        return nil
    }

    /// An address of `family` from its bytes, as nft prints it (inet_ntop).
    static func address(_ bytes: UnsafeRawBufferPointer, family: IPFamily) -> IPAddress? {
        let size = family == .ipv4 ? 4 : 16
        guard bytes.count >= size else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family == .ipv4 ? AF_INET : AF_INET6, bytes.baseAddress, &text, socklen_t(text.count)) != nil
        else { return nil }
        return IPAddress(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), family: family)
    }

    /// Packets and bytes counted by each named counter of `inet table`, by name; empty
    /// without the table (the kernel filters an object dump by table rather than refusing it).
    func counters(table: String) throws(Failure) -> [String: (packets: UInt64, bytes: UInt64)] {
        var counts: [String: (packets: UInt64, bytes: UInt64)] = [:]
        let type = withUnsafeBytes(of: Self.objectCounter.bigEndian) { Array($0) }
        var name: String?
        var packets: UInt64?
        var bytes: UInt64 = 0
        _ = try request(type: Self.getObject, dump: true, attributes: [(1, Self.cString(table)), (3, type)],
                                messageEnd: {
                                    if let name, let packets { counts[name] = (packets, bytes) }
                                    name = nil
                                    packets = nil
                                    bytes = 0
                                }) { kind, value in
            switch kind {
            case 2: // NFTA_OBJ_NAME
                name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
            case 4: // NFTA_OBJ_DATA: NFTA_COUNTER_BYTES (1), NFTA_COUNTER_PACKETS (2)
                Self.forEachAttribute(value) { field, data in
                    if field == 2, data.count == 8 { packets = Self.bigEndian64(data) }
                    if field == 1, data.count == 8 { bytes = Self.bigEndian64(data) }
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
        var message = [UInt8]()
        let flags: UInt16 = dump ? 0x1 | 0x300 : 0x1 // NLM_F_REQUEST, NLM_F_DUMP
        Self.append32(&message, 0) // length, filled in below
        Self.append16(&message, Self.subsystemNftables << 8 | type)
        Self.append16(&message, flags)
        Self.append32(&message, sequence)
        Self.append32(&message, 0)
        message += [Self.familyInet, 0, 0, 0] // nfgenmsg: family, version 0, res_id 0
        for (kind, value) in attributes {
            Self.append16(&message, UInt16(4 + value.count))
            Self.append16(&message, kind)
            message += value
            message += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        }
        withUnsafeBytes(of: UInt32(message.count)) { message.replaceSubrange(0..<4, with: $0) }

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
                var offset = 0
                while offset + 16 <= count {
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                    let kind = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
                    let replySequence = raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
                    guard length >= 16, offset + length <= count else { return false }
                    defer { offset += (length + 3) & ~3 }
                    guard replySequence == sequence else { continue }
                    switch kind {
                    case 3: // NLMSG_DONE
                        return true
                    case 2: // NLMSG_ERROR: a negative errno, 0 for an acknowledgement
                        let code = raw.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self)
                        if code == 0 || -code == ENOENT { return code == 0 }
                        errorCode = -code
                        return false
                    default:
                        guard length >= 20 else { continue }
                        Self.forEachAttribute(UnsafeRawBufferPointer(rebasing: raw[(offset + 20)..<(offset + length)]), body)
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
        var offset = 0
        while offset + 4 <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let kind = bytes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & 0x3fff
            guard length >= 4, offset + length <= bytes.count else { return }
            body(kind, UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
    }

    private static func cString(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    private static func append16(_ bytes: inout [UInt8], _ value: UInt16) {
        withUnsafeBytes(of: value) { bytes += $0 }
    }

    private static func append32(_ bytes: inout [UInt8], _ value: UInt32) {
        withUnsafeBytes(of: value) { bytes += $0 }
    }

    static func bigEndian64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }
}
