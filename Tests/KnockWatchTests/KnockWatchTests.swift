import Foundation
@testable import KnockCore
@testable import KnockWatch
import KnockProcess
import Logging
import Testing

/// The watcher's parts that need no kernel: event lines, metrics text, hooks.
struct EventLineTests {
    let event = ReportedEvent(
        event: GrantEvent(kind: .end, grants: [TransportPort(.tcp, 22), TransportPort(.udp, 53)].map {
                              Grant(source: IPAddress("2001:db8::2", family: .ipv6)!, port: $0, sequences: ["ssh", "dns-x"],
                                    timeout: .seconds(30), expires: .seconds(0))
                          }, expiresAt: Date(timeIntervalSince1970: 1_795_000_000.5)),
        reason: .close, time: Date(timeIntervalSince1970: 1_795_000_000.031))

    @Test("the JSON line holds every field, parses, and spells times as RFC 3339 UTC with milliseconds")
    func jsonLine() throws {
        let line = EventLine.json(event)
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["event"] as? String == "end")
        #expect(object["reason"] as? String == "close")
        #expect(object["source"] as? String == "2001:db8::2")
        #expect(object["family"] as? String == "ipv6")
        #expect(object["ports"] as? [String] == ["tcp/22", "udp/53"])
        #expect(object["sequences"] as? [String] == ["ssh", "dns-x"])
        #expect(object["expires_at"] as? String == "2026-11-18T11:06:40.500Z")
        #expect(object["time"] as? String == "2026-11-18T11:06:40.031Z")
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        #expect(formatter.date(from: object["time"] as! String) == Date(timeIntervalSince1970: 1_795_000_000.031))
        // Keys in sorted order, as before the serializer was replaced.
        #expect(line.hasPrefix("{\"event\":\"end\",\"expires_at\":"))
    }

    @Test("hooks get the same fields, lists separated by spaces")
    func environment() {
        let environment = EventLine.environment(event)
        #expect(environment["KNOCKC_EVENT"] == "end")
        #expect(environment["KNOCKC_SOURCE"] == "2001:db8::2")
        #expect(environment["KNOCKC_PORTS"] == "tcp/22 udp/53")
        #expect(environment["KNOCKC_SEQUENCE"] == "ssh dns-x")
        #expect(environment["KNOCKC_REASON"] == "close")
        #expect(environment["KNOCKC_EXPIRES_AT"] == "2026-11-18T11:06:40.500Z")
    }


}

