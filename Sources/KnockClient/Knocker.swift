import Glibc
import KnockCore

/// Sends a knock sequence to one host, one packet per knock.
///
/// The firewall side counts packets, not connections, so every knock must put exactly one
/// packet on the wire: a TCP knock is a SYN from a non-blocking `connect()` that is abandoned
/// at once, a UDP knock is one empty datagram. Each knock uses a fresh socket, so no state
/// (a half-open connection, a connected UDP peer) carries from one knock to the next.
public struct Knocker: Sendable {
    /// The host as the caller wrote it: a literal address or a name.
    public var host: String
    /// The pause between two knocks; none follows the last one.
    public var delay: KnockCore.Duration
    public var family: AddressFamilyPreference

    public init(host: String, delay: KnockCore.Duration, family: AddressFamilyPreference = .any) {
        self.host = host
        self.delay = delay
        self.family = family
    }

    /// Resolves `host` to the one address every knock goes to, so a caller can show it
    /// before knocking.
    public func resolve() throws(KnockError) -> ResolvedHost {
        try ResolvedHost(resolving: host, family: family)
    }

    /// Resolves `host` to one address per family it has (one address with `-4` or `-6`):
    /// a client may knock over one family and connect over the other (ssh picks its own),
    /// and a grant covers only the address that knocked, so `knockc knock` knocks over each.
    public func resolveEveryFamily() throws(KnockError) -> [ResolvedHost] {
        try ResolvedHost.resolving(host, family: family, everyFamily: true)
    }

    /// Resolves `host` once, then sends the knocks in order.
    public func send(_ knocks: [Knock]) throws(KnockError) {
        try send(knocks, to: resolve())
    }

    /// Sends the knocks in order to an address resolved earlier. The address is resolved
    /// once for the whole sequence because a name with several addresses would otherwise
    /// spread one sequence over several hosts. Stops at the first knock that fails; the
    /// knocks after it are not sent.
    ///
    /// Before the first knock it checks that every knock can be sent (`checkSendable`): a
    /// sequence that fails part-way leaves the server holding the knocks before the failure.
    public func send(_ knocks: [Knock], to target: ResolvedHost) throws(KnockError) {
        try Self.checkSendable(knocks, to: target)
        for (index, knock) in knocks.enumerated() {
            if index > 0 { Self.pause(for: delay) }
            try Self.sendOne(knock, to: target)
        }
    }

    /// Throws, having sent nothing, when a knock of `knocks` could not be sent from this
    /// process. Only an ICMP knock needs a privilege: a raw socket (root or CAP_NET_RAW), or a
    /// ping socket, which net.ipv4.ping_group_range allows per group. TCP and UDP sockets need
    /// none, so their knocks are not tried ahead.
    public static func checkSendable(_ knocks: [Knock], to target: ResolvedHost) throws(KnockError) {
        for knock in knocks {
            guard case .icmpEcho = knock else { continue }
            let descriptor = try openEchoSocket(target, knock: knock)
            _ = Glibc.close(descriptor)
            return
        }
    }

