import Foundation
import Glibc
import KnockClient
@testable import KnockCore
@testable import KnockKernel
import KnockSecrets
@testable import KnockTestSupport
import Testing

/// `rotate:`: knocks whose ports the secret and the time window choose. The kernel holds every
/// window's knocks up to the horizon, with timeouts, and checks each knock with no knockc
/// process running; the last knock of a window that granted is marked used for the window's
/// validity. Every test sends real packets between namespaces of its own.
///
/// Windows are 2 s long, so a test that needs a window to pass waits at most a few seconds:
/// that wait is for the clock itself, and is the only sleep here.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct RotatingKnockTests {
    static let range: ClosedRange<UInt16> = 20000...40000
    static let protocols: [TransportProtocol] = [.tcp, .udp, .tcp]
    static let every: Int64 = 2
    static let fixed: [Knock] = [.tcp(7000), .udp(9000), .tcp(8000)]

    /// A directory of this test's own with the sequence's secret and a second one, removed after.
    final class Secrets: @unchecked Sendable {
        let directory = "/run/knockc-test-rotate-\(getpid())-\(UUID().uuidString)"
        var path: String { directory + "/ssh.key" }
        var otherPath: String { directory + "/other.key" }
        var specPath: String { directory + "/spec.yaml" }

        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Secret.generate(at: path)
            try Secret.generate(at: otherPath)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        /// The rotating sequence `ssh` (tcp/22) beside the fixed sequence `fixed` (tcp/2222).
        /// `top` goes at the top level, `ssh` and `fixed` are more keys of each sequence.
        func spec(skew: Int = 1, ports: ClosedRange<UInt16> = RotatingKnockTests.range, horizon: String = "1m",
                  top: [String] = [], ssh: [String] = [], fixed: [String] = []) -> String {
            let indent = { (lines: [String]) in lines.map { "    " + $0 + "\n" }.joined() }
            return top.map { $0 + "\n" }.joined() + """
                sequences:
                  ssh:
                    open: [tcp/22]
                    open_for: 1h
                    rotate: { secret: \(path), every: 2s, knocks: [tcp, udp, tcp], ports: \(ports.lowerBound)-\(ports.upperBound), skew: \(skew), horizon: \(horizon) }

                """ + indent(ssh) + """
                  fixed:
                    knock: [tcp/7000, udp/9000, tcp/8000]
                    open: [tcp/2222]
                    open_for: 1h

                """ + indent(fixed)
        }

        /// A port of the range that is no knock of `window` nor of the windows either side.
        func strayPort(_ window: Int64) throws -> UInt16 {
            let knocks = try Set((window - 1...window + 1).flatMap { try self.knocks($0) }.map(\.portNumber))
            return RotatingKnockTests.range.first { !knocks.contains($0) }!
        }

        /// The knocks of `window`, derived as the client derives them.
        func knocks(_ window: Int64, sequence: String = "ssh", secret: String? = nil,
                    range: ClosedRange<UInt16> = RotatingKnockTests.range) throws -> [Knock] {
            let key = try Secret(contentsOf: secret ?? path, requiredOwner: nil)
            return try KnockDerivation(secret: key, sequence: sequence)
                .rotatingPorts(window: window, protocols: RotatingKnockTests.protocols, range: range)
                .map { .port($0) }
        }
    }

    /// The current window, once at least `margin` seconds of it are left; when fewer are, this
    /// first waits for the next window to begin, and 0.3 s more: the kernel's window edges lag
    /// the clock by the apply's latency (see `theKernelAloneRotates`). A test whose knocks must
    /// all fall in known windows starts here.
    static func currentWindow(margin: Double = 1.2) -> Int64 {
        let now = Date()
        let window = KnockDerivation.window(at: now, every: every)
        let left = Double((window + 1) * every) - now.timeIntervalSince1970
        if left < margin { Thread.sleep(forTimeInterval: left + 0.3) }
        return KnockDerivation.window(at: Date(), every: every)
    }

    /// Waits (for the clock) until `window` has begun and `margin` seconds of it have passed;
    /// false if that has not happened within its bound.
    static func waitFor(window: Int64, margin: Double = 0) -> Bool {
        let begins = Date(timeIntervalSince1970: Double(window * every) + margin)
        return eventually(within: max(begins.timeIntervalSinceNow, 0) + 0.5, every: 0.05) { Date() >= begins }
    }

    static func revoke(_ bed: Testbed, _ source: String) throws {
        let family: IPFamily = source.contains(":") ? .ipv6 : .ipv4
        _ = try bed.server.perform { try Revoker().revoke(source: IPAddress(source, family: family)!, sequence: nil, table: "knockc") }
    }

    /// The elements of `set` in the server's table, as `nft list set` prints them.
    static func listing(_ bed: Testbed, _ set: String) throws -> String {
        try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "list", "set", "inet", "knockc", set]).output
    }

    /// started4, progress4, started6 and progress6: knock progress of any source.
    static func progress(_ bed: Testbed) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for set in ["started4", "progress4", "started6", "progress6"] { counts[set] = try bed.progressCount(set) }
        return counts
    }

    static func knockc(in namespace: NetworkNamespace, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        try runProgram(["ip", "netns", "exec", namespace.name, CommandLineTests.knockc] + arguments, allowFailure: true)
    }

    // MARK: - 1. The current window opens, for its source only

    @Test("the current window's knocks open tcp/22 for the knocking source only, over IPv4 and IPv6")
    func currentWindowOpensForTheKnockingSourceOnly() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply(secrets.spec())
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)

            let window = Self.currentWindow()
            try bed.client.knock(Testbed.serverV4, secrets.knocks(window))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused, "a grant covers the address that knocked")
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .refused)

            // This window's knocks granted once; the next window's are accepted now (skew 1).
            try bed.client.knock(Testbed.serverV6, secrets.knocks(window + 1))
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .refused)
            // Nothing else opened: the fixed sequence's port stays closed to the client.
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 2222) == .refused)

            #expect(try bed.progressCount("granted4") == 1)
            #expect(try bed.progressCount("granted6") == 1)
            #expect(try Self.progress(bed).values.allSatisfy { $0 == 0 }, "a grant leaves no progress behind")
            let grants = try bed.server.grants()
            #expect(grants.map(\.sequences) == [["ssh"], ["ssh"]])
            _ = (listener, listener6)
        }
    }

    // MARK: - 2. Recorded knocks expire with their window

    @Test("knocks recorded in their window and sent again once it has passed (skew 0) open nothing, from any source")
    func recordedKnocksExpireWithTheirWindow() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply(secrets.spec(skew: 0))
            let window = Self.currentWindow()
            let recorded = try secrets.knocks(window)
            try bed.client.knock(Testbed.serverV4, recorded)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            try Self.revoke(bed, Testbed.clientV4)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            // Wait out the window, and the used mark of its last knock, so that only the
            // window's end can refuse the replay.
            let passed = try eventually(within: Double(Self.every) * 2 + 1, every: 0.1) {
                try KnockDerivation.window(at: Date(), every: Self.every) > window && bed.progressCount("rotate_used_ssh") == 0
            }
            #expect(passed, "window \(window) or its used mark did not pass")

            try bed.client.knock(Testbed.serverV4, recorded)
            try bed.client.knock(Testbed.serverV6, recorded)
            try bed.other.knock(Testbed.serverOtherV4, recorded)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            let progress = try Self.progress(bed)
            #expect(progress.values.allSatisfy { $0 == 0 }, "a knock of a past window started something: \(progress)")

            // The secret itself still opens, with the window of now.
            try bed.client.knock(Testbed.serverV4, secrets.knocks(Self.currentWindow(margin: 0.5)))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = (listener, listener6)
        }
    }

    // MARK: - 3. Replay within the window; a second client of the same secret

    @Test("after a grant, the window's knocks replayed from another address open nothing; the next window's let a second client in")
    func replayInTheWindowOpensNothingButTheNextWindowDoes() throws {
        let secrets = try Secrets()
        try secrets.spec().write(toFile: secrets.specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply(secrets.spec())
            let window = Self.currentWindow()
            let knocks = try secrets.knocks(window)
            try bed.client.knock(Testbed.serverV4, knocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)

            // The same three packets from another address, in the window that granted.
            try bed.other.knock(Testbed.serverOtherV4, knocks)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused)
            #expect(try bed.progressCount("rotate_used_ssh") == 2, "knocks 2 and 3 taken")
            let used = try Self.listing(bed, "rotate_used_ssh")
            #expect(used.contains("\(knocks[2])".replacingOccurrences(of: "/", with: " . ")), "\(used)")
            #expect(try bed.progressCount("granted4") == 1)

            // A second holder of the secret takes the next window, accepted within skew 1.
            try bed.other.knock(Testbed.serverOtherV4, secrets.knocks(window + 1))
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            #expect(try bed.progressCount("rotate_used_ssh") == 4)

            // The client command does the same by itself: each retry moves to the next window,
            // waiting for it when it lies beyond the skew, until one has not granted yet.
            let result = try Self.knockc(in: bed.other, [
                "knock", Testbed.serverOtherV6, "--spec", secrets.specPath, "--sequence", "ssh",
                "--delay", "20ms", "--then-connect", "22", "--timeout", "1s", "--retries", "3"])
            #expect(result.status == 0, "\(result.output)\(result.error)")
            #expect(result.output.contains("tcp/22 on \(Testbed.serverOtherV6) is open"), "\(result.output)")
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .connected)
            _ = (listener, listener6)
        }
    }

    // MARK: - 4. Wrong knocks

    @Test("knocks of a window beyond the skew, of another sequence or secret, with a wrong port in the middle, or out of order open nothing")
    func wrongKnocksOpenNothing() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec())
            // Each wrong attempt is derived from the window current when it is sent, well
            // before the next one begins (when window + 2 would come within the skew), so
            // that a slow machine stretches the test, not an attempt across two windows.
            func swapped(_ knocks: [Knock]) -> [Knock] {
                knocks.map { knock in
                    guard case .port(let port) = knock else { return knock }
                    return port.proto == .tcp ? .udp(port.port) : .tcp(port.port)
                }
            }
            let wrong: [(String, (Int64) throws -> [Knock])] = [
                ("two windows ahead, beyond the skew of one", { try secrets.knocks($0 + 2) }),
                ("two windows back, beyond the skew of one", { try secrets.knocks($0 - 2) }),
                ("derived for the sequence name 'fixed'", { try secrets.knocks($0, sequence: "fixed") }),
                ("derived from another secret", { try secrets.knocks($0, secret: secrets.otherPath) }),
                ("a wrong udp port of the range after knock 1", { window in
                    let right = try secrets.knocks(window)
                    return [right[0], .udp(try secrets.strayPort(window)), right[1], right[2]]
                }),
                ("a wrong tcp port of the range after knock 2", { window in
                    let right = try secrets.knocks(window)
                    return [right[0], right[1], .tcp(try secrets.strayPort(window)), right[2]]
                }),
                ("knocks 1, 3, 2", { let right = try secrets.knocks($0); return [right[0], right[2], right[1]] }),
                ("knocks 2, 1, 3", { let right = try secrets.knocks($0); return [right[1], right[0], right[2]] }),
                ("knocks 2 and 3 only", { let right = try secrets.knocks($0); return [right[1], right[2]] }),
                ("the right ports with the protocols swapped", { swapped(try secrets.knocks($0)) }),
            ]
            for (what, derive) in wrong {
                let window = Self.currentWindow(margin: 1.0)
                let knocks = try derive(window)
                try bed.client.knock(Testbed.serverV4, knocks)
                #expect(KnockDerivation.window(at: Date(), every: Self.every) == window, "\(what): the knocks took longer than their window")
                #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "\(what): \(knocks) opened tcp/22")
                let progress = try Self.progress(bed)
                #expect(progress.values.allSatisfy { $0 == 0 }, "\(what): \(knocks) left progress \(progress)")
            }
            // The attempt that got past knock 2 took its window's knock 2, so that it cannot
            // be replayed; the others took nothing.
            #expect(try bed.progressCount("rotate_used_ssh") == 1)

            // A wrong port in the middle resets: what follows it opens nothing.
            var window = Self.currentWindow(margin: 1.5)
            var right = try secrets.knocks(window)
            try bed.client.knock(Testbed.serverV4, [right[0], .udp(try secrets.strayPort(window))])
            try bed.client.knock(Testbed.serverV4, [right[1], right[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            // An attempt that failed after knock 2 took the window's knock 2: the whole
            // sequence again opens nothing in this window, and the next window's knocks open,
            // a repeat of the knock just made (a retransmit) changing nothing.
            window = Self.currentWindow(margin: 1.5)
            right = try secrets.knocks(window)
            try bed.client.knock(Testbed.serverV4, [right[0], right[1], .tcp(try secrets.strayPort(window))])
            try bed.client.knock(Testbed.serverV4, right)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "a failed attempt's window opened again")
            #expect(KnockDerivation.window(at: Date(), every: Self.every) == window, "the attempts took longer than their window")
            let next = try secrets.knocks(window + 1)
            try bed.client.knock(Testbed.serverV4, [next[0], next[0], next[1], next[1], next[2]])
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("an echo request whose checksum falls in the range does not reset a source part-way through: it is no packet to a port")
    func echoRequestDoesNotReset() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec())
            let window = Self.currentWindow()
            let knocks = try secrets.knocks(window)
            try bed.client.knock(Testbed.serverV4, [knocks[0]])
            #expect(try bed.progressCount("started4") == 1)
            // Bytes 2-3 of an ICMP header, where a port would be, are its checksum: a ping
            // from the knocking host lands in the range one time in three or so.
            let sent = try bed.client.perform { ICMPEcho.send(to: Testbed.serverV4, checksum: 30000) }
            #expect(sent)
            #expect(try bed.progressCount("started4") == 1, "an echo request reset the knock in progress")
            try bed.client.knock(Testbed.serverV4, Array(knocks.dropFirst()))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    // MARK: - 5. A spoofed flood

    @Test("a flood of spoofed udp datagrams to random ports of the range leaves no progress, and the rotating knocks still open during it")
    func spoofedFloodLeavesNoState() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec())
            let before = try Self.udpClosedPortDatagrams(bed.server)

            // Knock 1 is tcp, so no datagram is a first knock: a source with no progress can
            // gain none from udp, whatever the port.
            let flood = SpoofedDatagramFlood(namespace: bed.client, target: Testbed.serverV4, ports: Self.range)
            flood.start(maxPackets: 3000, maxSeconds: 5)
            flood.finish()
            let sent = flood.packetsSent
            let delivered = try Self.udpClosedPortDatagrams(bed.server) - before
            let progress = try Self.progress(bed)
            print("rotate flood: \(sent) spoofed datagrams sent, \(delivered) reached the server's closed udp ports; \(progress)")
            #expect(sent == 3000)
            #expect(delivered >= sent, "the flood did not reach the server's udp layer through the table")
            #expect(progress.values.allSatisfy { $0 == 0 }, "\(progress)")
            #expect(try bed.progressCount("rotate_used_ssh") == 0 && bed.progressCount("granted4") == 0)

            // While a second flood runs, the client's rotating knocks open.
            let second = SpoofedDatagramFlood(namespace: bed.client, target: Testbed.serverV4, ports: Self.range)
            second.start(maxPackets: 100_000, maxSeconds: 5)
            defer { second.stop() }
            #expect(eventually(within: 2) { second.packetsSent >= 500 }, "the second flood did not start")
            let window = Self.currentWindow()
            try bed.client.knock(Testbed.serverV4, secrets.knocks(window))
            let during = try bed.client.connect(to: Testbed.serverV4, port: 22)
            let sentBeforeCheck = second.packetsSent
            second.stop()
            #expect(during == .connected, "the rotating knocks did not open during the flood")
            #expect(second.packetsSent > sentBeforeCheck || sentBeforeCheck >= 500)
            let after = try Self.progress(bed)
            #expect(after.values.allSatisfy { $0 == 0 }, "\(after)")
            #expect(try bed.progressCount("granted4") == 1)
            _ = listener
        }
    }

    /// `Udp: NoPorts` of the namespace: datagrams that passed the table and found no socket.
    static func udpClosedPortDatagrams(_ namespace: NetworkNamespace) throws -> Int {
        let snmp = try runProgram(["ip", "netns", "exec", namespace.name, "cat", "/proc/net/snmp"]).output
        let lines = snmp.split(separator: "\n").filter { $0.hasPrefix("Udp: ") }.map { $0.split(separator: " ") }
        guard lines.count == 2, let column = lines[0].firstIndex(of: "NoPorts"), let value = Int(lines[1][column]) else {
            throw NetworkNamespace.Failure(description: "no Udp NoPorts in /proc/net/snmp: \(snmp)")
        }
        return value
    }

    // MARK: - 6. Bans

    @Test("a banned source still opens with the rotating knocks, over IPv4 and IPv6; its fixed sequence opens nothing")
    func bannedSourceStillOpensWithRotatingKnocks() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            let fixedListener = try bed.listen(tcpPort: 2222)
            try bed.apply(secrets.spec(top: ["limits: { wrong_knocks: 1/minute }", "decoys: [tcp/23]"]))
            // One packet to the decoy bans the client, in each family.
            _ = try bed.client.connect(to: Testbed.serverV4, port: 23, timeout: 0.3)
            _ = try bed.client.connect(to: Testbed.serverV6, port: 23, timeout: 0.3)
            #expect(try bed.progressCount("banned4") == 1 && bed.progressCount("banned6") == 1)

            try bed.client.knock(Testbed.serverV4, Self.fixed)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 2222) == .refused, "a banned source's fixed knocks opened")

            let window = Self.currentWindow()
            try bed.client.knock(Testbed.serverV4, secrets.knocks(window))
            try bed.client.knock(Testbed.serverV6, secrets.knocks(window + 1))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .connected)
            // Still banned, and still shut out of the fixed sequence.
            #expect(try bed.progressCount("banned4") == 1)
            try bed.client.knock(Testbed.serverV4, Self.fixed)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 2222) == .refused)
            // The fixed sequence itself works for a source that is not banned.
            try bed.other.knock(Testbed.serverOtherV4, Self.fixed)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 2222) == .connected)
            _ = (listener, listener6, fixedListener)
        }
    }

    @Test("wrong rotating knocks do not ban: the rotating chain has no ban meter, since a knock to the range is easy to forge")
    func wrongRotatingKnocksDoNotBan() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec(top: ["limits: { wrong_knocks: 1/minute }", "decoys: [tcp/23]"]))
            let window = Self.currentWindow()
            let right = try secrets.knocks(window)
            // Three resets in a row: each knock 1 followed by a wrong port of the range.
            for _ in 0..<3 {
                try bed.client.knock(Testbed.serverV4, [right[0], .udp(try secrets.strayPort(window))])
            }
            #expect(try bed.progressCount("banned4") == 0)
            try bed.client.knock(Testbed.serverV4, right)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    // MARK: - 7. Access lists

    @Test("beside a fixed sequence: a denied source's rotating knocks open nothing, and `from` keeps others out")
    func accessListsApplyToRotatingKnocks() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            let fixedListener = try bed.listen(tcpPort: 2222)
            // ssh: knocked from the client's networks only (2001:db8::/48 holds the other
            // host's IPv6 address too), not by the client's IPv6 address. Top level: the
            // other host's IPv6 address never gets in. fixed: knocked from the other host's
            // network only, which is also allowed in without knocking.
            try bed.apply(secrets.spec(
                top: ["deny: [\(Testbed.otherV6)]"],
                ssh: ["from: [192.0.2.0/24, 2001:db8::/48]", "deny: [\(Testbed.clientV6)]"],
                fixed: ["from: [198.51.100.0/24]", "allow: [\(Testbed.otherV4)]"]))
            let window = Self.currentWindow()

            // Each of these would take the window's knocks if it could; none may.
            try bed.client.knock(Testbed.serverV6, secrets.knocks(window))        // the sequence's deny
            try bed.other.knock(Testbed.serverOtherV6, secrets.knocks(window))    // the top-level deny
            try bed.other.knock(Testbed.serverOtherV4, secrets.knocks(window))    // outside `from`
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused, "a source ssh denies opened it")
            #expect(try bed.other.connect(to: Testbed.serverOtherV6, port: 22) == .refused, "a source the top level denies opened ssh")
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused, "a source outside ssh's from opened it")
            #expect(try Self.progress(bed).values.allSatisfy { $0 == 0 })
            #expect(try bed.progressCount("rotate_used_ssh") == 0, "a refused source's knocks marked the window used")

            // The window is still unused: the client's IPv4 address, inside `from`, opens with it.
            try bed.client.knock(Testbed.serverV4, secrets.knocks(window))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)

            // The fixed sequence keeps its own lists: the client is outside its `from`; the
            // other host is allowed without knocking.
            try bed.client.knock(Testbed.serverV4, Self.fixed)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 2222) == .refused)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 2222) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .refused, "fixed's allow reached ssh's port")
            _ = (listener, listener6, fixedListener)
        }
    }

    // MARK: - 8. The kernel alone; a re-apply in the middle

    @Test("with no knockc process left, the kernel lets the next window's knocks in once it begins, and not before (skew 0)")
    func theKernelAloneRotates() throws {
        let secrets = try Secrets()
        try secrets.spec(skew: 0).write(toFile: secrets.specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let applied = try Self.knockc(in: bed.server, ["apply", secrets.specPath])
            #expect(applied.status == 0, "\(applied.output)\(applied.error)")
            // apply has returned: nothing runs in the server's namespace.
            let pids = try runProgram(["ip", "netns", "pids", bed.server.name]).output
            #expect(pids.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "processes in the server: \(pids)")

            let window = Self.currentWindow()
            let next = try secrets.knocks(window + 1)
            try bed.client.knock(Testbed.serverV4, next)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "a knock of the next window counted early")
            #expect(try Self.progress(bed).values.allSatisfy { $0 == 0 })
            #expect(KnockDerivation.window(at: Date(), every: Self.every) == window, "the early knocks took longer than their window")

            // The kernel's window edges lag the clock by the apply's own latency (each timeout
            // counts from a time taken before the commit), so knock a little after the edge.
            #expect(Self.waitFor(window: window + 1, margin: 0.3))
            try bed.client.knock(Testbed.serverV4, next)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("past the horizon nothing opens, until the next apply writes the windows ahead again")
    func nothingOpensPastTheHorizon() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            // skew 0 and a horizon of one window: the table holds this window and the next.
            let spec = secrets.spec(skew: 0, horizon: "2s")
            let window = Self.currentWindow()
            try bed.apply(spec)
            #expect(Self.waitFor(window: window + 2, margin: 0.3))
            let current = KnockDerivation.window(at: Date(), every: Self.every)
            try bed.client.knock(Testbed.serverV4, secrets.knocks(current))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "window \(current) opened past the horizon")
            #expect(try bed.progressCount("rotate_even_ssh") + bed.progressCount("rotate_odd_ssh") == 0)
            try bed.apply(spec)
            try bed.client.knock(Testbed.serverV4, secrets.knocks(Self.currentWindow(margin: 0.5)))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    // MARK: - Epoch boundaries

    /// The smallest range the validator takes for three knocks with skew 0 and a horizon of one
    /// window: 6 ports, so an epoch is 2 windows and the table always holds 2.
    static let tinyRange: ClosedRange<UInt16> = 20000...20005

    /// The client knocks window W, the last of its epoch, late in it; the other host knocks
    /// W + 1, the first of the next epoch, early in it. A fresh secret is drawn until the two
    /// windows' last knocks are the same port, or differ, as `sameLastKnock` asks.
    func acrossEpochBoundary(sameLastKnock: Bool) throws -> (first: ConnectOutcome, second: ConnectOutcome, used: String) {
        let secrets = try Secrets()
        return try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let now = Date()
            var window = KnockDerivation.window(at: now, every: Self.every)
            if window % 2 == 0 || now.timeIntervalSince1970 > Double(window * Self.every) + 0.3 { window += window % 2 == 0 ? 1 : 2 }
            let epochs = [window, window + 1].map { KnockDerivation.epoch(of: $0, range: Self.tinyRange, knocks: Self.protocols.count) }
            #expect(epochs[1] == epochs[0] + 1)
            var found = false
            for _ in 0..<200 where !found {
                let last = try [window, window + 1].map { try secrets.knocks($0, range: Self.tinyRange).last! }
                found = (last[0] == last[1]) == sameLastKnock
                if !found {
                    try FileManager.default.removeItem(atPath: secrets.path)
                    try Secret.generate(at: secrets.path)
                }
            }
            try #require(found, "no secret in 200 had the last knocks asked for")

            #expect(Self.waitFor(window: window, margin: 0.3))
            try bed.apply(secrets.spec(skew: 0, ports: Self.tinyRange, horizon: "2s"))
            // The table holds one window of each epoch, in the sets of each parity.
            #expect(try bed.progressCount("rotate_even_ssh") == 3 && bed.progressCount("rotate_odd_ssh") == 3)

            #expect(Self.waitFor(window: window, margin: 1.0))
            try bed.client.knock(Testbed.serverV4, secrets.knocks(window, range: Self.tinyRange))
            let first = try bed.client.connect(to: Testbed.serverV4, port: 22)
            #expect(Self.waitFor(window: window + 1, margin: 0.3))
            try bed.other.knock(Testbed.serverOtherV4, secrets.knocks(window + 1, range: Self.tinyRange))
            let second = try bed.other.connect(to: Testbed.serverOtherV4, port: 22)
            let used = try Self.listing(bed, "rotate_used_ssh")
            _ = listener
            return (first, second, used)
        }
    }

    @Test("across an epoch boundary, the last window of one epoch and the first of the next both open")
    func epochBoundary() throws {
        let (first, second, _) = try acrossEpochBoundary(sameLastKnock: false)
        #expect(first == .connected)
        #expect(second == .connected)
    }

    @Test("a grant in the last window of an epoch does not refuse the next epoch's first window when their last knocks share a port")
    func usedMarkDoesNotCrossTheEpoch() throws {
        let (first, second, used) = try acrossEpochBoundary(sameLastKnock: true)
        #expect(first == .connected)
        #expect(second == .connected, "the used mark of window W's last knock, kept past W's validity, refused window W + 1: \(used)")
    }

    @Test("a re-apply of the same spec between knock 1 and knock 2 keeps the knock in progress, the grants and the used marks")
    func reapplyMidSequenceDisturbsNothing() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            let listener6 = try bed.listen(tcpPort: 22, family: .ipv6)
            try bed.apply(secrets.spec())
            let window = Self.currentWindow()
            try bed.other.knock(Testbed.serverOtherV4, secrets.knocks(window))
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)

            let knocks = try secrets.knocks(window + 1)
            try bed.client.knock(Testbed.serverV4, [knocks[0]])
            #expect(try bed.progressCount("started4") == 1)
            let report = try bed.apply(secrets.spec())
            #expect(report.inPlace && report.replacement == nil)
            #expect(report.changedSequences.isEmpty && report.endedGrants.isEmpty)
            #expect(try bed.progressCount("started4") == 1, "the apply lost the knock in progress")
            try bed.client.knock(Testbed.serverV4, Array(knocks.dropFirst()))
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            #expect(try bed.progressCount("granted4") == 2)

            // The used marks stayed too: window + 1's knocks, valid until window + 3 begins,
            // open nothing again from the client's IPv6 address.
            try bed.apply(secrets.spec())
            #expect(try bed.progressCount("rotate_used_ssh") == 4)
            try bed.client.knock(Testbed.serverV6, knocks)
            #expect(try bed.client.connect(to: Testbed.serverV6, port: 22) == .refused)
            _ = (listener, listener6)
        }
    }

    // MARK: - 9. The client command

    @Test("knockc knock --spec --sequence and the spec-less --secret --rotate --ports form both open tcp/22")
    func clientCommandOpens() throws {
        let secrets = try Secrets()
        try secrets.spec().write(toFile: secrets.specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec())
            let withSpec = try Self.knockc(in: bed.client, [
                "knock", Testbed.serverV4, "--spec", secrets.specPath, "--sequence", "ssh",
                "--delay", "20ms", "--then-connect", "22", "--timeout", "1s", "--retries", "3"])
            #expect(withSpec.status == 0, "\(withSpec.output)\(withSpec.error)")
            #expect(withSpec.output.contains("tcp/22 on \(Testbed.serverV4) is open"), "\(withSpec.output)")
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)

            let specless = try Self.knockc(in: bed.other, [
                "knock", Testbed.serverOtherV4, "--secret", secrets.path, "--sequence", "ssh",
                "--rotate", "tcp,udp,tcp", "--ports", "20000-40000", "--every", "2s", "--skew", "1",
                "--delay", "20ms", "--then-connect", "22", "--timeout", "1s", "--retries", "3"])
            #expect(specless.status == 0, "\(specless.output)\(specless.error)")
            #expect(specless.output.contains("tcp/22 on \(Testbed.serverOtherV4) is open"), "\(specless.output)")
            #expect(try bed.other.connect(to: Testbed.serverOtherV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("knockc knock's retry that must wait for the next window (skew 0) opens once that window begins")
    func clientRetryWaitsIntoTheNextWindow() throws {
        let secrets = try Secrets()
        try secrets.spec(skew: 0).write(toFile: secrets.specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(secrets.spec(skew: 0))
            // The client's IPv6 address takes the current window, so the command's first
            // attempt, from its IPv4 address in the same window, opens nothing; with skew 0 its
            // retry must wait for the next window to begin.
            let window = Self.currentWindow(margin: 1.5)
            try bed.client.knock(Testbed.serverV6, secrets.knocks(window))
            let result = try Self.knockc(in: bed.client, [
                "knock", Testbed.serverV4, "--spec", secrets.specPath, "--sequence", "ssh",
                "--delay", "20ms", "--then-connect", "22", "--timeout", "300ms", "--retries", "1"])
            #expect(result.output.contains("(window \(window))") && result.output.contains("(window \(window + 1))"),
                    "the command did not knock in windows \(window) then \(window + 1): \(result.output)")
            #expect(result.status == 0, "\(result.output)\(result.error)")
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            _ = listener
        }
    }

    @Test("knockc knock refuses a secret that others can read (mode 0644) and sends nothing")
    func clientRefusesAReadableSecret() throws {
        let secrets = try Secrets()
        let readable = secrets.directory + "/readable.key"
        try FileManager.default.copyItem(atPath: secrets.path, toPath: readable)
        #expect(chmod(readable, 0o644) == 0)
        try secrets.spec().replacingOccurrences(of: secrets.path, with: readable)
            .write(toFile: secrets.specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            try bed.apply(secrets.spec())
            let specless = try Self.knockc(in: bed.client, [
                "knock", Testbed.serverV4, "--secret", readable, "--sequence", "ssh",
                "--rotate", "tcp,udp,tcp", "--ports", "20000-40000", "--every", "2s"])
            let withSpec = try Self.knockc(in: bed.client, [
                "knock", Testbed.serverV4, "--spec", secrets.specPath, "--sequence", "ssh"])
            // Without a spec the secret is refused as a knock that cannot be sent (4); with
            // one, checking the spec already refuses it (1).
            #expect(specless.status == 4, "\(specless.output)\(specless.error)")
            #expect(withSpec.status == 1, "\(withSpec.output)\(withSpec.error)")
            for result in [specless, withSpec] {
                #expect(result.error.contains(readable) && result.error.contains("chmod 600"), "\(result.error)")
                #expect(!result.output.contains("knocked"), "\(result.output)")
            }
            #expect(try Self.progress(bed).values.allSatisfy { $0 == 0 }, "a knock left before the secret was refused")
        }
    }
}

