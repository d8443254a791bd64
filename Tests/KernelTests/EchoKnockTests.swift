import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
import Testing

/// `icmp/LEN` knocks: an echo request with LEN bytes of payload, over IPv4 and IPv6.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct EchoKnockTests {
    static let spec = """
        sequences:
          ssh:
            knock: [tcp/7000, icmp/100, udp/8000]
            open: [tcp/22]
            step_timeout: 3s
        """

    /// An echo request of another size is no knock of the sequence, so, like a packet to a port
    /// the sequence does not knock on, it is ignored: it neither counts nor resets (README,
    /// "Ports that are not in the sequence are ignored").
    @Test("ping -s LEN counts as the knock; a ping of another size does not count and is ignored", arguments: [IPFamily.ipv4, .ipv6])
    func pingKnocks(family: IPFamily) throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22, family: family)
            try bed.apply(Self.spec)
            let server = family == .ipv4 ? Testbed.serverV4 : Testbed.serverV6
            func ping(_ size: Int) throws {
                // The echo is answered as usual: the knock chain only reads and writes sets.
                try runProgram(["ip", "netns", "exec", bed.client.name, "ping", "-c1", "-W2", "-s", String(size), server])
            }
            try bed.client.knock(server, [.tcp(7000)])
            try ping(56)
            try bed.client.knock(server, [.udp(8000)])
            #expect(try bed.client.connect(to: server, port: 22) == .refused, "a default ping is not the knock")

            // A ping of another size between the knocks changes nothing.
            try bed.client.knock(server, [.tcp(7000)])
            try ping(100)
            try ping(56)
            try bed.client.knock(server, [.udp(8000)])
            #expect(try bed.client.connect(to: server, port: 22) == .connected, "a default ping was not ignored")
            _ = listener
        }
    }

    @Test("knockc knock sends icmp/LEN itself", arguments: [IPFamily.ipv4, .ipv6])
    func clientSendsEcho(family: IPFamily) throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22, family: family)
            try bed.apply(Self.spec)
            let server = family == .ipv4 ? Testbed.serverV4 : Testbed.serverV6
            try bed.client.knock(server, [.tcp(7000), .icmpEcho(payloadLength: 100), .udp(8000)])
            #expect(try bed.client.connect(to: server, port: 22) == .connected)
            _ = listener
        }
    }

    /// In the client's namespace no group may open a ping socket, and `nobody` has no
    /// CAP_NET_RAW for a raw one. A counting table in the server shows what arrived.
    @Test("knock as a user who cannot send an ICMP echo sends no knock at all, says why, and exits 4")
    func unprivilegedEchoSendsNothing() throws {
        try Testbed.with { bed in
            try bed.applyScript("""
                table inet probe {
                    counter tcp7000 {}
                    counter udp8000 {}
                    chain input {
                        type filter hook input priority -100; policy accept;
                        tcp dport 7000 counter name tcp7000
                        udp dport 8000 counter name udp8000
                    }
                }

                """)
            func arrived() throws -> [Int] {
                try ["tcp7000", "udp8000"].map { name in
                    let listing = try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "list", "counter", "inet", "probe", name]).output
                    guard let range = listing.range(of: #"packets [0-9]+"#, options: .regularExpression) else {
                        throw NetworkNamespace.Failure(description: "no packet count in \(listing)")
                    }
                    return Int(listing[range].dropFirst("packets ".count))!
                }
            }
            try runProgram(["ip", "netns", "exec", bed.client.name, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=1 0"])
            let knock = [CommandLineTests.knockc, "knock", Testbed.serverV4, "tcp/7000", "udp/8000", "icmp/100", "--delay", "20ms"]
            let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

            let refused = try runProgram(["ip", "netns", "exec", bed.client.name] + nobody + knock, allowFailure: true)
            #expect(refused.status == 4, "\(refused.output)\(refused.error)")
            #expect(refused.error.contains("cannot send knock icmp/100 to \(Testbed.serverV4), so no knock was sent"), "\(refused.error)")
            #expect(refused.error.contains("net.ipv4.ping_group_range"))
            #expect(refused.error.contains("root or CAP_NET_RAW"))
            #expect(!refused.output.contains("knocked"))
            #expect(try arrived() == [0, 0], "a knock left the client")

            // The same knock as root arrives: the counters would have seen the knocks.
            let sent = try runProgram(["ip", "netns", "exec", bed.client.name] + knock, allowFailure: true)
            #expect(sent.status == 0, "\(sent.error)")
            #expect(try arrived() == [1, 1])
        }
    }
}
