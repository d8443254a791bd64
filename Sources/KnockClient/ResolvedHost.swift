import Glibc

/// Which address family the knocks may use. A firewall guards one family per rule set, and
/// a name with both A and AAAA records may resolve to the family the server does not guard.
public enum AddressFamilyPreference: String, Sendable, CaseIterable, CustomStringConvertible {
    case any, ipv4, ipv6

    var addressFamily: Int32 {
        switch self {
        case .any: AF_UNSPEC
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case .ipv4: "IPv4"
        case .ipv6: "IPv6"
        }
    }
}

/// The one address a knock sequence goes to.
public struct ResolvedHost: Hashable, Sendable, CustomStringConvertible {
    public enum Family: String, Hashable, Sendable {
        case ipv4, ipv6
    }

    /// The host as the caller wrote it.
    public let host: String
    /// The address in numeric form, with an IPv6 zone when there is one (`fe80::1%eth0`).
    public let address: String
    public let family: Family
    let socketAddress: SocketAddress

    public var description: String { address }

    /// Takes the first address `getaddrinfo` returns, as other clients do: its order already
    /// follows the system's address selection policy (RFC 6724, `/etc/gai.conf`).
    init(resolving host: String, family preference: AddressFamilyPreference) throws(KnockError) {
        self = try Self.resolving(host, family: preference, everyFamily: false)[0]
    }

    private init(host: String, socketAddress: SocketAddress) {
        self.host = host
        self.socketAddress = socketAddress
        self.family = socketAddress.family == AF_INET ? .ipv4 : .ipv6
        self.address = socketAddress.numericHost()
    }

    /// The first address of each family `host` resolves to, in `getaddrinfo`'s order (so
    /// the preferred family first); one address with `everyFamily` false.
    static func resolving(_ host: String, family preference: AddressFamilyPreference, everyFamily: Bool) throws(KnockError) -> [ResolvedHost] {
        var hints = addrinfo()
        hints.ai_family = preference.addressFamily
        // Any one socket type, so each address is listed once rather than once per type.
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else {
            let reason = status == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(status))
            throw .unresolvable(host: host, family: preference, reason: reason)
        }
        defer { freeaddrinfo(list) }

        var found: [ResolvedHost] = []
        var entry = list
        while let info = entry?.pointee {
            entry = info.ai_next
            guard let socketAddress = SocketAddress(info.ai_addr, length: info.ai_addrlen),
                  !found.contains(where: { $0.socketAddress.family == socketAddress.family }) else { continue }
            found.append(ResolvedHost(host: host, socketAddress: socketAddress))
            if !everyFamily { break }
        }
        guard !found.isEmpty else { throw .unresolvable(host: host, family: preference, reason: "no IPv4 or IPv6 address") }
        return found
    }
}

/// An IPv4 or IPv6 socket address without its port; each knock supplies its own port.
enum SocketAddress: Hashable, Sendable {
    case ipv4(sockaddr_in)
    case ipv6(sockaddr_in6)

    init?(_ address: UnsafeMutablePointer<sockaddr>?, length: socklen_t) {
        guard let address else { return nil }
        switch Int32(address.pointee.sa_family) {
        case AF_INET where Int(length) >= MemoryLayout<sockaddr_in>.size:
            self = .ipv4(UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self))
        case AF_INET6 where Int(length) >= MemoryLayout<sockaddr_in6>.size:
            self = .ipv6(UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self))
        default:
            return nil
        }
    }

    var family: Int32 {
        switch self {
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        }
    }

    /// Calls `body` with this address and `port`, in the form `connect` and `sendto` take.
    func withSockaddr<Result>(port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        switch self {
        case .ipv4(var address):
            address.sin_port = port.bigEndian
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .ipv6(var address):
            address.sin6_port = port.bigEndian
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    func numericHost() -> String {
        var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let status = withSockaddr(port: 0) { getnameinfo($0, $1, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) }
        guard status == 0 else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func == (lhs: Self, rhs: Self) -> Bool { lhs.bytes == rhs.bytes }
    func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    /// The raw bytes, for equality: the imported C structs are not Equatable.
    private var bytes: [UInt8] { withSockaddr(port: 0) { Array(UnsafeRawBufferPointer(start: $0, count: Int($1))) } }
}
