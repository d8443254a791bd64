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

    /// In the client's namespace, the first SYN-ACK of every connection is dropped: the
    /// connection completes only with the retransmission a second later, as over a path
    /// whose round trip is longer than the probe's turn per family.
    static let lateHandshakes = """
        table inet lateack {
            set answered { type inet_service; size 65535; flags dynamic; }
            chain input {
                type filter hook input priority -300;
                tcp sport 22 tcp flags & (syn | ack) == syn | ack tcp dport @answered accept
                tcp sport 22 tcp flags & (syn | ack) == syn | ack add @answered { tcp dport } drop
            }
        }
        """

    @Test("--then-connect to a name of both families connects when every handshake takes over a second: attempts are not abandoned at the next family's turn")
    func slowHandshakesOverBothFamilies() throws {
        try Testbed.with { bed in
            let hosts = try HostsEntry(for: bed.client)
            _ = hosts
            let listeners = (try bed.listen(tcpPort: 22), try bed.listen(tcpPort: 22, family: .ipv6))
            try bed.apply(String(contentsOfFile: CommandLineTests.ssh, encoding: .utf8))
            let rules = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-lateack-\(getpid())-\(bed.client.name).nft").path
            try Self.lateHandshakes.write(toFile: rules, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: rules) }
            try runProgram(["ip", "netns", "exec", bed.client.name, "nft", "-f", rules])
            let knock = try runProgram(["ip", "netns", "exec", bed.client.name, CommandLineTests.knockc, "knock", HostsEntry.name,
                                        "--spec", CommandLineTests.ssh, "--sequence", "ssh", "--delay", "20ms",
                                        "--then-connect", "22", "--timeout", "5s"], allowFailure: true)
            #expect(knock.status == 0, "\(knock.output)\(knock.error)")
            let dropped = try runProgram(["ip", "netns", "exec", bed.client.name, "nft", "list", "set", "inet", "lateack", "answered"]).output
            #expect(dropped.contains("elements"), "no SYN-ACK was held back: \(dropped)")
            _ = listeners
        }
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
