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

    @Test("ping -s LEN counts as the knock, and a ping of another size resets", arguments: [IPFamily.ipv4, .ipv6])
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

            try bed.client.knock(server, [.tcp(7000)])
            try ping(100)
            try bed.client.knock(server, [.udp(8000)])
            #expect(try bed.client.connect(to: server, port: 22) == .connected)
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
}
