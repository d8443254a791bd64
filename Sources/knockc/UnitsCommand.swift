import ArgumentParser
import Foundation
import Glibc
import KnockCore

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
    static let unitName = "knockc.service"

    @Flag(help: "The watcher's unit, knockc-watch.service, instead of the boot unit.")
    var watcher = false

    /// The unit this run renders.
    var unitName: String { watcher ? "knockc-watch.service" : Self.unitName }

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
        try Self.checkUnitPath(spec, what: "--spec")
        try Self.checkUnitPath(knockc, what: "--knockc")
        if let directory {
            guard directory.hasPrefix("/") else { throw ValidationError("--directory '\(directory)' is not an absolute path.") }
        }
    }

    /// A path that goes into ExecStart= verbatim. systemd splits command lines at whitespace,
    /// unquotes quotes, unescapes backslashes, expands `$VAR` and `%` specifiers, and a
    /// newline would start a directive of its own: refuse all of them rather than escape.
    static func checkUnitPath(_ path: String, what option: String) throws {
        guard path.hasPrefix("/") else {
            throw ValidationError("\(option) '\(path)' is not an absolute path; systemd needs one.")
        }
        let forbidden: Set<Character> = ["\"", "'", "\\", "$", "%"]
        if let bad = path.first(where: { $0.isWhitespace || $0.isNewline || forbidden.contains($0)
                || $0.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) }) {
            throw ValidationError("\(option) \(String(reflecting: path)) contains \(String(reflecting: String(bad))), which a systemd unit would not keep as it is.")
        }
    }

    func run() throws {
        let table = try tableName()
        let unit: String
        do {
            unit = watcher
                ? try Template.named(unitName).render(["knockc": knockc, "spec": spec])
                : try Template.named(unitName).render(["knockc": knockc, "spec": spec, "table": table])
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCode(1)
        }
        guard install else {
            print(unit, terminator: "")
            return
        }
        let directory = self.directory ?? Self.defaultDirectory
        let destination = URL(fileURLWithPath: directory).appendingPathComponent(unitName).path
        if (try? String(contentsOfFile: destination, encoding: .utf8)) == unit {
            print("\(destination) is already up to date")
        } else {
            do {
                try Self.writeAtomically(unit, to: destination)
            } catch {
                Console.error("knockc: could not write \(destination): \(error)")
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
        print("next: systemctl daemon-reload && systemctl enable --now \(unitName)")
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

    /// Writes a temporary file beside the destination, then renames it over the destination,
    /// so systemd never reads half a unit. The mode is 0644 whatever the umask.
    static func writeAtomically(_ text: String, to path: String) throws {
        let temporary = URL(fileURLWithPath: path).deletingLastPathComponent()
            .appendingPathComponent(".\(unitName).\(getpid()).tmp").path
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw POSIXFailure(call: "open", path: temporary) }
        var failure: POSIXFailure?
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count, failure == nil {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno != EINTR { failure = POSIXFailure(call: "write", path: temporary) }
            } else {
                written += count
            }
        }
        if failure == nil, fchmod(descriptor, 0o644) != 0 { failure = POSIXFailure(call: "fchmod", path: temporary) }
        if failure == nil, fsync(descriptor) != 0 { failure = POSIXFailure(call: "fsync", path: temporary) }
        close(descriptor)
        if failure == nil, rename(temporary, path) != 0 { failure = POSIXFailure(call: "rename", path: path) }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }

    struct POSIXFailure: Error, CustomStringConvertible {
        var description: String
        init(call: String, path: String) {
            description = "\(call) \(path): \(String(cString: strerror(errno)))"
        }
    }
}
