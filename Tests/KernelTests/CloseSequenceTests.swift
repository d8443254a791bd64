import Foundation
import Glibc
import KnockCore
import Testing

@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct CloseSequenceTests {
    @Test("a close sequence ends the grant at once, while an established connection survives")
    func closeEndsGrant() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(KnockSemanticsTests.spec + "\n    close: [udp/9000, tcp/7000, tcp/6000]")
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            try bed.other.knock(Testbed.serverOtherV4, KnockSemanticsTests.sequence)
            let connection = try #require(try bed.client.openConnection(to: Testbed.serverV4, port: 22))
            let serverSide = try listener.accept()

            // Out of order, the close knocks end nothing.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .udp(9000), .tcp(6000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)

            try bed.client.knock(Testbed.serverV4, [.udp(9000), .tcp(7000), .tcp(6000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected, "only the closing source")
            try connection.send("after close")
            #expect(serverSide.receive() == "after close")
        }
    }
}