extension Knock {
    /// The port of a tcp or udp knock (0 for an echo knock).
    var portNumber: UInt16 {
        guard case .port(let port) = self else { return 0 }
        return port.port
    }
}

/// UDP datagrams with forged source addresses, from a raw socket in `namespace`: each from a
/// random address of 192.0.2.3 to 192.0.2.254 (never the client's 192.0.2.2 nor the server's
/// .1) and a random source port, to a random port of `ports`, with 8 random payload bytes.
/// Bounded in packets and in time; stops early on `stop()`.
final class SpoofedDatagramFlood: @unchecked Sendable {
    let target: String
    let ports: ClosedRange<UInt16>
    private let flood: BackgroundFlood

    init(namespace: NetworkNamespace, target: String, ports: ClosedRange<UInt16>) {
        flood = BackgroundFlood(namespace: namespace)
        self.target = target
        self.ports = ports
    }

    var packetsSent: Int { flood.packetsSent }

    func start(maxPackets: Int, maxSeconds: Double) {
        flood.start { [target, ports] flood in
            let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
            guard fd >= 0 else { return }
            defer { close(fd) }
            let destination = target.split(separator: ".").compactMap { UInt8($0) }
            var address = SocketAddress.make(target, port: 0).storage
            let deadline = Date().addingTimeInterval(maxSeconds)
            for index in 0..<maxPackets {
                if index % 64 == 0, flood.isStopping || Date() > deadline { return }
                let packet = Self.datagram(source: [192, 0, 2, UInt8.random(in: 3...254)], destination: destination,
                                           port: UInt16.random(in: ports))
                let status = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                if status == packet.count { flood.countSent() }
            }
        }
    }

