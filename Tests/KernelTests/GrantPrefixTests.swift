import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
@testable import KnockTestSupport
import Testing

/// `grant_prefix`: a grant covers the knocking source's prefix, so a client whose IPv6
/// privacy address changes between the knock and the connect still gets in.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct GrantPrefixTests {
    static let spec = """
        grant_prefix: { ipv6: 64 }
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
            open_for: 1h
          exact:
            knock: [tcp/7100, udp/9100, tcp/8100]
            open: [tcp/2222]
            open_for: 1h
            grant_prefix: { ipv6: 128 }
          wide:
            knock: [tcp/7200, udp/9200, tcp/8200]
            open: [tcp/80]
            grant_prefix: { ipv6: 48 }
        """
    /// A second address of the client, in its /64, as a privacy address would be.
    static let privacyV6 = "2001:db8::99"
    /// An address of the client outside that /64, inside its /48: a /48 lookup (for `wide`'s
    /// port) masks it to the same key as the /64 grant, which must not count for port 22.
    static let elsewhereV6 = "2001:db8:0:1::99"

    func addAddresses(_ bed: Testbed) throws {
        let links = try runProgram(["ip", "-n", bed.client.name, "-o", "-6", "addr", "show"]).output
        let line = try #require(links.split(separator: "\n").first { $0.contains(Testbed.clientV6 + "/64") })
        let device = String(line.split(separator: " ")[1])
        // Deprecated (preferred_lft 0), so that knocks and plain connects keep coming from
        // 2001:db8::2; a socket bound to them still uses them.
        for address in [Self.privacyV6, Self.elsewhereV6] {
            try runProgram(["ip", "-n", bed.client.name, "addr", "add", address + "/64", "dev", device, "nodad", "preferred_lft", "0"])
        }
        // The server reaches 2001:db8:0:1::/64 over the same link.
        let serverLinks = try runProgram(["ip", "-n", bed.server.name, "-o", "-6", "addr", "show"]).output
        let serverLine = try #require(serverLinks.split(separator: "\n").first { $0.contains(Testbed.serverV6 + "/64") })
        try runProgram(["ip", "-n", bed.server.name, "route", "add", "2001:db8:0:1::/64", "dev", String(serverLine.split(separator: " ")[1])])
    }

    @Test("an IPv6 /64 grant lets in another address of the knocking source's /64, not one outside it; a /128 sequence does not")
    func prefixGrantCoversThePrefix() throws {
        try Testbed.with { bed in
            try addAddresses(bed)
            let ssh = try bed.listen(tcpPort: 22, family: .ipv6)
            let exact = try bed.listen(tcpPort: 2222, family: .ipv6)
            try bed.apply(Self.spec)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22, from: Self.privacyV6) == .refused)

            try bed.client.knock(Testbed.serverV6, KnockSemanticsTests.sequence)
            let knocked = try bed.server.grants()
            #expect(knocked.map(\.source.text) == ["2001:db8::"], "the grant is held as the prefix")
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22, from: Self.privacyV6) == .connected,
                    "the grant covers the knocking address's /64")
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22, from: Self.elsewhereV6) == .refused)

            try bed.client.knock(Testbed.serverV6, [.tcp(7100), .udp(9100), .tcp(8100)])
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 2222, from: Testbed.clientV6) == .connected)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 2222, from: Self.privacyV6) == .refused,
                    "a sequence's own grant_prefix of 128 covers the knocking address alone")

            // Revoking any address of the prefix ends the prefix's grant.
            let privacy = try #require(IPAddress(Self.privacyV6, family: .ipv6))
            let outcome = try bed.server.perform { try Revoker().revoke(source: privacy, sequence: "ssh", table: "knockc") }
            #expect(outcome?.grants == [TransportPort(.tcp, 22)])
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)
            _ = (ssh, exact)
        }
    }
}
