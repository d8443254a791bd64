import CNftables
import Glibc

/// What the kernel announces of each committed transaction (an apply, a revoke, any
/// `nft add element`), as `nft monitor` hears it: the NFNLGRP_NFTABLES multicast group, one
/// message per element added or deleted and one per table, chain, rule, set or object
/// changed, then the transaction's new generation.
///
/// Why the watcher listens: a transaction moves the ruleset's generation, and without knowing
/// what it changed the watcher would have to read every grant (at 100,000 grants a dump walks
/// the set about 200 times over, most of a second of the kernel's time). With these it asks
/// the kernel about the few elements named instead. Knocks and timeouts are announced by
/// nothing (see `GrantWatcher`); these cover transactions only.
final class TransactionNotices {
    /// One announcement, as far as the watcher needs it.
    enum Notice {
        /// A transaction was committed; the ruleset is now at this generation.
        case generation(UInt32)
        /// An element of `set` in the watched table was added or deleted; its key's bytes are
        /// valid only during the call.
        case element(set: String, key: UnsafeRawBufferPointer)
        /// Something else of the watched table changed (a table, chain, rule, set or object), or
        /// an inet table got a change of a kind this reader does not know.
        case other
    }

    /// NFPROTO_INET, as in `NetlinkDump`.
    private static let familyInet: UInt8 = 1

    private let descriptor: Int32
    private let table: [UInt8]
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    /// Joins the group in the calling thread's network namespace; from then on every
    /// transaction's notifications queue up until `drain` reads them.
    init(table: String) throws(NetlinkDump.Failure) {
        // Room for the notifications of thousands of elements between two readings; past that
        // the kernel drops them and `drain` says so.
        descriptor = try NetlinkDump.openSocket(receiveBuffer: 4 << 20, force: true)
        var group = Int32(NFNLGRP_NFTABLES.rawValue)
        guard setsockopt(descriptor, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let error = errno
            close(descriptor)
            throw NetlinkDump.Failure(description: "netlink membership: \(String(cString: strerror(error)))")
        }
        self.table = Array(table.utf8)
    }

    deinit { close(descriptor) }

    /// Hands `body` every notification queued now, in the order the kernel sent them. False
    /// when some were lost: the queue overflowed, and what changed is no longer known.
    func drain(_ body: (Notice) -> Void) throws(NetlinkDump.Failure) -> Bool {
        var complete = true
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN: return complete
                case ENOBUFS: complete = false
                default: throw NetlinkDump.Failure(description: "netlink receive: \(String(cString: strerror(errno)))")
                }
                continue
            }
            buffer.withUnsafeBytes { parse(UnsafeRawBufferPointer(rebasing: $0[..<count]), body) }
        }
    }

    /// Waits up to `milliseconds` for a notification to arrive; false if none did.
    func wait(milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    private func parse(_ bytes: UnsafeRawBufferPointer, _ body: (Notice) -> Void) {
        let headerSize = MemoryLayout<nlmsghdr>.size
        let attributesStart = headerSize + MemoryLayout<nfgenmsg>.size
        var offset = 0
        while offset + headerSize <= bytes.count {
            let header = bytes.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self)
            let length = Int(header.nlmsg_len)
            guard length >= attributesStart, offset + length <= bytes.count else { return }
            defer { offset += (length + 3) & ~3 }
            guard header.nlmsg_type >> 8 == UInt16(NFNL_SUBSYS_NFTABLES) else { continue }
            let family = bytes.loadUnaligned(fromByteOffset: offset + headerSize, as: nfgenmsg.self).nfgen_family
            let attributes = UnsafeRawBufferPointer(rebasing: bytes[(offset + attributesStart)..<(offset + length)])
            notice(type: header.nlmsg_type & 0xff, family: family, attributes, body)
        }
    }

    private func notice(type: UInt16, family: UInt8, _ attributes: UnsafeRawBufferPointer, _ body: (Notice) -> Void) {
        if type == wire(NFT_MSG_NEWGEN) {
            NetlinkDump.forEachAttribute(attributes) { kind, value in
                if kind == wire(NFTA_GEN_ID), value.count == 4 { body(.generation(NetlinkDump.bigEndian32(value))) }
            }
            return
        }
        // Only an inet table can be the watched one.
        guard family == Self.familyInet else { return }
        guard let tableAttribute = Self.tableAttribute(type) else { return body(.other) }
        var ours = false
        var set: String?
        var elements: UnsafeRawBufferPointer?
        NetlinkDump.forEachAttribute(attributes) { kind, value in
            if kind == tableAttribute { ours = value.prefix { $0 != 0 }.elementsEqual(table) }
            if type == wire(NFT_MSG_NEWSETELEM) || type == wire(NFT_MSG_DELSETELEM) {
                if kind == wire(NFTA_SET_ELEM_LIST_SET) { set = NetlinkDump.string(value) }
                if kind == wire(NFTA_SET_ELEM_LIST_ELEMENTS) { elements = value }
            }
        }
        guard ours else { return }
        guard let set, let elements else { return body(.other) }
        NetlinkDump.forEachElement(inList: elements) { body(.element(set: set, key: $0.key)) }
    }

    /// The attribute that names the table in each kind of message the kernel announces; nil
    /// for a kind unknown here (one newer than these headers, such as a DESTROY message).
    private static func tableAttribute(_ type: UInt16) -> UInt16? {
        switch type {
        case wire(NFT_MSG_NEWTABLE), wire(NFT_MSG_DELTABLE): wire(NFTA_TABLE_NAME)
        case wire(NFT_MSG_NEWCHAIN), wire(NFT_MSG_DELCHAIN): wire(NFTA_CHAIN_TABLE)
        case wire(NFT_MSG_NEWRULE), wire(NFT_MSG_DELRULE): wire(NFTA_RULE_TABLE)
        case wire(NFT_MSG_NEWSET), wire(NFT_MSG_DELSET): wire(NFTA_SET_TABLE)
        case wire(NFT_MSG_NEWSETELEM), wire(NFT_MSG_DELSETELEM): wire(NFTA_SET_ELEM_LIST_TABLE)
        case wire(NFT_MSG_NEWOBJ), wire(NFT_MSG_DELOBJ): wire(NFTA_OBJ_TABLE)
        case wire(NFT_MSG_NEWFLOWTABLE), wire(NFT_MSG_DELFLOWTABLE): wire(NFTA_FLOWTABLE_TABLE)
        default: nil
        }
    }
}
