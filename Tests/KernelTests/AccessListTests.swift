import Foundation
import Glibc
import KnockCore
import Testing

/// allow, deny and from, for IPv4 and IPv6, decided by the kernel.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct AccessListTests {
    static let knocks = KnockSemanticsTests.sequence

    @Test("allow reaches guarded ports without knocking; from ignores knocks of other sources")
    func allowAndFrom() throws {
        try Testbed.with { bed in
            let v4 = try bed.listen(tcpPort: 22)
            let v6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply("""
                allow: [\(Testbed.otherV4)]
                sequences:
                  ssh:
                    knock: [tcp/7000, udp/9000, tcp/8000]
                    open: [tcp/22]
                    from: [192.0.2.0/24, 2001:db8::/64]
                """)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected, "allowed without a knock")
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .refused, "allow named only the IPv4 address")

            // 2001:db8:1::2 is outside `from`: its correct knocks are not seen.
            try bed.other.knock(Testbed.serverOtherV6, Self.knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .refused)
            try bed.client.knock(Testbed.serverV6, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            _ = (v4, v6)
        }
    }

    @Test("deny keeps a source out even with the correct sequence, on both families")
    func deny() throws {
        try Testbed.with { bed in
            let v4 = try bed.listen(tcpPort: 22)
            let v6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply("""
                deny: [\(Testbed.clientV4), \(Testbed.clientV6)/128]
                sequences:
                  ssh:
                    knock: [tcp/7000, udp/9000, tcp/8000]
                    open: [tcp/22]
                """)
            for (client, server) in [(bed.client, Testbed.serverV4), (bed.client, Testbed.serverV6)] {
                try client.knock(server, Self.knocks)
                #expect(try client.connect(to: server, port: 22) == .refused, "\(server)")
            }
            try bed.other.knock(Testbed.serverOtherV4, Self.knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            _ = (v4, v6)
        }
    }

    @Test("a sequence's own allow and deny only concern that sequence's ports and knocks")
    func perSequenceLists() throws {
        try Testbed.with { bed in
            let ssh = try bed.listen(tcpPort: 22)
            let web = try bed.listen(tcpPort: 443)
            try bed.apply("""
                sequences:
                  ssh:
                    knock: [tcp/7000, udp/9000, tcp/8000]
                    open: [tcp/22]
                    deny: [\(Testbed.otherV4)]
                  web:
                    knock: [udp/6000, tcp/4000, udp/5000]
                    open: [tcp/443]
                    allow: [198.51.100.0/24]
                """)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 443) == .connected, "web allows it")
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            try bed.other.knock(Testbed.serverOtherV4, Self.knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused, "ssh denies its knocks")
            try bed.client.knock(Testbed.serverV4, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = (ssh, web)
        }
    }
}
