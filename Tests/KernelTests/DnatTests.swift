import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
@testable import KnockTestSupport
import Testing

/// `dnat:` with real packets, on ForwardTests' bed (client, router, backend; forwarding on in
/// the router's namespace only). Here knockc's own nat chain does the DNAT: the router's
/// 2222 reaches the backend's 22 for granted sources only. (The bed's own Docker-like DNAT
/// of 8443 and 51820 is untouched and beside the point.)
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct DnatTests {
    static let spec = """
        sequences:
          ssh:
            knock: [tcp/7000, udp/7100, tcp/7200]
            dnat: { tcp/2222: "\(ForwardTests.backendV4):22", tcp/2223: "[\(ForwardTests.backendV6)]:22" }
            open_for: 1h
        """
    /// Counts the SYNs that reach the backend's port 22.
    static let backendCounter = """
        table inet seen22 {
        \tcounter syns { }
        \tchain input { type filter hook input priority 0; tcp dport 22 tcp flags & (syn | ack) == syn counter name syns; }
        }
        """

    static func backendSyns(_ bed: ForwardTests.Bed) throws -> Int {
        let listing = try runProgram(["ip", "netns", "exec", bed.backend.name, "nft", "list", "counter", "inet", "seen22", "syns"]).output
        guard let range = listing.range(of: "packets ") else { return -1 }
        return Int(listing[range.upperBound...].prefix { $0.isNumber }) ?? -1
    }

    @Test("a dnat port is refused without a grant, reaches the backend after knocking, not for another source, and its connection outlives a revoke",
          arguments: [IPFamily.ipv4, .ipv6])
    func dnatPortNeedsAGrant(family: IPFamily) throws {
        let router = family == .ipv4 ? "192.0.2.1" : "2001:db8::1"
        let client = family == .ipv4 ? Testbed.clientV4 : Testbed.clientV6
        let second = family == .ipv4 ? ForwardTests.secondClientV4 : ForwardTests.secondClientV6
        let port: UInt16 = family == .ipv4 ? 2222 : 2223
        try ForwardTests.withBed { bed in
            try ForwardTests.nft(Self.backendCounter, in: bed.backend)
            let backend = try bed.backend.perform { try TCPListener(port: 22, family: family) }
            try ForwardTests.apply(Self.spec, in: bed.router)

            #expect(try bed.client.connect(to: router, port: port, from: client) == .refused,
                    "without a grant the router's own closed port answers")
            #expect(try Self.backendSyns(bed) == 0, "the backend sees nothing without a grant")

            try bed.client.knock(router, ForwardTests.knocks)
            let status = try bed.router.grants()
            #expect(status.map(\.port) == [TransportPort(.tcp, port)], "the grant is the local port the client used, in its family only")
            #expect(status.first?.sequences == ["ssh"])

            let connection = try #require(try bed.client.perform { TCPProbe.connect(to: router, port: port, from: client).1 },
                                          "after knocking the client reaches the backend's 22")
            let served = try backend.accept()
            try connection.send("hello")
            #expect(served.receive() == "hello")
            try served.send("hi back")
            #expect(connection.receive() == "hi back")
            #expect(try Self.backendSyns(bed) == 1)

            #expect(try bed.client.connect(to: router, port: port, from: second) == .refused,
                    "another source of the client's network has no grant")
            #expect(try Self.backendSyns(bed) == 1, "nor does it reach the backend")

            let source = try #require(IPAddress(client, family: family))
            let outcome = try bed.router.perform { try Revoker().revoke(source: source, sequence: nil, table: "knockc") }
            #expect(outcome?.grants == [TransportPort(.tcp, port)])
            #expect(try bed.client.connect(to: router, port: port, from: client) == .refused, "the revoke ends new connections")
            try connection.send("still here")
            #expect(served.receive() == "still here", "an established connection outlives its grant")
            try served.send("and back")
            #expect(connection.receive() == "and back")
        }
    }
}
