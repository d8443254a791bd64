import Foundation
@testable import KnockCore
@testable import KnockTestSupport
import Testing

/// No spec value can carry nft syntax into the compiled table. Every place a spec holds text
/// gets values with `;`, braces, newlines, quotes, `#`, `$`, backslashes, NUL and Unicode
/// lookalikes: `check` must refuse each with an error on that value's line, and nothing of
/// it may reach the nft text. The only free text in the output, the comments, is built from
/// validated names, which the longest and oddest valid names show.
struct InjectionTests {
    /// Where a spec holds text, as a template: `<V>` is the value, written double-quoted.
    struct Place: CustomStringConvertible, Sendable {
        var description: String
        /// The spec, with `<V>` where the value goes; the value's line is the one holding it.
        var template: String
        /// The valid value that payloads are put around.
        var valid: String
    }

    static let places: [Place] = [
        Place(description: "table", template: "table: <V>\n" + sequence(), valid: "knockc"),
        Place(description: "sequence name", template: "sequences:\n  <V>:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [tcp/22]\n", valid: "ssh"),
        Place(description: "top-level allow", template: "allow: [<V>]\n" + sequence(), valid: "192.0.2.1"),
        Place(description: "top-level allow, IPv6", template: "allow: [<V>]\n" + sequence(), valid: "2001:db8::1"),
        Place(description: "top-level deny", template: "deny: [<V>]\n" + sequence(), valid: "203.0.113.0/24"),
        Place(description: "sequence allow", template: sequence(extra: "    allow: [<V>]\n"), valid: "198.51.100.7"),
        Place(description: "sequence deny", template: sequence(extra: "    deny: [<V>]\n"), valid: "2001:db8::/48"),
        Place(description: "from", template: sequence(extra: "    from: [<V>]\n"), valid: "192.0.2.0/24"),
        Place(description: "knock", template: "sequences:\n  ssh:\n    open: [tcp/22]\n    knock: [tcp/7000, <V>, tcp/8000]\n", valid: "udp/9000"),
        Place(description: "echo knock", template: "sequences:\n  ssh:\n    open: [tcp/22]\n    knock: [tcp/7000, <V>, tcp/8000]\n", valid: "icmp/100"),
        Place(description: "open", template: sequence(open: "<V>"), valid: "tcp/22"),
        Place(description: "close", template: sequence(extra: "    close: [udp/9000, <V>]\n"), valid: "tcp/6000"),
        Place(description: "step_timeout", template: sequence(extra: "    step_timeout: <V>\n"), valid: "3s"),
        Place(description: "open_for", template: sequence(extra: "    open_for: <V>\n"), valid: "1h"),
        Place(description: "defaults", template: "defaults:\n  step_timeout: <V>\n" + sequence(), valid: "1500ms"),
        Place(description: "wrong_knocks", template: "limits:\n  wrong_knocks: <V>\n" + sequence(), valid: "5/minute"),
        Place(description: "ban_for", template: "limits:\n  ban_for: <V>\n" + sequence(), valid: "10m"),
        Place(description: "sequence ban_for", template: sequence(extra: "    limits:\n      ban_for: <V>\n"), valid: "10m"),
        Place(description: "decoy", template: "decoys: [<V>]\n" + sequence(), valid: "tcp/23"),
        Place(description: "decoy range", template: "decoys: [<V>]\n" + sequence(), valid: "tcp/2000-2100"),
        Place(description: "max_tracked_sources", template: "max_tracked_sources: <V>\n" + sequence(), valid: "65536"),
        Place(description: "strict", template: sequence(extra: "    strict: <V>\n"), valid: "true"),
    ]

    static func sequence(open: String = "tcp/22", extra: String = "") -> String {
        "sequences:\n  ssh:\n    knock: [tcp/7000, udp/9000, tcp/8000]\n    open: [\(open)]\n" + extra
    }

    /// nft syntax, and characters that look like harmless ones.
    static let payloads: [String] = [
        ";", "}", "{", "\n", "\"", "'", "#", "$", "\\", "\0", "\t", "\r", " ", "@", "`", "|", "&", "*",
        "; flush ruleset", "\n}\ntable inet evil {", "\" ; drop #", "} ; add rule inet knockc input drop",
        "$(reboot)", "${x}", "\\\"", "\0; drop", "\u{2028}", "\u{85}",
        "\u{FF1B}", "\u{FF02}", "\u{FF5D}", "\u{FF03}", "\u{037E}", // fullwidth ; " } #, Greek question mark (looks like ;)
        "\u{202E}", "\u{200B}", "\u{00A0}", "\u{FEFF}", "\u{301}", "\u{0455}", // RTL override, zero width, NBSP, BOM, combining, Cyrillic s
    ]

    /// Whole values that only look valid.
    static let lookalikes: [(place: String, value: String)] = [
        ("table", "knоckc"), // Cyrillic o
        ("table", "ｋnockc"),
        ("sequence name", "ѕsh"),
        ("sequence name", "s\u{301}sh"),
        ("sequence name", "ＳＳＨ"),
        ("top-level allow", "192．0．2．1"),
        ("top-level allow", "١٩٢.0.2.1"),
        ("top-level allow", "2001∶db8∶∶1"),
        ("top-level allow", "192.0.2.1\u{200B}"),
        ("knock", "ｔｃｐ/９０００"),
        ("knock", "tcp／9000"),
        ("knock", "tcp/９０００"),
        ("echo knock", "icmp/１００"),
        ("open", "tcp/２２"),
        ("decoy range", "tcp/2000–2100"), // en dash
        ("step_timeout", "５s"),
        ("step_timeout", "5ｓ"),
        ("wrong_knocks", "5／minute"),
        ("max_tracked_sources", "６５５３６"),
        ("strict", "ｔｒｕｅ"),
        // A NUL inside the address part, before the prefix length.
        ("from", "192.0.2.0\0}/24"),
        ("top-level deny", "203.0.113.0\0; drop/24"),
        ("sequence deny", "2001:db8::\0#/48"),
    ]

