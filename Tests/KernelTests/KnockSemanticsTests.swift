import Foundation
import Glibc
import KnockClient
import KnockCore
import Testing

/// The knock semantics, decided by the kernel: real packets between network namespaces, with
/// the compiled ruleset applied in the server namespace only.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct KnockSemanticsTests {
    static let spec = """
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
            step_timeout: 1s
            open_for: 1h
        """
    static let sequence: [Knock] = [.tcp(7000), .udp(9000), .tcp(8000)]

    @Test("correct sequence opens the port for the knocking source only")
    func correctSequenceOpensForKnockerOnly() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            try bed.client.knock(Testbed.serverV4, Self.sequence)

            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            _ = listener
        }
    }

    @Test("the same knocks in a wrong order open nothing")
    func wrongOrderOpensNothing() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            for order in [[Knock.udp(9000), .tcp(7000), .tcp(8000)], [.tcp(8000), .udp(9000), .tcp(7000)], [.tcp(7000), .tcp(8000), .udp(9000)]] {
                try bed.client.knock(Testbed.serverV4, order)
                #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "order \(order)")
            }
            // The same source, knocking the same ports in the right order, gets in: the
            // refusals above were for the order, not for the source or the listener.
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("a gap longer than step_timeout opens nothing")
    func slowKnockOpensNothing() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "step_timeout: 1s", with: "step_timeout: 300ms"))
            try bed.client.knock(Testbed.serverV4, Array(Self.sequence.prefix(2)))
            // The behaviour under test is the timeout itself, so waiting past it is the point.
            Thread.sleep(forTimeInterval: 0.6)
            try bed.client.knock(Testbed.serverV4, [Self.sequence[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            // Within the step timeout the same knocks do open: the test above failed for the gap.
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("a knock of the sequence out of turn resets; a repeat of the last knock does not")
    func outOfTurnResetsRepeatDoesNot() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            // 7000, 8000 (out of turn: resets), 9000, 8000: would open without the reset.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .tcp(8000), .udp(9000), .tcp(8000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            // A retransmitted or double-clicked knock keeps the progress.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .tcp(7000), .udp(9000), .udp(9000), .tcp(8000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("the grant expires after open_for, and a connection opened during it keeps working")
    func grantExpiresConnectionSurvives() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec.replacingOccurrences(of: "open_for: 1h", with: "open_for: 1s"))
            let granted = Date()
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            let connection = try #require(try bed.client.openConnection(to: Testbed.serverV4, port: 22))
            let serverSide = try listener.accept()

            let closed = try eventually(within: 3) {
                try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5) == .refused
            }
            #expect(closed)
            #expect(Date().timeIntervalSince(granted) >= 0.9, "closed before open_for ran out")

            try connection.send("still here")
            #expect(serverSide.receive() == "still here")
            try serverSide.send("and back")
            #expect(connection.receive() == "and back")
        }
    }

    @Test("the same holds over IPv6")
    func ipv6() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22, family: .ipv6)
            // An IPv4 listener too, so that a refused IPv4 connect below is the firewall's doing.
            let listener4 = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)
            try bed.client.knock(Testbed.serverV6, [.udp(9000), .tcp(7000), .tcp(8000)])
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)

            try bed.client.knock(Testbed.serverV6, Self.sequence)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .refused)
            // The IPv6 grant is for IPv6 only: the client's IPv4 address has not knocked.
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            // Once it has, IPv4 opens too: the refusal above was not for want of a listener.
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = (listener, listener4)
        }
    }

    @Test("each sequence opens only its own ports, and interleaved sources both get in")
    func severalSequencesAndInterleavedSources() throws {
        try Testbed.with { bed in
            let ssh = try bed.listen(tcpPort: 22)
            let web = try bed.listen(tcpPort: 443)
            try bed.apply("""
                defaults: { step_timeout: 2s, open_for: 1h }
                sequences:
                  ssh:
                    knock: [tcp/7000, udp/9000, tcp/8000]
                    open: [tcp/22]
                  web:
                    knock: [tcp/7000, tcp/8000, udp/9000]
                    open: [tcp/443]
                """)
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .tcp(8000), .udp(9000)])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 443) == .connected)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            // Two sources, knock by knock in turn, each on its own sequence.
            for (client, server, knock) in [
                (bed.client, Testbed.serverV4, Knock.tcp(7000)), (bed.other, Testbed.serverOtherV4, .tcp(7000)),
                (bed.client, Testbed.serverV4, .udp(9000)), (bed.other, Testbed.serverOtherV4, .tcp(8000)),
                (bed.client, Testbed.serverV4, .tcp(8000)), (bed.other, Testbed.serverOtherV4, .udp(9000)),
            ] {
                try client.knock(server, [knock])
            }
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 443) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            _ = (ssh, web)
        }
    }

    @Test("a guarded UDP port answers port-unreachable until granted")
    func guardedUDPPort() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec.replacingOccurrences(of: "open: [tcp/22]", with: "open: [tcp/22, udp/5353]"))
            let service = try bed.server.perform { try UDPEcho(port: 5353) }
            #expect(try bed.client.sendUDP(to: Testbed.serverV4, port: 5353) == .refused)
            try bed.client.knock(Testbed.serverV4, Self.sequence)
            #expect(try bed.client.sendUDP(to: Testbed.serverV4, port: 5353) == .connected)
            _ = service
        }
    }

    @Test("guarded and knock ports answer like closed ports; loopback is never filtered")
    func portsLookClosed() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            // A port nothing listens on, a guarded port, and a knock port all answer with a RST.
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 23) == .refused)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 7000) == .refused)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)
            // A UDP knock port answers port-unreachable like any closed UDP port, on both families.
            #expect(try bed.client.sendUDP(to: Testbed.serverV4, port: 9000) == .refused)
            #expect(try bed.client.sendUDP(to: Testbed.serverV4, port: 9001) == .refused)
            #expect(try bed.client.sendUDP(to: Testbed.serverV6, port: 9000) == .refused)
            // A knock port where a service listens still reaches the service.
            let onKnockPort = try bed.listen(tcpPort: 8000)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 8000) == .connected)
            // The host reaches its own guarded port without knocking.
            #expect(try bed.server.connect(to: "127.0.0.1", port: 22) == .connected)
            _ = (listener, onKnockPort)
        }
    }
}

extension NetworkNamespace {
    /// Sends knocks with knockc's own client, from inside this namespace.
    func knock(_ host: String, _ knocks: [Knock]) throws {
        try perform { try Knocker(host: host, delay: .init(milliseconds: 20)).send(knocks) }
    }
}
