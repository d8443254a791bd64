import Foundation
import Glibc
import KnockClient
import KnockCore
import Testing

/// Knocks only ever go to 127.0.0.1 and ::1 here.
@Suite struct KnockerTests {
    static let noDelay = KnockCore.Duration(milliseconds: 0)

    @Test(arguments: LoopbackSocket.addresses)
    func udpKnocksSendOneDatagramEach(address: String) throws {
        let receiver = try LoopbackSocket(address, type: SOCK_DGRAM)
        let knock = Knock.udp(receiver.port)

        try Knocker(host: address, delay: Self.noDelay).send([knock, knock, knock])

        for _ in 0..<3 {
            #expect(receiver.receiveDatagram(within: .seconds(2)) == 0, "one empty datagram per knock")
        }
        #expect(receiver.receiveDatagram(within: .milliseconds(50)) == nil, "no datagram beyond one per knock")
    }

    @Test func udpKnocksReachEachPortOfTheSequence() throws {
        let first = try LoopbackSocket("127.0.0.1", type: SOCK_DGRAM)
        let second = try LoopbackSocket("127.0.0.1", type: SOCK_DGRAM)

        try Knocker(host: "127.0.0.1", delay: Self.noDelay)
            .send([.udp(first.port), .udp(second.port), .udp(first.port)])

        #expect(first.receiveDatagram(within: .seconds(2)) != nil)
        #expect(first.receiveDatagram(within: .seconds(2)) != nil)
        #expect(second.receiveDatagram(within: .seconds(2)) != nil)
        #expect(first.receiveDatagram(within: .milliseconds(50)) == nil)
        #expect(second.receiveDatagram(within: .milliseconds(50)) == nil)
    }

    /// Loopback answers a SYN at once, in the softirq that runs as `connect()` returns, so the
    /// handshake completes before the knock closes its socket and the listener holds the
    /// connection: that is how this test sees that the SYN went out. The connection must
    /// already be torn down (reset or end of stream), and there must be one for one SYN.
    ///
    /// When softirqs are deferred to ksoftirqd (a loaded machine), the socket can close before
    /// the SYN-ACK comes back, and the listener sees nothing although the SYN was sent; so a
    /// knock is tried up to three times before the test calls it lost.
    @Test(arguments: LoopbackSocket.addresses)
    func tcpKnockToListeningPortLeavesNoOpenConnection(address: String) throws {
        let listener = try LoopbackSocket(address, type: SOCK_STREAM, listen: true)

        var accepted: Int32?
        for _ in 0..<3 where accepted == nil {
            let started = ContinuousClock.now
            try Knocker(host: address, delay: Self.noDelay).send([.tcp(listener.port)])
            #expect(started.duration(to: .now) < .seconds(1), "a TCP knock does not wait for the handshake")
            accepted = listener.accept(within: .milliseconds(500))
        }
        let connection = try #require(accepted, "no connection reached the listener: the knock sent no SYN")
        defer { close(connection) }
        #expect(LoopbackSocket.wait(connection, for: Int16(POLLIN | POLLHUP | POLLERR), within: .seconds(1)))
        var byte: UInt8 = 0
        let received = recv(connection, &byte, 1, 0)
        let code = errno
        #expect(received == 0 || (received < 0 && code == ECONNRESET), "the knocking side has gone: \(received), errno \(code)")
        #expect(listener.accept(within: .milliseconds(50)) == nil, "one SYN, at most one connection")
    }

    @Test(arguments: LoopbackSocket.addresses)
    func tcpKnockToClosedPortDoesNotThrow(address: String) throws {
        // Bound but not listening: the port stays ours and refuses connections.
        let closed = try LoopbackSocket(address, type: SOCK_STREAM)
        let started = ContinuousClock.now
        try Knocker(host: address, delay: Self.noDelay).send([.tcp(closed.port), .tcp(closed.port)])
        #expect(started.duration(to: .now) < .seconds(1))
    }

    /// The knocks go out on a thread of their own, 300 ms apart. The moment the datagram
    /// arrives, the TCP knock's connection must already wait at the listener (loopback
    /// completes a handshake within the `connect()` that starts it). Sent the other way round,
    /// the listener would have nothing yet: the TCP knock would follow 300 ms later.
    @Test func mixedSequenceSendsUDPAfterTCP() throws {
        let listener = try LoopbackSocket("127.0.0.1", type: SOCK_STREAM, listen: true)
        let receiver = try LoopbackSocket("127.0.0.1", type: SOCK_DGRAM)
        let knocks: [Knock] = [.tcp(listener.port), .udp(receiver.port)]
        let knocked = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? Knocker(host: "127.0.0.1", delay: KnockCore.Duration(milliseconds: 300)).send(knocks)
            knocked.signal()
        }
        defer { knocked.wait() }