    /// Waits for the flood to end by itself.
    func finish() { flood.finish() }

    /// Stops the flood and waits for its thread; safe to call more than once.
    func stop() { flood.stop() }

    /// An IPv4 header (the kernel fills in its checksum) and a UDP header without checksum.
    static func datagram(source: [UInt8], destination: [UInt8], port: UInt16) -> [UInt8] {
        let payload = (0..<8).map { _ in UInt8.random(in: 0...255) }
        let length = 20 + 8 + payload.count
        let sourcePort = UInt16.random(in: 1024...65535)
        var packet: [UInt8] = [0x45, 0, UInt8(length >> 8), UInt8(length & 0xff), 0, 0, 0, 0, 64, UInt8(IPPROTO_UDP), 0, 0]
        packet += source + destination
        packet += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(port >> 8), UInt8(port & 0xff),
                   UInt8((8 + payload.count) >> 8), UInt8((8 + payload.count) & 0xff), 0, 0]
        return packet + payload
    }
}

/// ICMP echo requests with a chosen checksum, from a raw socket.
enum ICMPEcho {
    /// Sends one valid echo request to `host` whose checksum field is `checksum`: its sequence
    /// number is chosen to make it so. True when it left.
    static func send(to host: String, checksum: UInt16) -> Bool {
        let identifier: UInt16 = 0x4b43
        // The one's complement sum of every 16-bit word, checksum included, must be 0xffff.
        let partial = onesComplementSum([0x0800, identifier, checksum])
        let sequence = ~partial
        var message: [UInt8] = [8, 0, UInt8(checksum >> 8), UInt8(checksum & 0xff),
                                UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        message += [UInt8](repeating: 0, count: 8)
        let words = stride(from: 0, to: message.count, by: 2).map { UInt16(message[$0]) << 8 | UInt16(message[$0 + 1]) }
        guard onesComplementSum(words) == 0xffff else { return false }
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = SocketAddress.make(host, port: 0).storage
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, message, message.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return sent == message.count
    }

    static func onesComplementSum(_ words: [UInt16]) -> UInt16 {
        var sum = words.reduce(UInt32(0)) { $0 + UInt32($1) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return UInt16(sum)
    }
}
