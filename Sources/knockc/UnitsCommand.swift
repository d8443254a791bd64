import ArgumentParser
import Foundation
import Glibc
import KnockCore
import KnockKernel

struct UnitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "units",
        abstract: "Print or install the systemd unit that applies the spec at boot (and, with spa or rotate, a timer that re-applies it).",
        discussion: """
            Renders knockc.service from templates/knockc.service: a oneshot unit that runs \
            `knockc apply SPEC` at boot, ordered after nftables.service, and again whenever \
            nftables.service restarts or reloads (its `flush ruleset` would otherwise drop the \
            table). Stopping the unit deletes the table. Prints the unit on stdout; with \
            --install, writes it to DIRECTORY/knockc.service (mode 0644, replaced atomically) \
            and prints the systemctl commands to run next.

            When the spec has spa or rotate sequences, whose tokens and knocks the table holds \
            only `horizon` ahead, --install also writes knockc-refresh.service, a oneshot unit that runs \
            `knockc apply SPEC` again (in place: grants, knocks in progress and used tokens \
            stay; it never deletes the table, and runs only while knockc.service is active), \
            and knockc-refresh.timer, which starts it every half of the shortest horizon, so \
            that one failed run still leaves time. Enable both: `systemctl enable --now \
            knockc.service knockc-refresh.timer`. A spec without spa or rotate gets no timer; without \
            --install only knockc.service is printed, and a note names the others. Run \
            `knockc units --install` again after changing a horizon.

            The spec is checked first when it exists, and the unit deletes the table the spec \
            names; a spec that does not exist yet gets the default table, knockc. Both paths \
            are written into the unit, so they must be absolute and free of whitespace, \
            quotes, backslashes, '$' and '%' (which systemd would expand).

            With --watcher, the same for knockc-watch.service instead: it runs `knockc watch \
            SPEC` (events, and the spec's hooks) as Type=notify, restarts it on failure, and \
            starts after knockc.service.

            Exit codes: 0 the unit was printed or installed, 1 the spec has errors or the unit \
            could not be written, 64 a path is not usable in a unit.
            """
    )

    static let defaultSpec = "/etc/knockc/knockc.yaml"
    static let defaultKnockc = "/usr/local/bin/knockc"
    static let defaultDirectory = "/etc/systemd/system"

    @Flag(help: "The watcher's unit, knockc-watch.service, instead of the boot unit.")
    var watcher = false

    @Option(help: "The spec the unit applies.", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String = Self.defaultSpec

    @Option(help: "The knockc executable the unit runs.", completion: .file())
    var knockc: String = Self.defaultKnockc

    @Flag(help: "Write the unit into --directory instead of printing it.")
    var install = false

    @Option(help: "Where --install writes the units (default: \(Self.defaultDirectory)).", completion: .directory)
    var directory: String?

    func validate() throws {
        if directory != nil, !install {
            throw ValidationError("--directory only applies with --install.")
        }
        for (path, option) in [(spec, "--spec"), (knockc, "--knockc")] {
            do { try SystemdUnit.checkPath(path) } catch { throw ValidationError("\(option) \(error)") }
        }
        if let directory {
            guard directory.hasPrefix("/") else { throw ValidationError("--directory '\(directory)' is not an absolute path.") }
        }
    }

    func run() throws {
        let spec = try checkedSpec()
        let tableName = spec?.tableName ?? KnockSpec.defaultTableName
        let units = watcher
            ? [SystemdUnit(.watcher, specPath: self.spec, knockcPath: knockc, tableName: tableName)]
            : SystemdUnit.applyUnits(specPath: self.spec, knockcPath: knockc, tableName: tableName,
                                     refreshInterval: spec?.refreshInterval)
        let texts: [String]
        do {
            texts = try units.map { try $0.text() }
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCode(1)
        }
        let refreshUnits = units.dropFirst().map(\.fileName)
        guard install else {
            // One unit, so that stdout can go into a unit file as it is.
            print(texts[0], terminator: "")
            if !refreshUnits.isEmpty, let interval = spec?.refreshInterval {
                Console.error("knockc: note: \(self.spec) has spa or rotate sequences; --install also writes "
                    + "\(refreshUnits.joined(separator: " and ")), which apply it again every \(interval)")
            }
            return
        }
        let directory = self.directory ?? Self.defaultDirectory
        for (unit, text) in zip(units, texts) {
            try write(text, to: URL(fileURLWithPath: directory).appendingPathComponent(unit.fileName).path)
        }
        if !FileManager.default.isExecutableFile(atPath: knockc) {
            print("next: install knockc as \(knockc)")
        }
        if !FileManager.default.fileExists(atPath: self.spec) {
            print("next: put the spec at \(self.spec) and run `knockc check \(self.spec)`")
        }
        // The timer starts knockc-refresh.service; nothing else should.
        let enabled = units.filter { $0.kind != .refresh }.map(\.fileName)
        print("next: systemctl daemon-reload && systemctl enable --now \(enabled.joined(separator: " "))")
    }

    /// Writes one unit file, 0644 whatever the umask and replaced atomically so that systemd
    /// never reads half a unit; leaves a file that already says the same alone.
    private func write(_ text: String, to destination: String) throws {
        if (try? String(contentsOfFile: destination, encoding: .utf8)) == text {
            print("\(destination) is already up to date")
            return
        }
        do {
            try AtomicFile.write(text, to: destination, mode: 0o644)
        } catch {
            Console.error("knockc: could not write \(destination): \(String(cString: strerror(error.errno)))")
            throw ExitCode(1)
        }
        print("wrote \(destination)")
    }

    /// The checked spec, whose table the apply unit's ExecStop deletes and whose horizons set
    /// the refresh timer; nil while there is no spec, and then the default table and no timer.
    private func checkedSpec() throws -> KnockSpec? {
        guard FileManager.default.fileExists(atPath: spec) else {
            Console.error("knockc: note: \(spec) does not exist yet; the unit uses the default table, inet \(KnockSpec.defaultTableName)"
                + (watcher ? "" : ", and no refresh timer is written (run this again once the spec exists, if it has spa or rotate sequences)"))
            return nil
        }
        let (checked, diagnostics) = Pipeline.check(file: spec)
        Console.report(diagnostics)
        guard let checked else {
            Console.error("knockc: \(spec) has errors; no unit was written")
            throw ExitCodes.specErrors
        }
        return checked
    }
}
