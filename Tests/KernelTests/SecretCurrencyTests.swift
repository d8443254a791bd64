import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
import KnockSecrets
@testable import KnockTestSupport
import Testing

/// A secret file replaced after the last apply leaves the table holding the old secret's
/// tokens and knocks, and its clients refused without a word: `SecretCurrency`, `diff` and
/// `watch` say so, and an apply ends it.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct SecretCurrencyTests {
    final class Secrets: @unchecked Sendable {
        let directory = "/run/knockc-test-currency-\(getpid())-\(UUID().uuidString)"
        var admin: String { directory + "/admin.key" }
        var ssh: String { directory + "/ssh.key" }
        var specPath: String { directory + "/spec.yaml" }

        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Secret.generate(at: admin)
            try Secret.generate(at: ssh)
            try yaml.write(toFile: specPath, atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        var yaml: String {
            """
            sequences:
              admin:
                open: [tcp/22]
                spa: { secret: \(admin), port: udp/62201, horizon: 1h }
              ssh:
                open: [tcp/2222]
                rotate: { secret: \(ssh), knocks: [tcp, udp, tcp], ports: 20000-40000, horizon: 1h }
              web:
                knock: [tcp/7000, udp/9000, tcp/8000]
                open: [tcp/80]
            """
        }

        /// A new secret in place of `path`, as an admin rotating keys would write it.
        func replace(_ path: String) throws {
            try FileManager.default.removeItem(atPath: path)
            try Secret.generate(at: path)
        }
    }

    func findings(_ bed: Testbed, _ spec: KnockSpec) throws -> [SecretCurrency.Finding] {
        try bed.server.perform { try SecretCurrency(table: "knockc").findings(spec) }
    }

    @Test("a secret replaced after apply is found stale, by sequence, until the next apply; diff says so without a token")
    func replacedSecretIsReported() throws {
        let secrets = try Secrets()
        let spec = try #require(Pipeline.check(secrets.yaml, file: "test.yaml").0)
        try Testbed.with { bed in
            #expect(try findings(bed, spec) == [.stale(sequence: "admin", secret: secrets.admin), .stale(sequence: "ssh", secret: secrets.ssh)],
                    "no table yet: nothing of the secrets is held")
            try bed.apply(secrets.yaml)
            #expect(try findings(bed, spec).isEmpty)

            try secrets.replace(secrets.ssh)
            #expect(try findings(bed, spec) == [.stale(sequence: "ssh", secret: secrets.ssh)])
            try secrets.replace(secrets.admin)
            #expect(try findings(bed, spec) == [.stale(sequence: "admin", secret: secrets.admin), .stale(sequence: "ssh", secret: secrets.ssh)])

            let diff = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc, "diff", secrets.specPath],
                                      allowFailure: true)
            #expect(diff.status == 1, "\(diff.output)\(diff.error)")
            #expect(diff.output.contains("# the table does not hold the current window's knocks or tokens of sequence 'admin'"), "\(diff.output)")
            #expect(diff.output.contains("sequence 'ssh' for secret \(secrets.ssh): the secret changed after the last apply"), "\(diff.output)")
            #expect(!diff.output.contains("0x") && !diff.error.contains("0x"), "no token in diff's output")

            try FileManager.default.removeItem(atPath: secrets.ssh)
            let unreadable = try findings(bed, spec)
            #expect(unreadable.contains { if case .unreadable(sequence: "ssh", secret: secrets.ssh, _) = $0 { true } else { false } }, "\(unreadable)")
            try Secret.generate(at: secrets.ssh)

            try bed.apply(secrets.yaml)
            #expect(try findings(bed, spec).isEmpty, "an apply writes the new secrets' tokens and knocks")
            let clean = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc, "diff", secrets.specPath],
                                       allowFailure: true)
            #expect(clean.status == 0, "\(clean.output)\(clean.error)")
        }
    }

    @Test("watch SPEC logs an error naming the sequence and the file when a secret no longer matches the table")
    func watchReportsAReplacedSecret() throws {
        let secrets = try Secrets()
        try Testbed.with { bed in
            try bed.apply(secrets.yaml)
            try secrets.replace(secrets.admin)
            let watcher = try WatchProcess(in: bed.server, arguments: [secrets.specPath])
            defer { watcher.kill() }
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, !watcher.stderr.contains("sequence 'admin' for secret") {
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(watcher.stderr.contains("tokens of sequence 'admin' for secret \(secrets.admin): the secret changed after the last apply"),
                    "\(watcher.stderr)")
            #expect(!watcher.stderr.contains("sequence 'ssh'"), "the rotating sequence's secret still matches")
            #expect(!watcher.stderr.contains("0x"), "no token in the log")
        }
    }
}
