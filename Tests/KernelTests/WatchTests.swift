import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// `knockc watch` reports; the kernel decides. Killing the watcher must change nothing.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct WatchTests {
    static let spec = KnockSemanticsTests.spec.replacingOccurrences(of: "open_for: 1h", with: "open_for: 2s")

    /// An event's RFC 3339 time field as a date.
    static func date(_ event: [String: Any]?, _ field: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return (event?[field] as? String).flatMap { formatter.date(from: $0) }
    }

    @Test("a grant and its expiry each give one event within a second; an existing grant gives none on start")
    func grantAndExpiryEvents() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec.replacingOccurrences(of: "open_for: 2s", with: "open_for: 1h"))
            try bed.other.knock(Testbed.serverOtherV4, KnockSemanticsTests.sequence)
            try bed.apply(Self.spec)
            let watcher = try WatchProcess(in: bed.server)
            defer { watcher.kill() }
            #expect(watcher.readyMessage.hasPrefix("READY=1"))
            // The other host's grant is live as the watcher starts (so its absence below means
            // something): the watcher counted it.
            #expect(eventually(within: 5) { watcher.stderr.contains(" grants=1 ") }, "\(watcher.stderr)")

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 10) { watcher.events("expire").contains { $0["source"] as? String == Testbed.clientV4 } }, "\(watcher.stdout)")
            // A later event as a barrier: every event of the polls before it has been printed,
            // so a second grant or expiry of the client would show in the counts below.
            try bed.client.knock(Testbed.serverV6, KnockSemanticsTests.sequence)
            #expect(eventually(within: 10) { watcher.events("grant").contains { $0["source"] as? String == Testbed.clientV6 } }, "\(watcher.stdout)")

            let grants = watcher.events("grant").filter { $0["source"] as? String == Testbed.clientV4 }
            let expiries = watcher.events("expire").filter { $0["source"] as? String == Testbed.clientV4 }
            #expect(grants.count == 1 && expiries.count == 1, "\(watcher.stdout)")
            let grant = grants.first
            #expect(grant?["ports"] as? [String] == ["tcp/22"])
            #expect(grant?["sequences"] as? [String] == ["ssh"])

            // Timing from the watcher's own stamps, so a slow test thread cannot fail it: the
            // kernel granted at expires_at - open_for (2 s); the event's time is the reading
            // that saw it, which must come within a second (the interval is 100 ms).
            let expiresAt = try #require(Self.date(grant, "expires_at"))
            let granted = expiresAt.addingTimeInterval(-2)
            let grantSeen = try #require(Self.date(grant, "time")).timeIntervalSince(granted)
            #expect(grantSeen > -0.1 && grantSeen < 1, "the grant was reported \(grantSeen) s after the kernel granted")
            // Each reading computes expires_at again from the time left, to the millisecond.
            let ranOut = try #require(Self.date(expiries.first, "expires_at"))
            #expect(abs(ranOut.timeIntervalSince(expiresAt)) < 0.1)
            let expirySeen = try #require(Self.date(expiries.first, "time")).timeIntervalSince(ranOut)
            #expect(expirySeen > -0.1 && expirySeen < 1, "the expiry was reported \(expirySeen) s after the grant ran out")

            // The grant that existed before the watcher started gave no event at all.
            #expect(!watcher.events.contains { $0["source"] as? String == Testbed.otherV4 }, "\(watcher.stdout)")
        }
    }

    @Test("killing the watcher (SIGKILL) changes nothing: a client still gets in and the grant still expires on time")
    func watcherIsNotInThePacketPath() throws {
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(Self.spec)
            let watcher = try WatchProcess(in: bed.server)
            watcher.kill()
            #expect(!watcher.process.isRunning)

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            let granted = Date()
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)
            #expect(try eventually(within: 4) { try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5) == .refused })
            #expect(Date().timeIntervalSince(granted) >= 1.9, "expired before open_for")
            _ = listener
        }
    }

    /// A spec file in a fresh temporary directory, with hooks that append their environment
    /// to files there. The scripts are constants; the event reaches them only as variables
    /// (the last field, `$#`, shows that no argument was added).
    static func hookSpec(in directory: String, extra: String = "") throws -> String {
        let record = "printf '%s|%s|%s|%s|%s|%s\\n' \"$KNOCKC_EVENT\" \"$KNOCKC_SOURCE\" \"$KNOCKC_SEQUENCE\" \"$KNOCKC_PORTS\" \"${KNOCKC_REASON:-}\" \"$#\""
        let yaml = """
            hook_timeout: 1s
            on_grant: [/bin/sh, -c, \(YAMLScalar.doubleQuoted(record + " >> \(directory)/grant")), hook]
            on_expire: [/bin/sh, -c, \(YAMLScalar.doubleQuoted(record + " >> \(directory)/expire")), hook]
            sequences:
              ssh:
                knock: [tcp/7000, udp/9000, tcp/8000]
                open: [tcp/22]
                step_timeout: 1s
                open_for: 2s
                close: [udp/9000, tcp/7000, tcp/6000]
              slow:
                knock: [tcp/7100, udp/9100, tcp/8100]
                open: [tcp/443]
                on_grant: [/bin/sleep, "30"]
            \(extra)
            """
        let path = directory + "/spec.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "knockc-watch-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test("hooks run with the event in KNOCKC_* variables; a hung hook is stopped at hook_timeout and holds up nothing")
    func hooksRunWithTheEventInTheirEnvironment() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let specPath = try Self.hookSpec(in: directory)
        try Testbed.with { bed in
            try bed.apply(String(contentsOfFile: specPath, encoding: .utf8))
            let watcher = try WatchProcess(in: bed.server, arguments: [specPath])
            defer { watcher.kill() }

            // The slow sequence's hook hangs; the ssh grant's hook must run regardless.
            try bed.other.knock(Testbed.serverOtherV4, [.tcp(7100), .udp(9100), .tcp(8100)])
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 2) { Self.lines(directory + "/grant") == ["grant|\(Testbed.clientV4)|ssh|tcp/22||0"] },
                    "\(Self.lines(directory + "/grant")) \(watcher.stderr)")
            #expect(eventually(within: 4) { Self.lines(directory + "/expire").contains("expire|\(Testbed.clientV4)|ssh|tcp/22|timeout|0") },
                    "\(Self.lines(directory + "/expire"))")
            #expect(eventually(within: 4) { watcher.stderr.contains("timed out") }, "\(watcher.stderr)")
            #expect(watcher.stderr.contains("/bin/sleep"))
            // Events kept flowing on stdout: both grants and the ssh expiry.
            #expect(watcher.events("grant").count == 2)
            #expect(watcher.process.isRunning)
        }
    }

    @Test("a close sequence, a revoke and an apply that drops the port each give an end event with its reason; an apply that keeps the grant gives none")
    func endEventsSayWhy() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let specPath = try Self.hookSpec(in: directory)
        let longer = try String(contentsOfFile: specPath, encoding: .utf8).replacingOccurrences(of: "open_for: 2s", with: "open_for: 1h")
        try longer.write(toFile: specPath, atomically: true, encoding: .utf8)
        try Testbed.with { bed in
            try bed.apply(longer)
            let watcher = try WatchProcess(in: bed.server, arguments: [specPath])
            defer { watcher.kill() }
            func endReasons() -> [String] { watcher.events("end").compactMap { $0["reason"] as? String } }

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 2) { watcher.events("grant").count == 1 })
            try bed.client.knock(Testbed.serverV4, [.udp(9000), .tcp(7000), .tcp(6000)])
            #expect(eventually(within: 2) { endReasons() == ["close"] }, "\(watcher.stdout)")

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 2) { watcher.events("grant").count == 2 })
            let revoked = try bed.server.perform { try Revoker().revoke(source: IPAddress(Testbed.clientV4, family: .ipv4)!, sequence: nil, table: "knockc") }
            #expect(revoked != nil)
            #expect(eventually(within: 2) { endReasons() == ["close", "revoke"] }, "\(watcher.stdout)")

            // on_expire ran for each end, with its reason.
            #expect(eventually(within: 2) { Self.lines(directory + "/expire").map { $0.split(separator: "|", omittingEmptySubsequences: false)[4] } == ["close", "revoke"] },
                    "\(Self.lines(directory + "/expire"))")

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 2) { watcher.events("grant").count == 3 })
            // A changed spec: the grant is carried over, so it neither ends nor starts again.
            let changed = longer.replacingOccurrences(of: "open: [tcp/443]", with: "open: [tcp/8443]")
            try changed.write(toFile: specPath, atomically: true, encoding: .utf8)
            try bed.apply(changed)
            #expect(eventually(within: 2) { watcher.stderr.contains("the table's sequences changed") })
            // The poll that logged the replacement prints its events after the log line: wait
            // for a later event, the other host's grant, before counting.
            try bed.other.knock(Testbed.serverOtherV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 5) { watcher.events("grant").contains { $0["source"] as? String == Testbed.otherV4 } }, "\(watcher.stdout)")
            #expect(watcher.events("end").count == 2, "\(watcher.stdout)")
            #expect(watcher.events("grant").filter { $0["source"] as? String == Testbed.clientV4 }.count == 3, "\(watcher.stdout)")

            // ssh no longer opens tcp/22: the apply ends both grants, and says so.
            let dropped = changed.replacingOccurrences(of: "open: [tcp/22]", with: "open: [tcp/2222]")
            try dropped.write(toFile: specPath, atomically: true, encoding: .utf8)
            try bed.apply(dropped)
            #expect(eventually(within: 2) { endReasons() == ["close", "revoke", "apply", "apply"] }, "\(watcher.stdout)")
        }
    }

    @Test("--metrics serves Prometheus text over loopback, with the kernel's counters and the watcher's own")
    func metricsOverLoopback() throws {
        try Testbed.with { bed in
            try bed.apply(Self.spec.replacingOccurrences(of: "open_for: 2s", with: "open_for: 1s"))
            let watcher = try WatchProcess(in: bed.server, arguments: ["--metrics", "127.0.0.1:9464"])
            defer { watcher.kill() }
            func scrape() throws -> String {
                try runProgram(["ip", "netns", "exec", bed.server.name, "/usr/bin/python3", "-c",
                                "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode(), end='')"]).output
            }
            let before = try scrape()
            #expect(before.contains("# TYPE knockc_grants_total counter"))
            #expect(before.contains("knockc_grants_total{sequence=\"ssh\"} 0"))
            #expect(before.contains("knockc_wrong_knocks_total 0"))

            // A wrong knock (knock 1, then a knock of the sequence out of turn), then the sequence.
            try bed.client.knock(Testbed.serverV4, [.tcp(7000), .tcp(8000)])
            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(try eventually(within: 2) { try scrape().contains("knockc_grants_active{family=\"ipv4\"} 1") },
                    "\((try? scrape()) ?? "") \(watcher.stdout) \(watcher.stderr)")
            let granted = try scrape()
            #expect(granted.contains("knockc_grants_total{sequence=\"ssh\"} 1"), "\(granted)")
            #expect(granted.contains("knockc_wrong_knocks_total 1"), "\(granted)")
            #expect(try eventually(within: 4) { try scrape().contains("knockc_expiries_total{sequence=\"ssh\"} 1") })
            #expect(try scrape().contains("knockc_grants_active{family=\"ipv4\"} 0"))
            #expect(try runProgram(["ip", "netns", "exec", bed.server.name, "/usr/bin/python3", "-c",
                                    "import urllib.request,sys\ntry: urllib.request.urlopen('http://127.0.0.1:9464/other', timeout=5)\nexcept Exception as e: print(e)"]).output.contains("404"))
        }
    }

    @Test("--metrics keeps answering a scrape while 1,000 idle, slow-loris and garbage connections are open, closes each by its whole-request deadline, and stays small")
    func metricsUnderConnectionFlood() throws {
        raiseOpenFileLimit(to: 4_096)
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            let watcher = try WatchProcess(in: bed.server, arguments: ["--metrics", "127.0.0.1:9464"])
            defer { watcher.kill() }
            let pid = watcher.process.processIdentifier
            #expect(try scrapeMetrics(in: bed.server) != nil, "\(watcher.stderr)")
            let before = try #require(residentKiB(pid))

            let flood = try HostileClients(in: bed.server, kinds: Array(repeating: .idle, count: 334)
                                           + Array(repeating: .slowLoris, count: 333) + Array(repeating: .garbage, count: 333))
            flood.tick()
            // A well-behaved scrape is answered, whole and correct, while they are open.
            let asked = ContinuousClock.now
            var body: String?
            #expect(try eventually(within: 5) {
                flood.tick()
                body = try scrapeMetrics(in: bed.server, timeout: 2)
                return body != nil
            })
            let answered = ContinuousClock.now - asked
            #expect(answered < .seconds(5), "the scrape took \(answered)")
            #expect(body?.contains("# TYPE knockc_grants_total counter\n") == true)
            #expect(body?.contains("knockc_grants_total{sequence=\"ssh\"} 0\n") == true, "\(body ?? "")")

            // A slow loris opened after the flood, the newest connection, so no newer one
            // displaces it: it sends a byte every 1.5 s (each within any per-read timeout), and
            // is closed by the 5 s deadline on the whole request.
            let loris = try HostileClients(in: bed.server, kinds: [.slowLoris])
            var largest = before
            let limit = ContinuousClock.now.advanced(by: .seconds(15))
            while (flood.open > 0 || loris.open > 0) && ContinuousClock.now < limit {
                flood.tick()
                loris.tick()
                largest = max(largest, residentKiB(pid) ?? 0)
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(flood.open == 0, "\(flood.open) of the flood's connections are still open after 15 s")
            let lasted = try #require(loris.clients[0].closed, "the slow loris is still open after 15 s") - loris.clients[0].opened
            #expect(lasted >= .milliseconds(4_900) && lasted < .seconds(9), "the slow loris was closed after \(lasted)")
            #expect(loris.clients[0].bytesSent >= 3, "the slow loris sent \(loris.clients[0].bytesSent) bytes")
            // The flood could not make the watcher hold its garbage: 333 × 2 KiB every 0.1 s.
            #expect(largest - before < 8_192, "VmRSS grew from \(before) KiB to \(largest) KiB")
            #expect(try scrapeMetrics(in: bed.server) != nil)
            #expect(watcher.process.isRunning)
        }
    }

    @Test("--metrics-textfile writes the metrics text atomically and keeps it current, leaving no temporary file")
    func metricsTextfile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/knockc.prom"
        // A temporary left by a killed watcher: swept by the first write.
        try "stale".write(toFile: directory + "/.knockc.prom.knockc-tmp", atomically: false, encoding: .utf8)
        try Testbed.with { bed in
            try bed.apply(Self.spec)
            let watcher = try WatchProcess(in: bed.server, arguments: ["--metrics-textfile", path])
            defer { watcher.kill() }
            // Written before READY=1.
            let first = try String(contentsOfFile: path, encoding: .utf8)
            #expect(first.contains("# TYPE knockc_grants_total counter\nknockc_grants_total{sequence=\"ssh\"} 0\n"), "\(first)")
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            #expect(mode == 0o644)

            try bed.client.knock(Testbed.serverV4, KnockSemanticsTests.sequence)
            #expect(eventually(within: 2) {
                ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains("knockc_grants_total{sequence=\"ssh\"} 1\n")
            }, "\((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")")
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["knockc.prom"])
        }
    }
}

