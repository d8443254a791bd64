import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
@testable import KnockKernel
import Testing

@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct RevokeTests {
    static let spec = KnockSemanticsTests.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 5s") + """

          web:
            knock: [udp/6000, tcp/5000, udp/4000]
            open: [tcp/443]
        """

    func revoke(_ bed: Testbed, _ source: String, sequence: String? = nil) throws -> Revoker.Outcome? {
        let address = try #require(IPAddress.parse(source))
        return try bed.server.perform { try Revoker().revoke(source: address, sequence: sequence, table: "knockc") }
    }

    @Test("revoke takes a source's grants and progress at once; its open connection stays; others keep theirs")
    func revokeSource() throws {
        try Testbed.with { bed in
            let ssh = try bed.listen(tcpPort: 22)
            // Something listens on 443, so a refusal there is the firewall's, not a closed port's.
            let web = try bed.listen(tcpPort: 443)
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            try bed.other.knock(Testbed.serverOtherV4, KnockSemanticsTests.sequence)
            try bed.client.knock(Testbed.serverV4, [.udp(6000)])
            let connection = try #require(try bed.client.openConnection(to: Testbed.serverV4, port: 22))
            let serverSide = try ssh.accept()

            let outcome = try revoke(bed, Testbed.clientV4)
            #expect(outcome == Revoker.Outcome(grants: [TransportPort(.tcp, 22)], progress: 1))

            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            try connection.send("still up")
            #expect(serverSide.receive() == "still up")
            // The progress is gone too: the rest of the web sequence opens nothing.
            try bed.client.knock(Testbed.serverV4, [.tcp(5000), .udp(4000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 443) == .refused)
            // The whole web sequence still opens 443: the refusal was for the lost progress.
            try bed.client.knock(Testbed.serverV4, [.udp(6000), .tcp(5000), .udp(4000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 443) == .connected)
            _ = web
        }
    }

    @Test("revoke --sequence only touches that sequence")
    func revokeOneSequence() throws {
        try Testbed.with { bed in
            let ssh = try bed.listen(tcpPort: 22)
            let web = try bed.listen(tcpPort: 443)
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            try bed.client.knock(Testbed.serverV4, [.udp(6000), .tcp(5000), .udp(4000)])

            #expect(try revoke(bed, Testbed.clientV4, sequence: "web")?.grants == [TransportPort(.tcp, 443)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 443) == .refused)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            // Nothing left of web to revoke; and an unknown source is not an error.
            #expect(try revoke(bed, Testbed.clientV4, sequence: "web") == Revoker.Outcome(grants: [], progress: 0))
            #expect(try revoke(bed, "2001:DB8::99") == Revoker.Outcome(grants: [], progress: 0))
            _ = (ssh, web)
        }
    }

    @Test("revoke --sequence with a sequence the table does not have revokes nothing, names the ones it has, and exits 1")
    func revokeUnknownSequence() throws {
        try Testbed.with { bed in
            let ssh = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)

            do {
                let outcome = try revoke(bed, Testbed.clientV4, sequence: "sssh")
                Issue.record("revoked \(String(describing: outcome)) for a sequence the table does not have")
            } catch let Revoker.Failure.noSuchSequence(name, known) {
                #expect(name == "sssh")
                #expect(known == ["ssh", "web"])
            }

            let cli = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc,
                                      "revoke", Testbed.clientV4, "--sequence", "sssh"], allowFailure: true)
            #expect(cli.status == 1)
            #expect(cli.error.contains("table inet knockc has no sequence 'sssh'; it has ssh, web; nothing was revoked"), "\(cli.error)")
            #expect(cli.output.isEmpty)
            // The grant is still there; the known name revokes it.
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            let known = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc,
                                        "revoke", Testbed.clientV4, "--sequence", "ssh"], allowFailure: true)
            #expect(known.status == 0, "\(known.error)")
            #expect(known.output.contains("revoked \(Testbed.clientV4): 1 grant (tcp/22)"))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            _ = ssh
        }
    }
}
