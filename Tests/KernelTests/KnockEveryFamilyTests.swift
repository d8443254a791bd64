import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
@testable import KnockTestSupport
import Testing

/// `knockc knock NAME` knocks over every family the name resolves to: a grant covers the
/// address that knocked, and ssh may connect over the other family.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct KnockEveryFamilyTests {
    /// A name that resolves to the server's IPv4 and IPv6 addresses inside `namespace`
    /// only: `ip netns exec` mounts /etc/netns/NAME/hosts over /etc/hosts.
    final class HostsEntry: @unchecked Sendable {
        let directory: String
        static let name = "knockc-dual.test"

        init(for namespace: NetworkNamespace) throws {
            directory = "/etc/netns/\(namespace.name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try "127.0.0.1 localhost\n\(Testbed.serverV4) \(Self.name)\n\(Testbed.serverV6) \(Self.name)\n"
                .write(toFile: directory + "/hosts", atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test("a name with A and AAAA records is knocked over both families, and each family's address is granted")
    func bothFamiliesAreKnocked() throws {
        try Testbed.with { bed in
            let hosts = try HostsEntry(for: bed.client)
            _ = hosts
            try bed.apply(String(contentsOfFile: CommandLineTests.ssh, encoding: .utf8))
            let knock = ["ip", "netns", "exec", bed.client.name, CommandLineTests.knockc, "knock", HostsEntry.name,
                         "--spec", CommandLineTests.ssh, "--sequence", "ssh", "--delay", "20ms"]
            let both = try runProgram(knock, allowFailure: true)
            #expect(both.status == 0, "\(both.error)")
            #expect(both.output.contains("knocked \(Testbed.serverV4):") && both.output.contains("knocked \(Testbed.serverV6):"), "\(both.output)")
            let sources = Set(try bed.server.grants().map(\.source.text))
            #expect(sources == [Testbed.clientV4, Testbed.clientV6], "\(sources)")

            for (flag, server, client) in [("-4", Testbed.serverV4, Testbed.clientV4), ("-6", Testbed.serverV6, Testbed.clientV6)] {
                for address in [Testbed.clientV4, Testbed.clientV6] {
                    let source = try #require(IPAddress(address, family: address.contains(":") ? .ipv6 : .ipv4))
                    _ = try bed.server.perform { try Revoker().revoke(source: source, sequence: nil, table: "knockc") }
                }
                let one = try runProgram(knock + [flag], allowFailure: true)
                #expect(one.status == 0, "\(one.error)")
                #expect(one.output.split(separator: "\n").filter { $0.hasPrefix("knocked") } == ["knocked \(server): tcp/7000 udp/9000 tcp/8000"],
                        "\(flag): \(one.output)")
                #expect(Set(try bed.server.grants().map(\.source.text)) == [client], "\(flag)")
            }
        }
    }
}
