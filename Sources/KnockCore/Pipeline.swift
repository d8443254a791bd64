import Foundation

/// The compiler, stage by stage: `render(lower(validate(parse(text))))`.
public enum Pipeline {
    /// Parses and validates; the spec is nil when any error was found.
    public static func check(_ text: String, file: String) -> (KnockSpec?, [Diagnostic]) {
        let (parsed, parseDiagnostics) = SpecParser.parse(text, file: file)
        guard let parsed else { return (nil, parseDiagnostics) }
        let (spec, validationDiagnostics) = SpecValidator.validate(parsed)
        let diagnostics = (parseDiagnostics + validationDiagnostics).sortedByLocation()
        return (diagnostics.hasErrors ? nil : spec, diagnostics)
    }

    /// Reads (through `SpecFile`) and checks a spec file; a file that cannot be read is one
    /// diagnostic that says why.
    public static func check(file path: String) -> (KnockSpec?, [Diagnostic]) {
        let (_, spec, diagnostics) = checkReturningText(file: path)
        return (spec, diagnostics)
    }

    /// As `check(file:)`, with the text that was checked, for a caller that must keep exactly
    /// that text (apply records it; reading the file again could read another).
    public static func checkReturningText(file path: String) -> (text: String?, spec: KnockSpec?, diagnostics: [Diagnostic]) {
        do throws(SpecFile.Problem) {
            let text = try SpecFile.read(path)
            let (spec, diagnostics) = check(text, file: path)
            return (text, spec, diagnostics)
        } catch {
            let line = if case .notUTF8(_, let line, _) = error { line } else { 1 }
            return (nil, nil, [Diagnostic(.unreadable(path, error), at: SourceLocation(file: path, line: line, column: 1))])
        }
    }

    /// The spec as one nft script that replaces knockc's table in a single transaction: what
    /// `compile` prints. `apply` changes a live table in place instead (`ApplyPlan`).
    public static func nftScript(for spec: KnockSpec) -> String {
        nftScript(for: RulesetLowering.lower(spec))
    }

    public static func nftScript(for ruleset: RulesetIR) -> String {
        do {
            return try Template.named("ruleset.nft").render([
                "table": ruleset.table.name,
                "definition": NftTextRenderer.render(ruleset.table),
            ])
        } catch {
            // The template ships inside the binary and tests render it: reaching this is a bug.
            preconditionFailure("\(error)")
        }
    }

    /// The same transaction as `nftScript(for:)`, in the JSON that libnftables reads.
    public static func nftJSON(for ruleset: RulesetIR) throws(NftJSONRenderer.Unrepresentable) -> String {
        try NftJSONRenderer.render(ruleset.table)
    }
}
