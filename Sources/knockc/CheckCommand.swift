import ArgumentParser
import Foundation
import KnockCore
import KnockKernel

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate specs, for CI and editors.",
        discussion: """
            Prints each problem as FILE:LINE:COL: error|warning: MESSAGE on stderr (with \
            --format json, one JSON document on stdout instead; with --format github, GitHub \
            Actions workflow commands on stdout, ::error file=F,line=L,col=C::MESSAGE, which \
            annotate a pull request's lines). Exits 0 when every spec is valid (warnings \
            allowed) and 1 when any has an error.

            With --kernel, each valid spec is also compiled and loaded into a throwaway user and \
            network namespace, so the running kernel itself accepts or refuses it. No root is \
            needed and the host's ruleset is never touched. When that namespace cannot be made \
            (user namespaces disabled, a limit reached), the spec is reported as not checked, \
            with unshare's reason, and the exit code is 1. A spec that forwards ports \
            (forward:) on a host where forwarding is off (net.ipv4.ip_forward or \
            net.ipv6.conf.all.forwarding is 0) gets a warning on stderr naming the sysctl to \
            set; the exit code does not change.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, github
    }

    @Argument(help: "One or more knock specs (YAML).", completion: .file(extensions: ["yaml", "yml"]))
    var specs: [String]

    @Flag(help: "Also load each compiled spec into the running kernel, in a throwaway namespace.")
    var kernel = false

    @Option(help: "text: diagnostics on stderr; json: a machine-readable report on stdout; github: GitHub Actions annotations on stdout.")
    var format: Format = .text

    func run() throws {
        var reports: [SpecReport] = []
        for path in specs {
            var (spec, diagnostics) = Pipeline.check(file: path)
            var kernelError: String?
            var namespaceError: String?
            // The host's switches, read here: the throwaway namespace has its own, all off.
            let hostWarnings = kernel ? spec.map { ForwardingSysctl.warnings(for: $0) } ?? [] : []
            if kernel, spec != nil {
                do {
                    _ = try Knockc.throwawayNamespace.load(specPath: path)
                } catch {
                    switch error {
                    case .setup(let failure): namespaceError = failure.description
                    case .refused(let errors): kernelError = errors.trimmingCharacters(in: .whitespacesAndNewlines)
                    case .cannotRun: throw error
                    }
                    spec = nil
                }
            }
            if format == .text { Console.report(diagnostics) }
            if format == .github {
                for diagnostic in diagnostics { print(GitHubAnnotation.command(diagnostic)) }
                if let kernelError { print(GitHubAnnotation.command("error", file: path, message: "the kernel refused the compiled ruleset:\n" + kernelError)) }
                if let namespaceError { print(GitHubAnnotation.command("error", file: path, message: "not checked against the kernel: " + namespaceError)) }
            }
            // On stderr in every format: a warning about this host, not about the spec.
            for warning in hostWarnings { Console.error("\(path): warning: \(warning)") }
            if format == .text {
                if let kernelError { Console.error("\(path): error: the kernel refused the compiled ruleset:\n\(kernelError)") }
                if let namespaceError { Console.error("\(path): error: not checked against the kernel: \(namespaceError)") }
            }
            reports.append(SpecReport(file: path, valid: spec != nil, diagnostics: diagnostics.map(DiagnosticReport.init),
                                      kernelError: kernelError, namespaceError: namespaceError))
        }
        if format == .json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(CheckReport(specs: reports)), as: UTF8.self))
        }
        if reports.contains(where: { !$0.valid }) { throw ExitCodes.specErrors }
    }
}

/// `check --format json`: stable keys for CI tools.
struct CheckReport: Encodable {
    var specs: [SpecReport]
}

struct SpecReport: Encodable {
    var file: String
    var valid: Bool
    var diagnostics: [DiagnosticReport]
    /// libnftables' text when `--kernel` was given and the kernel refused the ruleset.
    var kernelError: String?
    /// Why `--kernel` could not load the ruleset at all (the throwaway namespace could not be
    /// made); the spec then counts as not valid, since it was not checked.
    var namespaceError: String?

    enum CodingKeys: String, CodingKey {
        case file, valid, diagnostics
        case kernelError = "kernel_error"
        case namespaceError = "namespace_error"
    }
}

struct DiagnosticReport: Encodable {
    var file: String
    var line: Int
    var column: Int
    var severity: String
    var message: String
    var notes: [DiagnosticReport]

    init(_ diagnostic: Diagnostic) {
        file = diagnostic.location.file
        line = diagnostic.location.line
        column = diagnostic.location.column
        severity = diagnostic.severity.rawValue
        message = diagnostic.message.text
        notes = diagnostic.notes.map(DiagnosticReport.init)
    }
}
