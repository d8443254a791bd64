import Foundation
@testable import KnockCore
import Testing

/// Stage 1's YAML: aliases refused where they stand, duplicate keys with both places, and
/// every answer in time linear in the text, whatever the text holds.
struct YAMLComposerTests {
    static func findings(_ yaml: String) -> [(Diagnostic.Message, line: Int, column: Int)] {
        Pipeline.check(yaml, file: "spec.yaml").1.map { ($0.message, $0.location.line, $0.location.column) }
    }

    static let valid = "sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n"

    /// The spec of issue 10, item 7: a plain scalar with an apostrophe (`it's`) hid the
    /// aliases after it from the old text scan, and nested aliases used as a key made the
    /// duplicate-key check expand them: with three aliases a level, 14 levels (24 lines) took
    /// 20 s and 33 levels (41 lines) did not finish.
    static func apostropheBomb(lines: Int, levels: Int) -> String {
        var out = ["sequences:", "  ssh:", "    knock: [tcp/7000, udp/9000, tcp/8000]", "    open: [tcp/22]", "note: it's a test"]
        out.append("a0: &a0 [it's, x, x]")
        for level in 1...levels {
            out.append("a\(level): &a\(level) [it's, " + Array(repeating: "*a\(level - 1)", count: 3).joined(separator: ", ") + "]")
        }
        out += ["? [it's, *a\(levels)]", ": 1"]
        while out.count < lines { out.insert("    # filler", at: 4) }
        return out.joined(separator: "\n") + "\n"
    }

