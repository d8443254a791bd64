import Foundation
@testable import KnockCore
import Testing

/// `schema/knockc.schema.json` is what editors check specs against while they are typed. It
/// must accept every spec we ship, reject the common mistakes, and name exactly the keys the
/// parser knows. Validation runs Debian's `/usr/bin/python3` with python3-jsonschema and
/// python3-yaml, which CI installs; without them these tests fail rather than skip.
struct SchemaTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let schemaURL = root.appendingPathComponent("schema/knockc.schema.json")

    /// Every shipped spec, relative to the package root: the examples and the golden cases.
    static var shippedSpecs: [String] {
        let files = FileManager.default
        let examples = ((try? files.contentsOfDirectory(atPath: root.appendingPathComponent("examples").path)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.map { "examples/\($0)" }
        let goldenFolder = "Tests/KnockCoreTests/Golden"
        let golden = ((try? files.contentsOfDirectory(atPath: root.appendingPathComponent(goldenFolder).path)) ?? [])
            .map { "\(goldenFolder)/\($0)/spec.yaml" }
            .filter { files.fileExists(atPath: root.appendingPathComponent($0).path) }
        return (examples + golden).sorted()
    }

    // MARK: (a) what we ship validates

    @Test("every example and every golden spec validates against the schema")
    func shippedSpecsValidate() throws {
        let specs = Self.shippedSpecs
        #expect(specs.contains("examples/ssh.yaml"))
        #expect(specs.contains { $0.hasPrefix("Tests/KnockCoreTests/Golden/") })
        let documents = try specs.map {
            SchemaValidator.Document(name: $0, yaml: try String(contentsOf: Self.root.appendingPathComponent($0), encoding: .utf8))
        }
        let results = try SchemaValidator.validate(documents)
        for (spec, errors) in zip(specs, results) {
            #expect(errors.isEmpty, "\(spec) does not validate against the schema: \(errors)")
        }
    }

    /// Specs at the edges of what `knockc check` accepts: the schema must not be stricter.
    static let edgeValid: [(String, String)] = [
        ("mixed-case table name of 32", """
            table: Fw-1_abcdefghijklmnopqrstuvwxyz0
            sequences:
              a: { knock: [tcp/1, udp/65535, tcp/2], open: [tcp/22] }
            """),
        ("longest name and every unit", """
            defaults: { step_timeout: 500ms, open_for: 24d }
            sequences:
              abcdefghijklmnopqrstuvwxyz_-0123:
                knock: [udp/9000, tcp/7000, udp/8000]
                open: [udp/53, tcp/53]
                step_timeout: 10m
                open_for: 1h
              b: { knock: [tcp/7001, tcp/6000, udp/8001], open: [tcp/80], step_timeout: 2s, open_for: 1d }
            """),
        ("access lists and tracked sources", """
            allow: [192.0.2.0/24, "2001:db8::/32"]
            deny: [198.51.100.7]
            max_tracked_sources: 16777216
            sequences:
              ssh:
                knock: [tcp/7000, udp/9000, tcp/8000]
                open: [tcp/22]
                from: [10.0.0.0/8, "fd00::/8"]
                allow: [203.0.113.5]
                deny: ["2001:db8:bad::/48"]
            """),
        ("12 knocks", """
            sequences:
              long:
                knock: [\((0..<12).map { "\($0 % 2 == 0 ? "tcp" : "udp")/\(7000 + ($0 * 37) % 500)" }.joined(separator: ", "))]
                open: [tcp/22]
            """),
    ]

    @Test("specs at the edges of the rules validate, as knockc check accepts them")
    func edgeSpecsValidate() throws {
        let results = try SchemaValidator.validate(Self.edgeValid.map { .init(name: $0.0, yaml: $0.1) })
        for ((label, yaml), errors) in zip(Self.edgeValid, results) {
            #expect(!Pipeline.check(yaml, file: "spec.yaml").1.hasErrors, "knockc check rejects the case '\(label)'")
            #expect(errors.isEmpty, "the schema rejects '\(label)': \(errors)")
        }
    }

    // MARK: (b) common mistakes are rejected

    /// Each case is a spec with one mistake, and the instance path where the schema must object
    /// ("" is the top level).
    static let invalid: [(label: String, path: String, yaml: String)] = [
        ("unknown top-level key", "", """
            tables: fw
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("unknown key in defaults", "defaults", """
            defaults: { timeout: 5s }
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("unknown key in a sequence", "sequences/ssh", """
            sequences: { ssh: { knocks: [tcp/7000, udp/9000, tcp/8000], knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("duration with a spelled-out unit", "defaults/step_timeout", """
            defaults: { step_timeout: 5sec }
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("duration without a unit", "sequences/ssh/open_for", """
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], open_for: 30 } }
            """),
        ("zero duration", "sequences/ssh/step_timeout", """
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], step_timeout: 0s } }
            """),
        ("knock with an unknown protocol", "sequences/ssh/knock/1", """
            sequences: { ssh: { knock: [tcp/7000, sctp/8, tcp/8000], open: [tcp/22] } }
            """),
        ("knock with a colon", "sequences/ssh/knock/0", """
            sequences: { ssh: { knock: ["tcp:7000", udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("open port of six digits", "sequences/ssh/open/0", """
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/220000] } }
            """),
        ("empty sequences", "sequences", """
            sequences: {}
            """),
        ("no sequences", "", """
            table: fw
            """),
        ("sequence without open", "sequences/ssh", """
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000] } }
            """),
        ("empty knock list", "sequences/ssh/knock", """
            sequences: { ssh: { knock: [], open: [tcp/22] } }
            """),
        ("33 knocks", "sequences/ssh/knock", """
            sequences:
              ssh:
                knock: [\((0..<33).map { "tcp/\(7000 + $0)" }.joined(separator: ", "))]
                open: [tcp/22]
            """),
        ("open port listed twice", "sequences/ssh/open", """
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22, tcp/22] } }
            """),
        ("uppercase sequence name", "sequences", """
            sequences: { SSH: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("table name starting with a digit", "table", """
            table: 1fw
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("source that is not an address", "allow/0", """
            allow: [office]
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("from that is not a list", "sequences/ssh/from", """
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], from: 10.0.0.0/8 } }
            """),
        ("no tracked sources", "max_tracked_sources", """
            max_tracked_sources: 0
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
        ("defaults left empty", "defaults", """
            defaults:
            sequences: { ssh: { knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22] } }
            """),
    ]

    @Test("specs with a mistake are rejected by the schema where knockc check rejects them")
    func mistakesAreRejected() throws {
        let results = try SchemaValidator.validate(Self.invalid.map { .init(name: $0.label, yaml: $0.yaml) })
        for (spec, errors) in zip(Self.invalid, results) {
            #expect(Pipeline.check(spec.yaml, file: "spec.yaml").1.hasErrors, "knockc check accepts the case '\(spec.label)'")
            #expect(!errors.isEmpty, "the schema accepts the case '\(spec.label)'")
            #expect(errors.contains { $0.path == spec.path },
                    "the schema does not object at '\(spec.path)' for '\(spec.label)': \(errors)")
        }
    }

    // MARK: (c) the schema and the parser name the same keys

    static func schema() throws -> [String: Any] {
        let data = try Data(contentsOf: schemaURL)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "the schema is not a JSON object")
    }

    /// The object schema at `path` (keys from the root), following a local `$ref` at each step.
    static func object(_ path: [String], in schema: [String: Any]) throws -> [String: Any] {
        var node = schema
        for key in path {
            node = try #require(node[key] as? [String: Any], "the schema has no object at \(path)")
            node = try resolved(node, in: schema)
        }
        return node
    }

    static func resolved(_ node: [String: Any], in schema: [String: Any]) throws -> [String: Any] {
        guard let ref = node["$ref"] as? String else { return node }
        #expect(ref.hasPrefix("#/"), "only local references are expected: \(ref)")
        return try object(ref.dropFirst(2).split(separator: "/").map(String.init), in: schema)
    }

    static func propertyNames(_ object: [String: Any]) -> Set<String> {
        Set((object["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
    }

    @Test("the schema's keys are exactly the parser's keys, and unknown keys are refused at every level")
    func keysAgreeWithParser() throws {
        let schema = try Self.schema()
        #expect(schema["$schema"] as? String == "http://json-schema.org/draft-07/schema#")
        #expect(schema["$id"] is String)
        #expect(schema["title"] is String)

        let top = schema
        let defaults = try Self.object(["properties", "defaults"], in: schema)
        let sequence = try Self.object(["properties", "sequences", "additionalProperties"], in: schema)

        #expect(Self.propertyNames(top) == Set(SpecParser.topLevelKeys))
        #expect(Self.propertyNames(defaults) == Set(SpecParser.timingKeys))
        #expect(Self.propertyNames(sequence) == Set(SpecParser.sequenceKeys))
        for (label, object) in [("top level", top), ("defaults", defaults), ("sequence", sequence)] {
            #expect(object["additionalProperties"] as? Bool == false, "the \(label) allows unknown keys")
        }
        #expect(top["required"] as? [String] == ["sequences"])
        // Something to open: local ports, forwarded ports, dnat ports, or several.
        #expect((sequence["anyOf"] as? [[String: [String]]])?.map { $0["required"] ?? [] } == [["open"], ["forward"], ["dnat"]])
        // Knocks, one authorized packet or rotating knocks: exactly one of them.
        #expect((sequence["oneOf"] as? [[String: [String]]])?.map { $0["required"] ?? [] } == [["knock"], ["spa"], ["rotate"]])
        let spa = try Self.object(["properties", "spa"], in: sequence)
        #expect(Self.propertyNames(spa) == Set(SpecParser.spaKeys))
        #expect(spa["additionalProperties"] as? Bool == false)
        let rotate = try Self.object(["properties", "rotate"], in: sequence)
        #expect(Self.propertyNames(rotate) == Set(SpecParser.rotateKeys))
        #expect(rotate["additionalProperties"] as? Bool == false)
        #expect((rotate["properties"] as? [String: [String: Any]])?["knocks"]?["maxItems"] as? Int == SpecValidator.maxKnocks)

        let knock = try Self.object(["properties", "knock"], in: sequence)
        #expect(knock["maxItems"] as? Int == SpecValidator.maxKnocks)
        #expect(knock["minItems"] as? Int == 1)

        // Every key has a description for editors to show.
        for (label, object) in [("defaults", defaults), ("sequence", sequence)] {
            let properties = try #require(object["properties"] as? [String: Any])
            for (key, value) in properties {
                #expect((value as? [String: Any])?["description"] is String, "\(label).\(key) has no description")
            }
        }
        let topProperties = try #require(top["properties"] as? [String: Any])
        for (key, value) in topProperties {
            #expect((value as? [String: Any])?["description"] is String, "\(key) has no description")
        }
    }
}

/// Validates YAML documents against the schema with Debian's python3-jsonschema and
/// python3-yaml. One process validates a whole batch.
enum SchemaValidator {
    static let python = "/usr/bin/python3"
    static let packages = "python3-jsonschema python3-yaml"

    struct Document: Encodable {
        var name: String
        var yaml: String
    }

    /// One schema error: the instance path, keys joined by '/', and jsonschema's message.
    struct Finding: Decodable, CustomStringConvertible {
        var path: String
        var message: String
        var description: String { "\(path.isEmpty ? "(top level)" : path): \(message)" }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// argv: schema path, path of a JSON list of {name, yaml}. Prints {"results": [[finding]]}
    /// in input order, or {"missing": ...} and exits 3 when a module is not installed. A schema
    /// that is not itself a valid JSON Schema raises, so the test fails with the traceback.
    static let script = #"""
        import json, sys
        try:
            import jsonschema, yaml
        except ImportError as error:
            print(json.dumps({"missing": str(error)}))
            sys.exit(3)
        with open(sys.argv[1]) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema)
        with open(sys.argv[2]) as f:
            documents = json.load(f)
        results = []
        for document in documents:
            try:
                instance = yaml.safe_load(document["yaml"])
            except yaml.YAMLError as error:
                results.append([{"path": "", "message": "not YAML: %s" % error}])
                continue
            results.append([
                {"path": "/".join(str(part) for part in error.absolute_path), "message": error.message}
                for error in validator.iter_errors(instance)
            ])
        print(json.dumps({"results": results}))
        """#

    /// The findings for each document, in order; an empty list means the document is valid.
    static func validate(_ documents: [Document], schema: URL = SchemaTests.schemaURL) throws -> [[Finding]] {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw Failure(description: "\(python) is missing; the schema tests need Debian's python3 with \(packages): apt-get install -y \(packages)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("documents.json")
        try JSONEncoder().encode(documents).write(to: input)
        let errorsFile = folder.appendingPathComponent("stderr.txt")
        guard FileManager.default.createFile(atPath: errorsFile.path, contents: nil) else {
            throw Failure(description: "cannot create \(errorsFile.path)")
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        // -I: isolated from PYTHON* variables and user site-packages, so only Debian's modules count.
        process.arguments = ["-I", "-c", script, schema.path, input.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: errorsFile)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = (try? String(contentsOf: errorsFile, encoding: .utf8)) ?? ""

        struct Reply: Decodable {
            var results: [[Finding]]?
            var missing: String?
        }
        let reply = try? JSONDecoder().decode(Reply.self, from: data)
        if let missing = reply?.missing {
            throw Failure(description: "\(python) cannot import a module (\(missing)); install \(packages): apt-get install -y \(packages)")
        }
        guard process.terminationStatus == 0, let results = reply?.results, results.count == documents.count else {
            throw Failure(description: """
                schema validation failed (exit \(process.terminationStatus)):
                \(stderr)\(String(decoding: data, as: UTF8.self))
                """)
        }
        return results
    }
}