    /// A socket for echo requests to `target`'s family: a ping socket when the caller's group
    /// may have one, otherwise a raw socket.
    private static func openEchoSocket(_ target: ResolvedHost, knock: Knock) throws(KnockError) -> Int32 {
        let proto = target.socketAddress.family == AF_INET ? Int32(IPPROTO_ICMP) : Int32(IPPROTO_ICMPV6)
        let ping = socket(target.socketAddress.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
        if ping >= 0 { return ping }
        let pingErrno = errno
        let raw = socket(target.socketAddress.family, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
        if raw >= 0 { return raw }
        let rawErrno = errno
        throw .echoNotPermitted(knock: knock, address: target.address, pingErrno: pingErrno, rawErrno: rawErrno)
    }

    private static func sendOne(_ knock: Knock, to target: ResolvedHost) throws(KnockError) {
        switch knock {
        case .port(let transportPort):
            switch transportPort.proto {
            case .tcp: try sendSYN(to: target, port: transportPort.port, knock: knock)
            case .udp: try sendDatagram(to: target, port: transportPort.port, knock: knock)
            }
        case .icmpEcho(let length):
            try sendEcho(to: target, payloadLength: length, knock: knock)
        }
    }

    /// An ICMP knock: one echo request with `payloadLength` bytes of payload, as
    /// `ping -c1 -s LEN` sends. An unprivileged ping socket is tried first (allowed when
    /// net.ipv4.ping_group_range includes the caller's group); otherwise a raw socket, which
    /// needs root or CAP_NET_RAW.
    private static func sendEcho(to target: ResolvedHost, payloadLength: Int, knock: Knock) throws(KnockError) {
        let isIPv4 = target.socketAddress.family == AF_INET
        let descriptor = try openEchoSocket(target, knock: knock)
        defer { _ = Glibc.close(descriptor) }
        // Type, code, checksum, identifier, sequence, then the payload. A ping socket sets
        // the identifier and checksum itself; for ICMPv6 the kernel always sums the packet.
        var packet = [UInt8](repeating: 0, count: 8 + payloadLength)
        packet[0] = isIPv4 ? 8 : 128
        packet[4] = UInt8(truncatingIfNeeded: getpid() >> 8)
        packet[5] = UInt8(truncatingIfNeeded: getpid())
        packet[7] = 1
        for index in 0..<payloadLength { packet[8 + index] = UInt8(truncatingIfNeeded: index) }
        if isIPv4 {
            let sum = internetChecksum(packet)
            packet[2] = UInt8(sum >> 8)
            packet[3] = UInt8(sum & 0xff)
        }
        while true {
            let sent = target.socketAddress.withSockaddr(port: 0) { sendto(descriptor, packet, packet.count, 0, $0, $1) }
            if sent >= 0 { return }
            let code = errno
            if code != EINTR { throw .sendFailed(knock: knock, address: target.address, call: "sendto", errno: code) }
        }
    }

    /// RFC 1071: the ones' complement of the ones' complement sum of 16-bit words.
    static func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// A TCP knock. `connect()` on a non-blocking socket transmits the SYN before it
    /// returns; closing the socket right away takes the connection out of the kernel
    /// before the retransmission timer fires, so the SYN is never sent twice.
    private static func sendSYN(to target: ResolvedHost, port: UInt16, knock: Knock) throws(KnockError) {
        let socket = try KnockSocket(target, type: SOCK_STREAM, nonBlocking: true, knock: knock)
        defer { socket.close() }
        // Over a short path (loopback, a LAN) the handshake can finish before close(). A zero
        // linger then resets the connection rather than closing it gracefully, so the server
        // is not left with an idle connection and this side keeps no TIME_WAIT. A socket
        // still in SYN-SENT is discarded without sending anything, linger or not.
        var noLinger = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(socket.descriptor, SOL_SOCKET, SO_LINGER, &noLinger, socklen_t(MemoryLayout<linger>.size))

        let status = target.socketAddress.withSockaddr(port: port) { connect(socket.descriptor, $0, $1) }
        guard status != 0 else { return }
        switch errno {
        // In progress (or interrupted, which leaves it in progress): the SYN is out.
        // Refused: the SYN was answered by a reset, which is all a knock needs.
        case EINPROGRESS, EINTR, ECONNREFUSED: return
        case let code: throw .sendFailed(knock: knock, address: target.address, call: "connect", errno: code)
        }
    }

    /// One authorized packet: a datagram to `port` whose payload is `token`.
    public func sendAuthorized(token: [UInt8], port: UInt16, to target: ResolvedHost) throws(KnockError) {
        try Self.sendDatagram(to: target, port: port, knock: .port(TransportPort(.udp, port)), payload: token)
    }

    /// A UDP knock: one datagram with no payload, since the firewall matches the port only
    /// (an authorized packet carries its token).
    private static func sendDatagram(to target: ResolvedHost, port: UInt16, knock: Knock, payload: [UInt8] = []) throws(KnockError) {
        let socket = try KnockSocket(target, type: SOCK_DGRAM, nonBlocking: false, knock: knock)
        defer { socket.close() }
        while true {
            let sent = target.socketAddress.withSockaddr(port: port) { address, length in
                payload.withUnsafeBytes { sendto(socket.descriptor, $0.baseAddress, $0.count, 0, address, length) }
            }
            if sent >= 0 { return }
            let code = errno
            if code != EINTR {
                throw .sendFailed(knock: knock, address: target.address, call: "sendto", errno: code)
            }
        }
    }

    /// Blocks the calling thread for the delay; `send` is synchronous, and an interrupting
    /// signal only shortens one `nanosleep` call, not the pause.
    private static func pause(for delay: KnockCore.Duration) {
        guard delay.milliseconds > 0 else { return }
        var request = timespec(
            tv_sec: Int(delay.milliseconds / 1000),
            tv_nsec: Int(delay.milliseconds % 1000) * 1_000_000
        )
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR {
            request = remaining
        }
    }
}

/// A socket for one knock, opened close-on-exec so a knock never leaks into a child process.
private struct KnockSocket {
    let descriptor: Int32

    init(_ target: ResolvedHost, type: __socket_type, nonBlocking: Bool, knock: Knock) throws(KnockError) {
        var flags = Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { flags |= Int32(SOCK_NONBLOCK.rawValue) }
        let descriptor = socket(target.socketAddress.family, flags, 0)
        guard descriptor >= 0 else {
            throw .sendFailed(knock: knock, address: target.address, call: "socket", errno: errno)
        }
        self.descriptor = descriptor
    }

    func close() { _ = Glibc.close(descriptor) }
}