        #expect(LoopbackSocket.wait(receiver.descriptor, for: Int16(POLLIN), within: .seconds(5)), "no UDP knock")
        #expect(LoopbackSocket.isReady(listener.descriptor, for: Int16(POLLIN)),
                "the UDP knock arrived before the TCP knock's connection")
        #expect(receiver.receiveDatagram(within: .seconds(1)) == 0)
        let connection = try #require(listener.accept(within: .seconds(1)))
        close(connection)
    }

    @Test func delaySeparatesKnocks() throws {
        let receiver = try LoopbackSocket("127.0.0.1", type: SOCK_DGRAM)
        let knock = Knock.udp(receiver.port)
        let knocker = Knocker(host: "127.0.0.1", delay: KnockCore.Duration(milliseconds: 100))

        let started = ContinuousClock.now
        try knocker.send([knock, knock, knock])
        #expect(started.duration(to: .now) >= .milliseconds(200), "two pauses between three knocks")
    }

    /// The delay goes between knocks; a single knock must not wait for it.
    @Test func noDelayAfterTheLastKnock() throws {
        let receiver = try LoopbackSocket("127.0.0.1", type: SOCK_DGRAM)
        let knocker = Knocker(host: "127.0.0.1", delay: .seconds(3))

        let started = ContinuousClock.now
        try knocker.send([.udp(receiver.port)])
        #expect(started.duration(to: .now) < .seconds(2))
        #expect(receiver.receiveDatagram(within: .seconds(2)) != nil)
    }

    /// An empty sequence returns at once, without the delay. That it puts no packet on the wire
    /// is counted in a network namespace, by KernelTests' `KnockerWireTests`.
    @Test func emptySequenceSendsNothing() throws {
        let started = ContinuousClock.now
        try Knocker(host: "127.0.0.1", delay: .seconds(3)).send([])
        #expect(started.duration(to: .now) < .seconds(1), "an empty sequence waited for the delay")
    }

    @Test func resolvesLiteralAddresses() throws {
        let ipv4 = try Knocker(host: "127.0.0.1", delay: Self.noDelay).resolve()
        #expect(ipv4.family == .ipv4)
        #expect(ipv4.address == "127.0.0.1")
        #expect(ipv4.description == "127.0.0.1")

        let ipv6 = try Knocker(host: "::1", delay: Self.noDelay, family: .ipv6).resolve()
        #expect(ipv6.family == .ipv6)
        #expect(ipv6.address == "::1")
    }

    @Test func resolvesLocalhostInTheForcedFamily() throws {
        let resolved = try Knocker(host: "localhost", delay: Self.noDelay, family: .ipv4).resolve()
        #expect(resolved.family == .ipv4)
        #expect(resolved.address == "127.0.0.1")
    }

    /// `.invalid` never resolves (RFC 6761).
    @Test func unresolvableHostThrowsReadableError() {
        let knocker = Knocker(host: "no-such-host.invalid", delay: Self.noDelay)
        let error = #expect(throws: KnockError.self) { try knocker.send([.udp(7000)]) }
        guard case .unresolvable(let host, let family, let reason)? = error else {
            Issue.record("expected .unresolvable, got \(String(describing: error))")
            return
        }
        #expect(host == "no-such-host.invalid")
        #expect(family == .any)
        #expect(!reason.isEmpty)
        #expect(error?.description == "cannot resolve host 'no-such-host.invalid': \(reason)")
    }

    @Test func forcedFamilyRejectsAddressOfTheOtherFamily() {
        let v4AsV6 = #expect(throws: KnockError.self) {
            try Knocker(host: "127.0.0.1", delay: Self.noDelay, family: .ipv6).resolve()
        }
        #expect(v4AsV6?.description.hasPrefix("cannot resolve host '127.0.0.1' to an IPv6 address: ") == true)

        let v6AsV4 = #expect(throws: KnockError.self) {
            try Knocker(host: "::1", delay: Self.noDelay, family: .ipv4).resolve()
        }
        #expect(v6AsV4?.description.hasPrefix("cannot resolve host '::1' to an IPv4 address: ") == true)
    }

    @Test func sendFailureNamesKnockAddressAndReason() {
        let error = KnockError.sendFailed(knock: .tcp(22), address: "::1", call: "connect", errno: ENETUNREACH)
        #expect(error.description == "knock tcp/22 to ::1 failed: connect: Network is unreachable")
    }
}
