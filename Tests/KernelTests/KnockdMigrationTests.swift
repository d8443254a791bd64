import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
import Testing

/// `knockc import knockd` proved against the real thing: Debian's knockd, run with a
/// docs-style knockd.conf in one server namespace, opens port 22 on knockd's own client's
/// knocks; the translated spec, applied in a fresh server, opens it on the same knocks, and
/// neither opens on the knocks in a wrong order.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct KnockdMigrationTests {
    /// knockd's documentation example, with -p tcp, and the files it writes kept in `directory`.
    static func conf(directory: String) -> String {
        """
        [options]
        \tlogfile = \(directory)/knockd.log
        \tpidfile = \(directory)/knockd.pid

        [openSSH]
        \tsequence    = 7000,8000,9000
        \tseq_timeout = 5
        \tcommand     = /usr/sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
        \ttcpflags    = syn

        [closeSSH]
        \tsequence    = 9000,8000,7000
        \tseq_timeout = 5
        \tcommand     = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
        \ttcpflags    = syn

        """
    }

    static let knocks = ["7000", "8000", "9000"]
    static let wrongOrder = ["8000", "7000", "9000"]
    static let closeKnocks = ["9000", "8000", "7000"]
    static let programs = ["/usr/sbin/knockd", "/usr/bin/knock", "/usr/sbin/iptables"]

    /// Knocks with knockd's own client, `knock`, from the client namespace.
    static func knock(_ bed: Testbed, _ ports: [String]) throws {
        try runProgram(["ip", "netns", "exec", bed.client.name, "knock", Testbed.serverV4] + ports)
    }

    /// Connects until the outcome is `expected` or `seconds` pass; the last outcome. knockd
    /// acts on a copy of the packets, a moment after they arrive, so a single try would race it.
    static func connect(_ bed: Testbed, until expected: ConnectOutcome, within seconds: Double) throws -> ConnectOutcome {
        let deadline = Date().addingTimeInterval(seconds)
        var outcome = try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5)
        while outcome != expected && Date() < deadline {
            outcome = try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5)
        }
        return outcome
    }

    /// Connects for `seconds` and returns the first outcome that is not `expected`, if any.
    static func staysSo(_ bed: Testbed, _ expected: ConnectOutcome, for seconds: Double) throws -> ConnectOutcome? {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            let outcome = try bed.client.connect(to: Testbed.serverV4, port: 22, timeout: 0.5)
            if outcome != expected { return outcome }
        } while Date() < deadline
        return nil
    }

    @Test("the knocks that open knockd's port open the translated spec's; a wrong order opens neither")
    func sameKnocksOpenBoth() throws {
        let missing = Self.programs.filter { !FileManager.default.isExecutableFile(atPath: $0) }
        guard missing.isEmpty else {
            Issue.record("skipped: \(missing.joined(separator: ", ")) missing; apt-get install knockd iptables",
                         severity: TestEnvironment.skipsMustFail ? .error : .warning)
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knockd-import-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let confPath = directory + "/knockd.conf"
        try Self.conf(directory: directory).write(toFile: confPath, atomically: true, encoding: .utf8)

        // knockd: its command inserts an ACCEPT before the rule that keeps port 22 closed.
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try runProgram(["ip", "netns", "exec", bed.server.name, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"])
            let knockd = try startKnockd(in: bed, config: confPath, directory: directory)
            defer { knockd.stop() }
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            try Self.knock(bed, Self.wrongOrder)
            #expect(try Self.staysSo(bed, .refused, for: 1) == nil, "knockd opened on a wrong order")

            try Self.knock(bed, Self.knocks)
            #expect(try Self.connect(bed, until: .connected, within: 5) == .connected, "knockd did not open: \(knockd.log)")

            try Self.knock(bed, Self.closeKnocks)
            #expect(try Self.connect(bed, until: .refused, within: 5) == .refused, "knockd's closeSSH did not close")
            _ = listener
        }

        // knockc: the same conf, translated as `knockc import knockd` does, in a fresh server.
        let translation = try KnockdImport.translate(String(contentsOfFile: confPath, encoding: .utf8), file: confPath)
        #expect(translation.isComplete, "\(translation.untranslated)")
        try Testbed.with { bed in
            let listener = try bed.listen(tcpPort: 22)
            try bed.apply(translation.spec)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused)

            try Self.knock(bed, Self.wrongOrder)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "knockc opened on a wrong order")

            try Self.knock(bed, Self.knocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .connected)

            try Self.knock(bed, Self.closeKnocks)
            #expect(try bed.client.connect(to: Testbed.serverV4, port: 22) == .refused, "closeSSH's knocks did not close")
            _ = listener
        }
    }
}

/// knockd in the server namespace, listening on the server's link to the client, as a
/// `Daemon`; returns once it logged that it listens.
func startKnockd(in bed: Testbed, config: String, directory: String, readyWithin: Double = 10) throws -> Daemon {
    // The server's end of the client link is the device that holds the server's address.
    let addresses = try runProgram(["ip", "-n", bed.server.name, "-o", "-4", "addr", "show"]).output
    guard let line = addresses.split(separator: "\n").first(where: { $0.contains(" \(Testbed.serverV4)/") }),
          let device = line.split(separator: " ").dropFirst().first.map({ String($0).trimmingCharacters(in: CharacterSet(charactersIn: ":")) })
    else { throw Daemon.NotReady(description: "no device holds \(Testbed.serverV4) in \(bed.server.name): \(addresses)") }
    // `ip netns exec` execs knockd, so the daemon's pid is knockd's own.
    let knockd = try Daemon("knockd", ["/usr/sbin/ip", "netns", "exec", bed.server.name, "/usr/sbin/knockd", "-v", "-c", config, "-i", device],
                            logPath: directory + "/knockd.out")
    try knockd.waitUntil(within: readyWithin, "start listening") { knockd.log.contains("listening on") }
    return knockd
}
