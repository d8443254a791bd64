import ArgumentParser
import KnockCore

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate specs, for CI and editors.",
        discussion: """
            Prints each problem as FILE:LINE:COL: error|warning: MESSAGE on stderr. Exits 0 when \
            every spec is valid (warnings allowed) and 1 when any has an error. Touches no kernel.
            """
    )

    @Argument(help: "One or more knock specs (YAML).", completion: .file(extensions: ["yaml", "yml"]))
    var specs: [String]

    func run() throws {
        var failed = false
        for path in specs {
            let (spec, diagnostics) = Pipeline.check(file: path)
            Console.report(diagnostics)
            if spec == nil { failed = true }
        }
        if failed { throw ExitCodes.specErrors }
    }
}
