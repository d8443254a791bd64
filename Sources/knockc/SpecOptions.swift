import ArgumentParser
import Foundation
import KnockCore
import KnockKernel

/// The spec argument that `compile`, `apply` and others share.
struct SpecOptions: ParsableArguments {
    @Argument(help: "The knock spec (YAML).", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    /// Checks the spec, prints its diagnostics to stderr, and stops with exit code 1 on errors.
    func load() throws -> KnockSpec {
        try loadWithText().spec
    }

    /// As `load`, with the exact text that was checked.
    func loadWithText() throws -> (spec: KnockSpec, text: String) {
        let (text, spec, diagnostics) = Pipeline.checkReturningText(file: self.spec)
        Console.report(diagnostics)
        guard let spec, let text else { throw ExitCodes.specErrors }
        return (spec, text)
    }
}

/// Where knockc writes: results on stdout, diagnostics and failures on stderr.
enum Console {
    static func report(_ diagnostics: [Diagnostic]) {
        for diagnostic in diagnostics { error(diagnostic.description) }
    }

    /// Written with write(2): a stderr whose reader has gone (EPIPE, with SIGPIPE ignored)
    /// loses the line rather than trapping, as FileHandle's write would.
    static func error(_ text: String) {
        _ = Descriptor.writeAll(STDERR_FILENO, text + "\n")
    }
}