    @Test("the 24- and 41-line specs of the alias hang are refused at their first alias, at once",
          arguments: [(24, 14), (41, 33)])
    func apostropheBombIsRefusedFast(_ lines: Int, _ levels: Int) {
        let text = Self.apostropheBomb(lines: lines, levels: levels)
        #expect(text.split(separator: "\n").count == lines)
        let started = ContinuousClock.now
        let found = Self.findings(text)
        let elapsed = ContinuousClock.now - started
        print("\(lines)-line alias spec answered in \(elapsed)")
        // `a1: &a1 [it's, *a0, ...]` is the first line with an alias; its `*` is column 16.
        let firstAlias = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("*") }!
        #expect(found.map(\.0) == [.aliasNotSupported])
        #expect(found.first?.line == firstAlias + 1)
        #expect(found.first?.column == 16)
        // Expanded, either spec takes 20 s or more; refused at the alias, milliseconds.
        #expect(elapsed < .seconds(5))
    }

    @Test("an alias is refused at its own '*', wherever it stands and whatever quotes come before it",
          arguments: [
              ("note: it's\nx: *a\n", 2, 4),
              ("a: &a 1\nb: [it's, *a]\n", 2, 11),
              ("a: &a 1\nb: \"it's\"\nc: *a\n", 3, 4),
              ("a: &a x\n? *a\n: 1\n", 2, 3),
              ("a: &a x\n{*a : 1}: 2\n", 2, 2),
              ("a: &a x\nb:\n  - it's\n  - *a\n", 4, 5),
              ("# it's *a\nx: \"*a\"\ny: '*a'\nz: a*b\nw: it's *a\nv: *a\n", 6, 4),
              ("x: {k: 'it''s', v: *undefined}\n", 1, 20),
          ])
    func aliasIsRefusedWhereItStands(_ yaml: String, _ line: Int, _ column: Int) {
        let found = Self.findings(yaml)
        #expect(found.map(\.0) == [.aliasNotSupported], "\(yaml)")
        #expect(found.first.map { [$0.line, $0.column] } == [line, column], "\(yaml)")
    }

    @Test("anchors alone are harmless: the spec reads as if they were not there")
    func anchorsAlone() throws {
        let yaml = "table: &t fw\nsequences: &s\n  ssh: &q\n    knock: &k [&one tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n"
        let spec = try #require(Pipeline.check(yaml, file: "spec.yaml").0)
        #expect(spec.tableName == "fw")
        #expect(spec.sequences.map(\.knocks) == [[.tcp(7000), .udp(9000), .tcp(8000)]])
    }

    @Test("a duplicate key points at the repeat, with a note at the first, in block and flow style")
    func duplicateKeys() {
        let cases: [(String, key: String, at: [Int], first: [Int])] = [
            (Self.valid + "  ssh:\n    knock: [tcp/1, udp/3, tcp/2]\n    open: [tcp/23]\n", "ssh", [5, 3], [2, 3]),
            (Self.valid + "table: a\ntable: b\n", "table", [6, 1], [5, 1]),
            ("sequences:\n  ssh: {knock: [tcp/1, udp/3, tcp/2], open: [tcp/22], open: [tcp/23]}\n", "open", [2, 55], [2, 39]),
            ("sequences:\n  'ssh':\n    knock: [tcp/1, udp/3, tcp/2]\n    open: [tcp/22]\n  \"ssh\": {}\n", "ssh", [5, 3], [2, 3]),
            ("sequences: {a: {knock: [tcp/1, udp/3, tcp/2], open: [tcp/22]}, a: {}}\n", "a", [1, 64], [1, 13]),
        ]
        for (yaml, key, at, first) in cases {
            let diagnostics = Pipeline.check(yaml, file: "spec.yaml").1
            #expect(diagnostics.map(\.message) == [.duplicateKey(key)], "\(yaml)")
            #expect(diagnostics.first.map { [$0.location.line, $0.location.column] } == at, "\(yaml)")
            #expect(diagnostics.first?.notes.map(\.message) == [.firstDefinedHere], "\(yaml)")
            #expect(diagnostics.first?.notes.first.map { [$0.location.line, $0.location.column] } == first, "\(yaml)")
        }
        // The same text at another level, or in another mapping, is no repeat.
        #expect(!Pipeline.check("sequences:\n  a: {knock: [tcp/1, udp/3, tcp/2], open: [tcp/22]}\n  b: {knock: [tcp/4, udp/3, tcp/2], open: [tcp/22]}\n",
                                file: "spec.yaml").1.hasErrors)
    }

    @Test("what libyaml cannot read is reported where it stopped, in its own words")
    func syntaxErrors() {
        let unclosed = Self.findings("sequences:\n  ssh: [\n")
        #expect(unclosed.count == 1)
        #expect(unclosed.first?.0.text.hasPrefix("invalid YAML: ") == true)
        #expect(unclosed.first?.line == 3)
        // A reader error has only a byte offset: its place is counted from it, line and
        // character (not byte) on the line. Yams put these at 1:1 with a snippet in the text.
        let control = Self.findings("sequences:\n  sé\u{1}h: {}\n")
        #expect(control.map(\.0) == [.invalidYAML("control characters are not allowed")])
        #expect(control.first.map { [$0.line, $0.column] } == [2, 5])
        let second = Self.findings(Self.valid + "---\n" + Self.valid)
        #expect(second.map(\.0) == [.invalidYAML("but found another document")])
        #expect(second.first.map { [$0.line, $0.column] } == [5, 1])
    }

    @Test("lists and mappings nested past the bound are refused at the first one too deep")
    func nesting() {
        let depth = YAMLComposer.maxDepth
        let deep = "sequences: " + String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1) + "\n"
        let found = Self.findings(deep)
        #expect(found.map(\.0) == [.nestedTooDeep])
        // The top mapping is level 1, so the bound is passed at the `depth`-th bracket.
        #expect(found.first.map { [$0.line, $0.column] } == [1, 12 + depth - 1])
        let allowed = "sequences: " + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "\n"
        #expect(Self.findings(allowed).map(\.0) == [.expectedMapping("sequences", found: "a list")])
    }

    /// Specs of 1 MiB in the shapes that cost a YAML reader most. Each must answer well
    /// under 1 s in a release build; the bound here is loose for a loaded debug run, and the
    /// figures are printed.
    static func oneMiB(_ shape: String) -> String {
        let size = 1 << 20
        var text = ""
        text.reserveCapacity(size + 4096)
        switch shape {
        case "valid":
            text = "table: knockc\nsequences:\n"
            var index = 0
            while text.utf8.count < size {
                let base = 1000 + (index % 18_000) * 3
                text += "  s\(index):\n    knock: [tcp/\(base + 1), udp/\(base), tcp/\(base + 2)]\n    open: [tcp/22]\n"
                index += 1
            }
        case "anchors":
            text = Self.valid + "x: &a0 ["
            var index = 1
            while text.utf8.count < size { text += "&a\(index) it's, "; index += 1 }
            text += "end]\n"
        case "aliases after apostrophes":
            text = Self.valid + "x: &a [it's, x]\n"
            while text.utf8.count < size { text += "? [it's, *a, *a, *a, *a, *a, *a, *a, *a]\n: it's\n" }
        case "keys":
            text = "x:\n"
            var index = 0
            while text.utf8.count < size { text += "  'k\(index)': it's\n"; index += 1 }
            text += Self.valid
        case "quotes":
            text = Self.valid + "note: \""
            while text.utf8.count < size { text += "it's \\\"quoted\\\" 'twice' " }
            text += "\"\n"
        case "nesting":
            text = "sequences: " + String(repeating: "[", count: size)
        default:
            text = "sequences:\n" + String(repeating: "  - it's\n", count: size / 9)
        }
        return text
    }

    @Test("check answers a 1 MiB spec of any shape quickly",
          arguments: ["valid", "anchors", "aliases after apostrophes", "keys", "quotes", "nesting", "list"])
    func oneMiBSpec(_ shape: String) {
        let text = Self.oneMiB(shape)
        #expect(text.utf8.count >= 1 << 20)
        let started = ContinuousClock.now
        let (spec, diagnostics) = Pipeline.check(text, file: "big.yaml")
        let elapsed = ContinuousClock.now - started
        print("1 MiB spec (\(shape)): \(text.utf8.count) bytes checked in \(elapsed), \(diagnostics.count) findings")
        #expect(elapsed < .seconds(5), "\(shape): \(elapsed)")
        if shape == "valid" {
            #expect(spec != nil && !diagnostics.hasErrors, "\(diagnostics.prefix(3))")
        } else {
            #expect(spec == nil && diagnostics.hasErrors)
        }
    }
}
