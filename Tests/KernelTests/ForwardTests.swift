import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
@testable import KnockTestSupport
import Testing

/// `forward:` with real packets: a router that publishes a backend's port the way Docker does
/// (a DNAT in a table knockc does not own) and guards it with knockc's table.
///
///     client   192.0.2.2     2001:db8::2   ── router  192.0.2.1     2001:db8::1
///              192.0.2.3     (a second source)         198.51.100.1  2001:db8:1::1  ── backend  198.51.100.10  2001:db8:1::10
///
/// Plain veth pairs, no bridge: with br_netfilter on, a bridged client would see a
/// forward-hook reject leave with the wrong address (see NFTABLES-NOTES).
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct ForwardTests {
    static let spec = """
        sequences:
          web:
            knock: [tcp/7000, udp/7100, tcp/7200]
            forward: [tcp/8443]
            open_for: 1h
        """
    static let knocks: [Knock] = [.tcp(7000), .udp(7100), .tcp(7200)]
    static let secondClientV4 = "192.0.2.3"
    static let secondClientV6 = "2001:db8::3"
    static let backendV4 = "198.51.100.10"
    static let backendV6 = "2001:db8:1::10"

    /// The DNAT that `docker run -p 8443:443` makes, in a table of its own, for both families:
    /// for connections to the router's own addresses only (Docker's `--dst-type LOCAL`).
    static let dockerish = """
        table ip dockerish {
        \tchain prerouting { type nat hook prerouting priority dstnat; fib daddr type local tcp dport 8443 dnat to \(backendV4):443; fib daddr type local udp dport 51820 dnat to \(backendV4):5182; }
        }
        table ip6 dockerish6 {
        \tchain prerouting { type nat hook prerouting priority dstnat; fib daddr type local tcp dport 8443 dnat to [\(backendV6)]:443; }
        }
        """
    /// Counts what reaches the backend's port 443, to show that a refused SYN never got there.
    static let backendCounter = """
        table inet seen {
        \tcounter syns { }
        \tchain input { type filter hook input priority 0; tcp dport 443 tcp flags & (syn | ack) == syn counter name syns; }
        }
        """

    struct Bed {
        let client: NetworkNamespace
        let router: NetworkNamespace
        let backend: NetworkNamespace

        /// The SYNs that reached the backend's port 443.
        func backendSyns() throws -> Int {
            let listing = try runProgram(["ip", "netns", "exec", backend.name, "nft", "list", "counter", "inet", "seen", "syns"]).output
            guard let range = listing.range(of: "packets ") else { return -1 }
            return Int(listing[range.upperBound...].prefix { $0.isNumber }) ?? -1
        }
    }

    private static let counter = BedCounter()

    static func withBed<T>(_ body: (Bed) throws -> T) throws -> T {
        let number = counter.next()
        let id = "kf\(getpid())x\(number)"
        let bed = Bed(client: NetworkNamespace(name: "\(id)c"), router: NetworkNamespace(name: "\(id)r"),
                      backend: NetworkNamespace(name: "\(id)b"))
        defer {
            for namespace in [bed.client, bed.router, bed.backend] {
                _ = try? runProgram(["ip", "netns", "del", namespace.name], allowFailure: true)
            }
        }
        for namespace in [bed.client, bed.router, bed.backend] {
            try runProgram(["ip", "netns", "add", namespace.name])
            try runProgram(["ip", "-n", namespace.name, "link", "set", "lo", "up"])
        }
        try link("\(id)a", bed.router, ("192.0.2.1", "2001:db8::1"), bed.client, (Testbed.clientV4, Testbed.clientV6))
        try link("\(id)b", bed.router, ("198.51.100.1", "2001:db8:1::1"), bed.backend, (backendV4, backendV6))
        try runProgram(["ip", "-n", bed.client.name, "addr", "add", secondClientV4 + "/24", "dev", "\(id)ap"])
        try runProgram(["ip", "-n", bed.client.name, "addr", "add", secondClientV6 + "/64", "dev", "\(id)ap", "nodad", "preferred_lft", "0"])
        for (namespace, v4, v6) in [(bed.client, "192.0.2.1", "2001:db8::1"), (bed.backend, "198.51.100.1", "2001:db8:1::1")] {
            try runProgram(["ip", "-n", namespace.name, "route", "add", "default", "via", v4])
            try runProgram(["ip", "-n", namespace.name, "-6", "route", "add", "default", "via", v6])
        }
        // Forwarding in the router's namespace only; each namespace has its own.
        try runProgram(["ip", "netns", "exec", bed.router.name, "sysctl", "-qw",
                        "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
        try nft(dockerish, in: bed.router)
        try nft(backendCounter, in: bed.backend)
        // Neighbour discovery first: an IPv6 path's first packets can be lost while the router
        // resolves both sides, which a 1 s connect would read as a timeout.
        for address in [backendV4, backendV6] {
            _ = eventually(within: 5, every: 0.2) {
                (try? runProgram(["ip", "netns", "exec", bed.client.name, "ping", "-c1", "-W1", address], allowFailure: true).status) == 0
            }
        }
        return try body(bed)
    }

    static func link(_ name: String, _ router: NetworkNamespace, _ routerAddresses: (String, String),
                     _ peer: NetworkNamespace, _ peerAddresses: (String, String)) throws {
        try runProgram(["ip", "link", "add", name + "r", "netns", router.name, "type", "veth", "peer", "name", name + "p", "netns", peer.name])
        for (namespace, device, (v4, v6)) in [(router, name + "r", routerAddresses), (peer, name + "p", peerAddresses)] {
            try runProgram(["ip", "-n", namespace.name, "addr", "add", "\(v4)/24", "dev", device])
            try runProgram(["ip", "-n", namespace.name, "addr", "add", "\(v6)/64", "dev", device, "nodad"])
            try runProgram(["ip", "-n", namespace.name, "link", "set", device, "up"])
        }
    }

    static func nft(_ script: String, in namespace: NetworkNamespace) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-forward-\(getpid())-\(UUID().uuidString).nft")
        try script.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try runProgram(["ip", "netns", "exec", namespace.name, "nft", "-f", file.path])
    }

    static func apply(_ yaml: String, in router: NetworkNamespace) throws {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "test.yaml")
        guard let spec else { throw NetworkNamespace.Failure(description: "spec has errors: \(diagnostics)") }
        try router.perform { _ = try RulesetApplier().apply(spec) }
    }

    @Test("a forwarded port (Docker's published 8443 to a backend's 443) is refused without a grant, reached after knocking, and its connection outlives a revoke",
          arguments: [IPFamily.ipv4, .ipv6])
    func forwardedPortNeedsAGrant(family: IPFamily) throws {
        let router = family == .ipv4 ? "192.0.2.1" : "2001:db8::1"
        let client = family == .ipv4 ? Testbed.clientV4 : Testbed.clientV6
        let second = family == .ipv4 ? Self.secondClientV4 : Self.secondClientV6
        try Self.withBed { bed in
            let backend = try bed.backend.perform { try TCPListener(port: 443, family: family) }
            // Without knockc, the DNAT alone publishes the port.
            #expect(try bed.client.connect(to: router, port: 8443, from: client) == .connected)
            _ = try backend.accept()
            let before = try bed.backendSyns()
            #expect(before == 1)

            try Self.apply(Self.spec, in: bed.router)
            #expect(try bed.client.connect(to: router, port: 8443, from: client) == .refused,
                    "without a grant the client gets a reset, as from a closed port")
            #expect(try bed.backendSyns() == before, "the backend sees nothing of a refused connection")

            try bed.client.knock(router, Self.knocks)
            let status = try bed.router.grants()
            #expect(status.map(\.port) == [TransportPort(.tcp, 8443)])
            #expect(status.first?.sequences == ["web"], "the forwarded grant is attributed to its sequence")

            let connection = try #require(try bed.client.perform { TCPProbe.connect(to: router, port: 8443, from: client).1 },
                                          "after knocking the client reaches the backend")
            let served = try backend.accept()
            try connection.send("hello")
            #expect(served.receive() == "hello")
            #expect(try bed.client.connect(to: router, port: 8443, from: second) == .refused,
                    "another source of the client's network has no grant")

            let source = try #require(IPAddress(client, family: family))
            let outcome = try bed.router.perform { try Revoker().revoke(source: source, sequence: nil, table: "knockc") }
            #expect(outcome?.grants == [TransportPort(.tcp, 8443)])
            #expect(try bed.client.connect(to: router, port: 8443, from: client) == .refused, "the revoke ends new connections")
            try connection.send("still here")
            #expect(served.receive() == "still here", "an established connection outlives its grant")
            try served.send("and back")
            #expect(connection.receive() == "and back")
        }
    }

    @Test("only published connections are guarded: a backend's own connection out to a forwarded port number passes, and the router serving a forwarded port itself (a userland proxy) is guarded too")
    func onlyPublishedConnectionsAreGuarded() throws {
        try Self.withBed { bed in
            try Self.apply(Self.spec.replacingOccurrences(of: "forward: [tcp/8443]", with: "forward: [tcp/8443, tcp/9443]"), in: bed.router)
            // A service on the client's side that the backend reaches through the router, on a
            // port knockc guards when published: routed, not DNATed, not knockc's business.
            let outside = try bed.client.perform { try TCPListener(port: 8443, family: .ipv4) }
            #expect(try bed.backend.connect(to: Testbed.clientV4, port: 8443) == .connected, "the backend's outbound connection was refused")
            // The router itself listens on a forwarded port, as Docker's userland proxy does.
            let proxy = try bed.router.perform { try TCPListener(port: 9443, family: .ipv4) }
            #expect(try bed.client.connect(to: "192.0.2.1", port: 9443) == .refused, "a locally served forwarded port was open without a knock")
            try bed.client.knock("192.0.2.1", Self.knocks)
            #expect(try bed.client.connect(to: "192.0.2.1", port: 9443) == .connected)
            _ = (outside, proxy)
        }
    }

    @Test("a forwarded UDP port answers port unreachable without a grant, echoes after knocking, and the close knocks end the grant")
    func forwardedUDPPort() throws {
        let spec = """
            sequences:
              vpn:
                knock: [tcp/7000, udp/7100, tcp/7200]
                close: [udp/7300, tcp/7400]
                forward: [udp/51820]
                open_for: 1h
            """
        try Self.withBed { bed in
            let echo = try bed.backend.perform { try UDPEcho(port: 5182) }
            #expect(try bed.client.sendUDP(to: "192.0.2.1", port: 51820) == .connected, "the DNAT alone publishes the port")
            try Self.apply(spec, in: bed.router)
            #expect(try bed.client.sendUDP(to: "192.0.2.1", port: 51820) == .refused, "as a closed udp port")
            try bed.client.knock("192.0.2.1", Self.knocks)
            #expect(try bed.client.sendUDP(to: "192.0.2.1", port: 51820) == .connected)
            try bed.client.knock("192.0.2.1", [.udp(7300), .tcp(7400)])
            #expect(try bed.client.sendUDP(to: "192.0.2.1", port: 51820) == .refused, "the close knocks end a forwarded grant")
            _ = echo
        }
    }
}

private final class BedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.withLock { value += 1; return value } }
}
