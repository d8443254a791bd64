import ArgumentParser
import Foundation
import Glibc
import KnockCore
import KnockKernel

struct UnitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "units",
        abstract: "Print or install the systemd unit that applies the spec at boot.",
        discussion: """
            Renders knockc.service from templates/knockc.service: a oneshot unit that runs \
            `knockc apply SPEC` at boot, ordered after nftables.service, and again whenever \
            nftables.service restarts or reloads (its `flush ruleset` would otherwise drop the \
            table). Stopping the unit deletes the table. Prints the unit on stdout; with \
            --install, writes it to DIRECTORY/knockc.service (mode 0644, replaced atomically) \
            and prints the systemctl commands to run next.

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

    @Option(help: "Where --install writes knockc.service (default: \(Self.defaultDirectory)).", completion: .directory)
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
        let unit = SystemdUnit(watcher ? .watcher : .apply, specPath: spec, knockcPath: knockc, tableName: try tableName())
        let text: String
        do {
            text = try unit.text()
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCode(1)
        }
        guard install else {
            print(text, terminator: "")
            return
        }
        let directory = self.directory ?? Self.defaultDirectory
        let destination = URL(fileURLWithPath: directory).appendingPathComponent(unit.fileName).path
        if (try? String(contentsOfFile: destination, encoding: .utf8)) == text {
            print("\(destination) is already up to date")
        } else {
            do {
                // systemd never reads half a unit; 0644 whatever the umask.
                try AtomicFile.write(text, to: destination, mode: 0o644)
            } catch {
                Console.error("knockc: could not write \(destination): \(String(cString: strerror(error.errno)))")
                throw ExitCode(1)
            }
            print("wrote \(destination)")
        }
        if !FileManager.default.isExecutableFile(atPath: knockc) {
            print("next: install knockc as \(knockc)")
        }
        if !FileManager.default.fileExists(atPath: spec) {
            print("next: put the spec at \(spec) and run `knockc check \(spec)`")
        }
        print("next: systemctl daemon-reload && systemctl enable --now \(unit.fileName)")
    }

    /// The table the unit's ExecStop deletes: the spec's, or the default while there is no spec.
    private func tableName() throws -> String {
        guard FileManager.default.fileExists(atPath: spec) else {
            Console.error("knockc: note: \(spec) does not exist yet; the unit uses the default table, inet \(KnockSpec.defaultTableName)")
            return KnockSpec.defaultTableName
        }
        let (checked, diagnostics) = Pipeline.check(file: spec)
        Console.report(diagnostics)
        guard let checked else {
            Console.error("knockc: \(spec) has errors; no unit was written")
            throw ExitCodes.specErrors
        }
        return checked.tableName
    }
}
