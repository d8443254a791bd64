import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
import Testing

@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct StrictModeTests {
    static func spec(strict: Bool) -> String {
        KnockSemanticsTests.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 3s") + "\n    strict: \(strict)"
    }

    @Test("strict: a new connection to an unrelated port resets progress; without strict it is ignored")
    func unrelatedPortResets() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec(strict: false))
            try bed.client.knock(Testbed.serverV4, [.tcp(7000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 7500) == .refused)
            try bed.client.knock(Testbed.serverV4, [.udp(9000), .tcp(8000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected, "not strict: 7500 is ignored")

            try bed.apply(Self.spec(strict: true))
            try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "flush", "set", "inet", "knockc", "granted4"])
            try bed.client.knock(Testbed.serverV4, [.tcp(7000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 7500) == .refused)
            try bed.client.knock(Testbed.serverV4, [.udp(9000), .tcp(8000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "strict: 7500 reset the attempt")

            // A retransmit of the last knock still does not reset, and a clean run opens.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .tcp(7000), .udp(9000), .tcp(8000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("strict: a sequential port scan across the knock ports opens nothing, over IPv6 too")
    func portScanDoesNotWalk() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22, family: .ipv6)
            let spec = """
                sequences:
                  rising:
                    knock: [tcp/7001, tcp/7003, tcp/7005]
                    open: [tcp/22]
                    strict: STRICT
                """
            func scan() throws {
                for port in UInt16(6995)...7010 {
                    _ = try bed.client.connect(to: Testbed.serverV6, port: port, timeout: 0.2)
                }
            }
            // Without strict, the scan walks the sequence: the weakness strict exists for.
            try bed.apply(spec.replacingOccurrences(of: "STRICT", with: "false"))
            try scan()
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "flush", "set", "inet", "knockc", "granted6"])

            try bed.apply(spec.replacingOccurrences(of: "STRICT", with: "true"))
            try scan()
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)
            try bed.client.knock(Testbed.serverV6, [.tcp(7001), .tcp(7003), .tcp(7005)])
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            _ = listener
        }
    }
}