struct PrometheusTextTests {
    @Test("families render with HELP, TYPE, escaped labels and integral values")
    func render() {
        let text = PrometheusText.render([
            MetricFamily("knockc_grants_total", .counter, help: "Grants.\nBy sequence.",
                         samples: [.init([("sequence", "s\"1\\")], 3)]),
            MetricFamily("knockc_bans_active", .gauge, help: "Bans.", samples: [.init([], 0)]),
        ])
        #expect(text == """
            # HELP knockc_grants_total Grants.\\nBy sequence.
            # TYPE knockc_grants_total counter
            knockc_grants_total{sequence="s\\"1\\\\"} 3
            # HELP knockc_bans_active Bans.
            # TYPE knockc_bans_active gauge
            knockc_bans_active 0

            """)
    }

    @Test("kernel counters become per-sequence families; the watcher's own counts are added")
    func families() {
        let metrics = WatchMetrics()
        let families = metrics.families(kernelCounters: ["grants_ssh": 4, "grants_web": 1, "wrong_knocks": 7, "bans": 2, "closes_ssh": 1,
                                                         "spa_rejected_admin": 12])
        let text = PrometheusText.render(families)
        #expect(text.contains("knockc_grants_total{sequence=\"ssh\"} 4\nknockc_grants_total{sequence=\"web\"} 1\n"))
        #expect(text.contains("knockc_wrong_knocks_total 7\n"))
        #expect(text.contains("knockc_bans_total 2\n"))
        #expect(text.contains("knockc_closes_total{sequence=\"ssh\"} 1\n"))
        #expect(text.contains("knockc_spa_rejected_total{sequence=\"admin\"} 12\n"))
        #expect(text.contains("knockc_grants_active{family=\"ipv4\"} 0\n"))
    }

    @Test("--metrics takes numeric addresses with a port, IPv6 in brackets")
    func endpoints() {
        #expect(MetricsServer.Endpoint("127.0.0.1:9464")?.description == "127.0.0.1:9464")
        #expect(MetricsServer.Endpoint("[::1]:9464")?.isIPv6 == true)
        for bad in ["localhost:9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:9464", "[::1]", ":9464", "[127.0.0.1]:1"] {
            #expect(MetricsServer.Endpoint(bad) == nil, "\(bad)")
        }
    }
}

struct MetricsServerTests {
    @Test("a request that arrives a byte at a time is answered at its blank line, not before; others get 404 or 400")
    func requestsByTheByte() throws {
        for text in ["GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET /metrics?x=1 HTTP/1.0\n\n"] {
            var request: [UInt8] = []
            var answered: [UInt8]?
            for (index, byte) in text.utf8.enumerated() {
                #expect(answered == nil, "answered before byte \(index) of \(text.debugDescription)")
                let searchFrom = request.count - 3
                request.append(byte)
                answered = MetricsServer.response(to: request, searchFrom: searchFrom) { "m 1\n" }
            }
            let response = String(decoding: try #require(answered), as: UTF8.self)
            #expect(response.hasPrefix("HTTP/1.0 200 OK\r\n") && response.hasSuffix("Content-Length: 4\r\nConnection: close\r\n\r\nm 1\n"), "\(response)")
        }
        let notFound = MetricsServer.response(to: Array("GET / HTTP/1.1\r\n\r\n".utf8)) { "" }
        #expect(notFound.map { String(decoding: $0, as: UTF8.self).hasPrefix("HTTP/1.0 404 ") } == true)
        let bad = MetricsServer.response(to: Array("\u{1}\u{2} garbage\r\n\r\n".utf8)) { "" }
        #expect(bad.map { String(decoding: $0, as: UTF8.self).hasPrefix("HTTP/1.0 400 ") } == true)
        #expect(MetricsServer.response(to: Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)) { "" } == nil)
    }
}

struct HookRunnerTests {
    static let logger = Logger(label: "test")

    func command(_ arguments: String...) -> HookCommand { try! HookCommand(arguments) }

    @Test("a hook gets the event in its environment and nothing in its arguments")
    func environmentReachesTheHook() throws {
        let output = NSTemporaryDirectory() + "knockc-hook-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let runner = HookRunner(timeout: .seconds(5), logger: Self.logger)
        runner.submit(.init(command: command("/bin/sh", "-c", "printf '%s %s %s' \"$KNOCKC_SOURCE\" \"$#\" \"$PATH\" > \(output)"),
                            environment: ["KNOCKC_SOURCE": "192.0.2.2; reboot"], label: "test"))
        #expect(runner.waitUntilIdle(deadline: Date().addingTimeInterval(10)))
        let text = try String(contentsOfFile: output, encoding: .utf8)
        #expect(text.hasPrefix("192.0.2.2; reboot 0 /"))
        #expect(runner.counts == HookRunner.Tally(succeeded: 1))
    }

    @Test("a hung hook is stopped at its timeout; a failing or missing one is counted; others run meanwhile")
    func failuresAreContained() {
        let runner = HookRunner(timeout: .init(milliseconds: 300), slots: 2, logger: Self.logger)
        let started = Date()
        runner.submit(.init(command: command("/bin/sleep", "30"), environment: [:], label: "hang"))
        runner.submit(.init(command: command("/bin/false"), environment: [:], label: "fail"))
        runner.submit(.init(command: command("/nonexistent/hook"), environment: [:], label: "missing"))
        runner.submit(.init(command: command("/bin/true"), environment: [:], label: "ok"))
        #expect(runner.waitUntilIdle(deadline: Date().addingTimeInterval(10)))
        #expect(Date().timeIntervalSince(started) < 5, "the hung hook was not stopped in time")
        #expect(runner.counts == HookRunner.Tally(succeeded: 1, failed: 2, timedOut: 1))
    }

    @Test("at hook_timeout the hook's whole process group is killed, even a child that ignores SIGTERM after its shell has exited")
    func timeoutKillsTheWholeGroup() throws {
        let directory = NSTemporaryDirectory() + "knockc-hook-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The shell (the group's leader) dies of SIGTERM; its child ignores SIGTERM, so only
        // a SIGKILL to the group stops it.
        let script = "echo $$ > \(directory)/group; (trap '' TERM; exec /bin/sleep 300) & echo $! > \(directory)/child; wait"
        let runner = HookRunner(timeout: .init(milliseconds: 500), logger: Self.logger)
        let started = ContinuousClock.now
        runner.submit(.init(command: command("/bin/sh", "-c", script), environment: [:], label: "term-ignoring child"))
        #expect(runner.waitUntilIdle(deadline: Date().addingTimeInterval(15)))
        #expect(ContinuousClock.now - started < .seconds(6), "not stopped within hook_timeout and the 2 s grace")
        #expect(runner.counts == HookRunner.Tally(timedOut: 1))

        let group = try #require(pid_t(String(contentsOfFile: directory + "/group", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let child = try #require(pid_t(String(contentsOfFile: directory + "/child", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(group > 1 && child > 1 && child != group)
        // Nothing of the group is left alive (its killed child may linger as a zombie until
        // init reaps it; liveMembers leaves zombies out).
        #expect(waitFor { ChildProcess.liveMembers(ofGroup: group).isEmpty }, "still running: \(ChildProcess.liveMembers(ofGroup: group))")
        #expect(!ChildProcess.liveMembers(ofGroup: group).contains(child))
    }

    @Test("a hook inherits no descriptor of the watcher's but stdin, stdout and stderr")
    func hookInheritsNoDescriptors() throws {
        let output = NSTemporaryDirectory() + "knockc-hook-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        // One the watcher might hold without close-on-exec, at a number no shell uses.
        let opened = open("/dev/null", O_RDONLY)
        let leaked = fcntl(opened, F_DUPFD, 200)
        close(opened)
        defer { close(leaked) }
        #expect(leaked >= 200 && fcntl(leaked, F_GETFD) & FD_CLOEXEC == 0)
        let runner = HookRunner(timeout: .seconds(5), logger: Self.logger)
        runner.submit(.init(command: command("/bin/sh", "-c", "ls /proc/$$/fd > \(output)"), environment: [:], label: "fds"))
        #expect(runner.waitUntilIdle(deadline: Date().addingTimeInterval(10)))
        let descriptors = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
        #expect(descriptors.contains(2))
        #expect(!descriptors.contains(leaked), "the hook holds \(leaked): \(descriptors)")
    }

    @Test("past the queue limit, jobs are dropped and counted, not kept")
    func queueIsBounded() {
        let runner = HookRunner(timeout: .seconds(1), slots: 1, queueLimit: 2, logger: Self.logger)
        runner.submit(.init(command: command("/bin/sleep", "0.5"), environment: [:], label: "busy"))
        // Let the one slot take it, so the queue holds exactly what follows.
        #expect(waitFor { runner.counts.dropped == 0 && runner.isRunningAny })
        for _ in 0..<5 { runner.submit(.init(command: command("/bin/true"), environment: [:], label: "queued")) }
        #expect(runner.counts.dropped == 3)
        #expect(runner.waitUntilIdle(deadline: Date().addingTimeInterval(10)))
        #expect(runner.counts.succeeded == 3)
    }

    func waitFor(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if condition() { return true }
            usleep(5_000)
        }
        return condition()
    }
}

struct MetricsTextfileTests {
    static func directory() throws -> String {
        let path = NSTemporaryDirectory() + "knockc-textfile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("the file holds the text, mode 0644; a stale temporary is swept and a link planted there is not followed")
    func writesTheText() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var file = MetricsTextfile(path: directory + "/knockc.prom")
        let victim = directory + "/victim"
        try "untouched".write(toFile: victim, atomically: false, encoding: .utf8)
        #expect(symlink(victim, file.temporaryPath) == 0)

        #expect(try file.update("# TYPE knockc_bans_total counter\nknockc_bans_total 3\n"))
        #expect(try String(contentsOfFile: file.path, encoding: .utf8) == "# TYPE knockc_bans_total counter\nknockc_bans_total 3\n")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        #expect(try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int == 0o644)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["knockc.prom", "victim"])
    }

    @Test("it is rewritten when the text changes or is `refresh` old, not otherwise")
    func writesWhenChangedOrOld() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var file = MetricsTextfile(path: directory + "/knockc.prom", refresh: .seconds(60))
        let start = ContinuousClock.now
        #expect(try file.update("a 1\n", now: start))
        #expect(try !file.update("a 1\n", now: start.advanced(by: .seconds(59))))
        #expect(try file.update("a 2\n", now: start.advanced(by: .seconds(59))))
        #expect(try file.update("a 2\n", now: start.advanced(by: .seconds(120))))
        #expect(try String(contentsOfFile: file.path, encoding: .utf8) == "a 2\n")
    }

    /// Versions of alternating size (a short one would show a truncated long one), each
    /// beginning and ending with its own number.
    static func version(_ number: Int) -> String {
        "# begin \(number)\n" + String(repeating: "knockc_grants_total{sequence=\"s\"} \(number)\n", count: number % 2 == 0 ? 2_000 : 3) + "# end \(number)\n"
    }

    @Test("a reader never sees a partial file while it is replaced again and again")
    func replacementIsAtomic() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var file = MetricsTextfile(path: directory + "/knockc.prom", refresh: .zero)
        try file.update(Self.version(0))
        let path = file.path
        let progress = ReaderProgress()
        // A thread of its own: a task could wait for a place in the cooperative pool while
        // the other tests hold it, and then read nothing.
        let reader = Thread {
            let limit = ContinuousClock.now.advanced(by: .seconds(30))
            while !progress.stopped, ContinuousClock.now < limit {
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    progress.read(bad: "unreadable")
                    continue
                }
                let number = text.split(separator: "\n").first?.dropFirst("# begin ".count) ?? ""
                progress.read(bad: text == Self.version(Int(number) ?? -1) ? nil : String(text.prefix(80)))
            }
            progress.finish()
        }
        reader.start()
        // Replace it while the reader reads: at least 100 times and until it has read 300 times.
        var number = 0
        let limit = ContinuousClock.now.advanced(by: .seconds(15))
        while (number < 100 || progress.reads < 300) && number < 100_000 && ContinuousClock.now < limit {
            number += 1
            try file.update(Self.version(number))
        }
        progress.stop()
        #expect(progress.waitUntilFinished(), "the reader did not stop")
        let bad = progress.bad
        #expect(progress.reads >= 300 && number >= 100, "the reader read \(progress.reads) times while it was replaced \(number) times")
        #expect(bad.isEmpty, "\(bad.count) bad reads, the first: \(bad.first ?? "")")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["knockc.prom"])
    }
}

/// What the reading thread of `replacementIsAtomic` has done, and the writer's word to stop.
final class ReaderProgress: @unchecked Sendable {
    private let condition = NSCondition()
    private var count = 0
    private var badReads: [String] = []
    private var done = false
    private var finished = false
    var reads: Int { condition.withLock { count } }
    var bad: [String] { condition.withLock { badReads } }
    var stopped: Bool { condition.withLock { done } }
    func read(bad: String?) { condition.withLock { count += 1; if let bad { badReads.append(bad) } } }
    func stop() { condition.withLock { done = true } }
    func finish() { condition.withLock { finished = true; condition.broadcast() } }
    func waitUntilFinished() -> Bool {
        condition.withLock {
            let limit = Date().addingTimeInterval(40)
            while !finished { guard condition.wait(until: limit) else { return false } }
            return true
        }
    }
}
