import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
@testable import KnockKernel
import Testing

/// Wrong knocks and decoys ban a source: its knocks are ignored until the ban ends.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct BanTests {
    static let knocks = KnockSemanticsTests.sequence
    static let decoySpec = """
        limits: { ban_for: 1h }
        decoys: [tcp/23, tcp/2000-2100, udp/161]
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
        """

    @Test("more wrong knocks than the limit ban the source until ban_for ends")
    func wrongKnocksBan() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply("""
                limits: { wrong_knocks: 2/minute, ban_for: 2s }
                sequences:
                  ssh:
                    knock: [tcp/7000, udp/9000, tcp/8000]
                    open: [tcp/22]
                """)
            // Two wrong knocks are within the limit: the source still gets in.
            for _ in 0..<2 { try bed.client.knock(Testbed.serverV4, [.tcp(7000), .tcp(8000)]) }
            try bed.client.knock(Testbed.serverV4, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)

            // The third wrong knock within the minute bans it: the correct sequence now fails.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .tcp(8000)])
            try bed.server.perform { () throws -> Void in
                _ = try Revoker().revoke(source: IPAddress(Testbed.clientV4, family: .ipv4)!, sequence: nil, table: "knockc")
            }
            try bed.client.knock(Testbed.serverV4, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            // Another source is not affected.
            try bed.other.knock(Testbed.serverOtherV4, Self.knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)

            // The ban ends after ban_for.
            let free = try eventually(within: 5, every: 0.25) {
                try bed.client.knock(Testbed.serverV4, Self.knocks)
                return try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected
            }
            #expect(free)
            _ = listener
        }
    }

    @Test("one packet to a decoy bans the source, over IPv4 and IPv6")
    func decoyBans() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply(Self.decoySpec)
            // The decoy still answers like a closed port.
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 2050) == .refused)
            try bed.client.knock(Testbed.serverV4, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            #expect(try bed.client.sendUDP(to: Testbed.serverV6, port: 161) == .refused)
            try bed.client.knock(Testbed.serverV6, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)

            try bed.other.knock(Testbed.serverOtherV4, Self.knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)

            // status lists the bans, and a re-apply keeps them with their time left.
            let bans = try bed.server.perform { try StatusReader().readStatus(table: "knockc")?.bans.map(\.source.text) }
            #expect(bans == [Testbed.clientV4, Testbed.clientV6])
            try bed.apply(Self.decoySpec.replacingOccurrences(of: "udp/161]", with: "udp/161, udp/162]"))
            try bed.client.knock(Testbed.serverV4, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "the ban survived the apply")
            try bed.client.knock(Testbed.serverV6, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused, "the IPv6 ban survived the apply")
            // The new table still lets an unbanned source in: `other` over IPv6 has no grant yet.
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .refused)
            try bed.other.knock(Testbed.serverOtherV6, Self.knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .connected, "the re-applied table lets no one in")
            _ = (listener, listener6)
        }
    }

    /// A ban comes from packets, and their source can be forged: here `other` sends a SYN to a
    /// decoy with the client's address. The client is in the top-level `allow`, so the ban
    /// changes nothing for it, and status says so.
    @Test("a forged decoy hit bans an allowed source to no effect; status marks that ban, and only that one")
    func forgedBanOfAllowedSource() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply("allow: [\(Testbed.clientV4)]\n" + Self.decoySpec)
            try bed.other.addAddresses([Testbed.clientV4], device: try bed.other.device(holding: Testbed.otherV4))
            #expect(try bed.other.perform { FirstKnockFlood.sendSYN(from: Testbed.clientV4, to: Testbed.serverOtherV4, port: 23) })
            // `other` touches a decoy from its own address: a ban that does take effect.
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 2050) == .refused)

            var bans: [Ban] = []
            let banned = try eventually(within: 2) {
                bans = try bed.server.perform { try StatusReader().readStatus(table: "knockc")?.bans ?? [] }
                return bans.count == 2
            }
            #expect(banned, "\(bans)")
            #expect(bans.map(\.source.text) == [Testbed.clientV4, Testbed.otherV4])
            #expect(bans.map(\.effective) == [false, true])

            let status = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc, "status"])
            let lines = status.output.split(separator: "\n").map(String.init)
            let clientLine = try #require(lines.first { $0.hasPrefix("  \(Testbed.clientV4) ") }, "\(status.output)")
            let otherLine = try #require(lines.first { $0.hasPrefix("  \(Testbed.otherV4) ") }, "\(status.output)")
            #expect(clientLine.hasSuffix("(allowed: ban has no effect)"), "\(clientLine)")
            #expect(!otherLine.contains("allowed"), "\(otherLine)")

            let json = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc, "status", "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            let listed = try #require(object["bans"] as? [[String: Any]])
            #expect(listed.map { $0["source"] as? String } == [Testbed.clientV4, Testbed.otherV4])
            #expect(listed.map { $0["effective"] as? Bool } == [false, true])

            // The allowed source gets in without knocking, banned or not; the other stays out
            // even with the right knocks.
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            try bed.other.knock(Testbed.serverOtherV4, Self.knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            _ = listener
        }
    }
}