    /// A YAML double-quoted scalar holding exactly `text`.
    static func quoted(_ text: String) -> String { YAMLScalar.doubleQuoted(text) }

    /// The spec with `value` in `place`, and the line the value stands on.
    static func spec(_ place: Place, _ value: String) -> (text: String, line: Int) {
        let text = place.template.replacingOccurrences(of: "<V>", with: quoted(value))
        let before = place.template.components(separatedBy: "<V>")[0]
        return (text, before.filter { $0 == "\n" }.count + 1)
    }

    @Test("each valid value alone is accepted, so that a refusal below is the payload's doing", arguments: places)
    func validValuesPass(_ place: Place) {
        let (spec, diagnostics) = Pipeline.check(Self.spec(place, place.valid).text, file: "spec.yaml")
        #expect(spec != nil, "\(place): \(diagnostics)")
    }

    @Test("a value holding nft syntax or a lookalike character is refused on its line, and reaches no nft text", arguments: places)
    func payloadsAreRefused(_ place: Place) {
        var values: [String] = []
        for payload in Self.payloads {
            values += [place.valid + payload, payload + place.valid, payload]
            let middle = place.valid.index(place.valid.startIndex, offsetBy: place.valid.count / 2)
            values.append(String(place.valid[..<middle]) + payload + String(place.valid[middle...]))
        }
        values += Self.lookalikes.filter { $0.place == place.description }.map(\.value)
        for value in values where value != place.valid {
            let (text, line) = Self.spec(place, value)
            let (spec, diagnostics) = Pipeline.check(text, file: "spec.yaml")
            let errors = diagnostics.filter { $0.severity == .error }
            // Scalars are read exactly as written: a leading U+FEFF (which Yams dropped) is
            // refused like any other character a name cannot hold.
            #expect(spec == nil, "\(place): \(value.debugDescription) was accepted\n\(text)")
            #expect(!errors.isEmpty, "\(place): \(value.debugDescription) refused without an error")
            #expect(errors.contains { $0.location.line == line }, "\(place): \(value.debugDescription): no error on line \(line): \(errors)")
            guard let spec else { continue }
            // Accepted: whatever got in must be spelled canonically, with no trace of the payload.
            let script = Pipeline.nftScript(for: spec)
            var unusual: Set<String> = []
            #expect(NftTextAudit.problems(in: script, unusualComments: &unusual).isEmpty, "\(place): \(value.debugDescription)")
            let payload = value.replacingOccurrences(of: place.valid, with: "")
            #expect(!script.contains(payload) || payload.allSatisfy { $0 == " " }, "\(place): \(value.debugDescription) reached nft text")
        }
    }

    @Test("an unknown key holding nft syntax is refused")
    func keysAreRefused() {
        for payload in Self.payloads {
            for template in ["<K>: 1\n" + Self.sequence(), Self.sequence(extra: "    <K>: 1\n"), "limits: {<K>: 1}\n" + Self.sequence()] {
                let text = template.replacingOccurrences(of: "<K>", with: Self.quoted("allow" + payload))
                let (spec, diagnostics) = Pipeline.check(text, file: "spec.yaml")
                #expect(spec == nil && diagnostics.hasErrors, "\(payload.debugDescription) in a key was accepted\n\(text)")
            }
        }
    }

    @Test("comments are built from validated names only: the longest and oddest names compile to clean nft")
    func longestNames() throws {
        let (parsed, diagnostics) = Pipeline.check(SharedSpecs.longestNames, file: "names.yaml")
        let spec = try #require(parsed, "\(diagnostics)")
        #expect(spec.tableName.count == 32)
        #expect(spec.sequences.map(\.name.count).max() == 32)
        let script = Pipeline.nftScript(for: spec)
        var unusual: Set<String> = []
        #expect(NftTextAudit.problems(in: script, unusualComments: &unusual).isEmpty)
        // Each comment, with the sequence names taken out, is one of the fixed texts: no name
        // brings ';' or an apostrophe, and no comment is left with anything but fixed words.
        let names = spec.sequences.map(\.name).sorted { $0.count > $1.count }
        for line in script.split(separator: "\n") {
            guard let start = line.range(of: "comment \"") else { continue }
            let body = line[start.upperBound...].prefix { $0 != "\"" }
            var rest = String(body)
            for name in names where rest.hasPrefix(name + ":") || rest.hasPrefix(name + " ") {
                rest = "NAME" + rest.dropFirst(name.count)
                break
            }
            #expect(!rest.contains(where: { "\"\\#{}$\n".contains($0) }), "\(line)")
            if rest.contains(";") || rest.contains("'") {
                #expect(!rest.hasPrefix("NAME"), "a named comment holds ';' or a quote: \(line)")
            }
        }
    }
}
