import Foundation
import Glibc
@testable import KnockTestSupport
import Testing

/// `knockc units`: the systemd unit it renders and installs, and the paths it refuses to
/// write into a unit. Runs the built executable; needs neither root nor systemd.
struct UnitsTests {
    static let knockc = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("knockc").path
    static let ssh = examplePath("ssh.yaml")

    /// A fresh directory for one test, removed afterwards.
    func withDirectory(_ body: (URL) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("knockc-units-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try body(directory)
    }

    func units(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        try runProgram([Self.knockc, "units"] + arguments, allowFailure: true)
    }

    func contents(of directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    @Test("--install writes knockc.service, mode 0644, that runs the given knockc on the given spec after nftables.service")
    func installsTheApplyUnit() throws {
        try withDirectory { directory in
            let result = try units(["--spec", Self.ssh, "--knockc", Self.knockc, "--install", "--directory", directory.path])
            #expect(result.status == 0, "\(result.error)")
            #expect(result.output.contains("systemctl daemon-reload && systemctl enable --now knockc.service"))
            #expect(try contents(of: directory) == ["knockc.service"])

            let path = directory.appendingPathComponent("knockc.service").path
            let unit = try String(contentsOfFile: path, encoding: .utf8)
            let lines = Set(unit.split(separator: "\n").map(String.init))
            #expect(lines.contains("ExecStart=\(Self.knockc) apply \(Self.ssh)"))
            #expect(lines.contains("ExecReload=\(Self.knockc) apply \(Self.ssh)"))
            #expect(lines.contains("ExecStop=/usr/sbin/nft delete table inet knockc"))
            #expect(lines.contains("Type=oneshot"))
            #expect(lines.contains("PartOf=nftables.service"))
            #expect(lines.contains { $0.hasPrefix("After=") && $0.split(separator: " ").contains { $0.hasSuffix("nftables.service") } })
            // Before any interface comes up, as a firewall's unit is; default dependencies
            // (after basic.target) would order it after the network instead.
            #expect(lines.contains("DefaultDependencies=no"))
            #expect(lines.contains("Wants=network-pre.target"))
            #expect(lines.contains { $0.hasPrefix("Before=") && $0.dropFirst("Before=".count).split(separator: " ").contains("network-pre.target") })
            #expect(!lines.contains { $0.hasPrefix("After=") && $0.contains("network") })
            #expect(!unit.contains("{{"))

            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            #expect(mode == 0o644)

            // Without --install the same unit goes to stdout, and nothing is written.
            let printed = try units(["--spec", Self.ssh, "--knockc", Self.knockc])
            #expect(printed.status == 0, "\(printed.error)")
            #expect(printed.output == unit)

            // Installing again replaces the file in place and leaves no temporary file behind.
            let again = try units(["--spec", Self.ssh, "--knockc", Self.knockc, "--install", "--directory", directory.path])
            #expect(again.status == 0, "\(again.error)")
            #expect(try contents(of: directory) == ["knockc.service"])
        }
    }

    @Test("--watcher installs knockc-watch.service, which runs knockc watch SPEC as Type=notify and restarts on failure")
    func installsTheWatcherUnit() throws {
        try withDirectory { directory in
            let result = try units(["--watcher", "--spec", Self.ssh, "--knockc", Self.knockc, "--install", "--directory", directory.path])
            #expect(result.status == 0, "\(result.error)")
            #expect(try contents(of: directory) == ["knockc-watch.service"])
            let unit = try String(contentsOf: directory.appendingPathComponent("knockc-watch.service"), encoding: .utf8)
            let lines = Set(unit.split(separator: "\n").map(String.init))
            #expect(lines.contains("ExecStart=\(Self.knockc) watch \(Self.ssh)"))
            #expect(lines.contains("Type=notify"))
            #expect(lines.contains("NotifyAccess=main"))
            #expect(lines.contains("Restart=on-failure"))
            #expect(lines.contains("After=knockc.service"))
            #expect(!unit.contains("{{"))
        }
    }

    /// A spec in `directory` with two spa sequences, horizons 6h and the default 24h, and the
    /// secret they name (which check looks at: a file of 32 bytes, mode 0600).
    func spaSpec(in directory: URL) throws -> String {
        let secret = directory.appendingPathComponent("admin.key").path
        #expect(FileManager.default.createFile(atPath: secret, contents: Data(repeating: 7, count: 32)))
        #expect(chmod(secret, 0o600) == 0)
        let spec = directory.appendingPathComponent("spa.yaml").path
        try """
            sequences:
              admin:
                open: [tcp/22]
                spa: { secret: \(secret), port: udp/62201, horizon: 6h }
              ops:
                open: [tcp/23]
                spa: { secret: \(secret), port: udp/62202 }
              ssh:
                knock: [tcp/7000, udp/9000, tcp/8000]
                open: [tcp/2222]

            """.write(toFile: spec, atomically: true, encoding: .utf8)
        return spec
    }

    @Test("with spa sequences, --install also writes knockc-refresh.service and a timer every half of the shortest horizon")
    func installsTheRefreshTimerForSpa() throws {
        try withDirectory { directory in
            let spec = try spaSpec(in: directory)
            let target = directory.appendingPathComponent("units")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            let result = try units(["--spec", spec, "--knockc", Self.knockc, "--install", "--directory", target.path])
            #expect(result.status == 0, "\(result.error)")
            #expect(try contents(of: target) == ["knockc-refresh.service", "knockc-refresh.timer", "knockc.service"])
            #expect(result.output.contains("wrote \(target.path)/knockc-refresh.timer\n"))
            #expect(result.output.contains("systemctl daemon-reload && systemctl enable --now knockc.service knockc-refresh.timer\n"))

            let service = try String(contentsOf: target.appendingPathComponent("knockc-refresh.service"), encoding: .utf8)
            let serviceLines = Set(service.split(separator: "\n").map(String.init))
            #expect(serviceLines.contains("Type=oneshot"))
            #expect(serviceLines.contains("ExecStart=\(Self.knockc) apply \(spec)"))
            #expect(serviceLines.contains("Requisite=knockc.service"))
            #expect(!service.contains("ExecStop="))

            let timer = try String(contentsOf: target.appendingPathComponent("knockc-refresh.timer"), encoding: .utf8)
            let timerLines = Set(timer.split(separator: "\n").map(String.init))
            // Half of 6h, the shorter horizon.
            #expect(timerLines.contains("OnActiveSec=10800s"))
            #expect(timerLines.contains("OnUnitActiveSec=10800s"))
            #expect(timerLines.contains("Unit=knockc-refresh.service"))
            #expect(timerLines.contains("WantedBy=timers.target"))
            for name in ["knockc-refresh.service", "knockc-refresh.timer"] {
                let mode = try #require(try FileManager.default.attributesOfItem(atPath: target.appendingPathComponent(name).path)[.posixPermissions] as? Int)
                #expect(mode == 0o644)
            }

            // Printed, it is knockc.service alone (stdout can go into a unit file), and a note names the others.
            let printed = try units(["--spec", spec, "--knockc", Self.knockc])
            #expect(printed.status == 0, "\(printed.error)")
            #expect(printed.output == (try String(contentsOf: target.appendingPathComponent("knockc.service"), encoding: .utf8)))
            #expect(printed.error.contains("--install also writes knockc-refresh.service and knockc-refresh.timer, which apply it again every 3h"))

            // The watcher's unit comes alone, spa or not.
            let watcherTarget = directory.appendingPathComponent("watcher")
            try FileManager.default.createDirectory(at: watcherTarget, withIntermediateDirectories: true)
            let watcher = try units(["--watcher", "--spec", spec, "--install", "--directory", watcherTarget.path])
            #expect(watcher.status == 0, "\(watcher.error)")
            #expect(try contents(of: watcherTarget) == ["knockc-watch.service"])
        }
    }

    @Test("without spa sequences there is no timer: only knockc.service is written and enabled")
    func noRefreshTimerWithoutSpa() throws {
        try withDirectory { directory in
            let result = try units(["--spec", Self.ssh, "--install", "--directory", directory.path])
            #expect(result.status == 0, "\(result.error)")
            #expect(try contents(of: directory) == ["knockc.service"])
            #expect(result.output.hasSuffix("systemctl daemon-reload && systemctl enable --now knockc.service\n"))
            #expect(!result.error.contains("knockc-refresh"))
        }
    }

    @Test("the unit deletes the spec's own table; a spec that does not exist yet gets the default table, with a note")
    func tableComesFromTheSpec() throws {
        try withDirectory { directory in
            let spec = directory.appendingPathComponent("edge.yaml").path
            try String(contentsOfFile: Self.ssh, encoding: .utf8)
                .replacingOccurrences(of: "table: knockc", with: "table: edge")
                .write(toFile: spec, atomically: true, encoding: .utf8)
            let named = try units(["--spec", spec])
            #expect(named.status == 0, "\(named.error)")
            #expect(named.output.contains("ExecStop=/usr/sbin/nft delete table inet edge\n"))

            let missing = directory.appendingPathComponent("not-yet.yaml").path
            let absent = try units(["--spec", missing])
            #expect(absent.status == 0, "\(absent.error)")
            #expect(absent.output.contains("ExecStart=/usr/local/bin/knockc apply \(missing)\n"))
            #expect(absent.output.contains("ExecStop=/usr/sbin/nft delete table inet knockc\n"))
            #expect(absent.error.contains("does not exist yet"))
        }
    }

    @Test("a spec with errors is refused with exit 1, and nothing is written")
    func specWithErrorsIsRefused() throws {
        try withDirectory { directory in
            let spec = directory.appendingPathComponent("bad.yaml").path
            try "sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/70000]\n"
                .write(toFile: spec, atomically: true, encoding: .utf8)
            let target = directory.appendingPathComponent("units")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            let result = try units(["--spec", spec, "--install", "--directory", target.path])
            #expect(result.status == 1)
            #expect(result.error.contains("\(spec):4:12: error: port 70000 is out of range"))
            #expect(try contents(of: target).isEmpty)
        }
    }

    @Test("paths that would change the unit are refused, and nothing is written", arguments: [
        ["--spec", "/etc/knockc/knockc.yaml\nExecStartPre=/bin/sh -c 'echo owned'"],
        ["--spec", "/etc/knockc/%n.yaml"],
        ["--spec", "knockc.yaml"],
        ["--spec", "/etc/knockc/my spec.yaml"],
        ["--spec", "/etc/knockc/$HOME.yaml"],
        ["--spec", "/etc/knockc/\"knockc\".yaml"],
        ["--knockc", "bin/knockc"],
        ["--knockc", "/usr/local/bin/knockc\tx"],
        ["--knockc", "/usr/local/bin/%i"],
    ])
    func unsafePathsAreRefused(_ arguments: [String]) throws {
        try withDirectory { directory in
            let result = try units(arguments + ["--install", "--directory", directory.path])
            #expect(result.status != 0)
            #expect(result.status == 64, "\(result.error)")
            #expect(try contents(of: directory).isEmpty)
        }
    }

    @Test("systemd-analyze verify accepts the installed unit",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze"))
    func systemdAcceptsTheUnit() throws {
        try withDirectory { directory in
            let result = try units(["--spec", Self.ssh, "--knockc", Self.knockc, "--install", "--directory", directory.path])
            #expect(result.status == 0, "\(result.error)")
            // Offline: verify only parses the file and checks that the commands it runs exist.
            let verify = try runProgram(["/usr/bin/systemd-analyze", "verify", directory.appendingPathComponent("knockc.service").path],
                                        allowFailure: true)
            #expect(verify.status == 0, "\(verify.output)\(verify.error)")
            #expect(verify.error.isEmpty, "\(verify.error)")
        }
    }

    @Test("systemd-analyze verify accepts the installed refresh service and timer",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze"))
    func systemdAcceptsTheRefreshUnits() throws {
        try withDirectory { directory in
            let spec = try spaSpec(in: directory)
            let target = directory.appendingPathComponent("units")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            let result = try units(["--spec", spec, "--knockc", Self.knockc, "--install", "--directory", target.path])
            #expect(result.status == 0, "\(result.error)")
            let files = ["knockc.service", "knockc-refresh.service", "knockc-refresh.timer"].map { target.appendingPathComponent($0).path }
            let verify = try runProgram(["/usr/bin/systemd-analyze", "verify"] + files, allowFailure: true)
            #expect(verify.status == 0, "\(verify.output)\(verify.error)")
            #expect(verify.error.isEmpty, "\(verify.error)")
        }
    }
}
