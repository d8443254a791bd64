import Foundation
@testable import KnockCore
import Testing

/// The shipped examples are what people copy: they must check clean, without warnings.
struct ExamplesTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples")

    static var examples: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test("each example checks without errors or warnings", arguments: examples)
    func exampleIsClean(_ name: String) {
        let (spec, diagnostics) = Pipeline.check(file: Self.folder.appendingPathComponent(name).path)
        #expect(spec != nil)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
    }

    @Test("the spec shown in the README checks clean")
    func readmeSpec() throws {
        let readme = try String(contentsOf: Self.folder.deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## The spec"))
        let yaml = try #require(readme[section.upperBound...].components(separatedBy: "```yaml").dropFirst().first?
            .components(separatedBy: "```").first)
        let (spec, diagnostics) = Pipeline.check(yaml, file: "README.md")
        #expect(spec != nil)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
    }

    @Test func thereAreExamples() {
        #expect(Self.examples.contains("ssh.yaml"))
        #expect(Self.examples.count >= 2)
    }

    @Test("every template renders with the values its users pass")
    func templatesRender() throws {
        let ruleset = try Template.named("ruleset.nft").render(["table": "t", "definition": "table inet t {\n}"])
        #expect(ruleset.contains("delete table inet t"))
        let unit = try Template.named("knockc.service").render(["knockc": "/usr/local/bin/knockc", "spec": "/etc/knockc/knockc.yaml", "table": "knockc"])
        #expect(unit.contains("ExecStart=/usr/local/bin/knockc apply /etc/knockc/knockc.yaml"))
        #expect(throws: Template.RenderError.missingValue(template: "ruleset.nft", placeholder: "definition")) {
            try Template.named("ruleset.nft").render(["table": "t"])
        }
    }
}
