import Foundation
@testable import KnockCore
import Testing

/// `spa:` in the spec: what check accepts, what it refuses, and where it says so.
struct AuthorizedPacketSpecTests {
    /// A secret file for `check` to look at (it reads only its kind, size, mode and owner).
    final class SecretFixture: @unchecked Sendable {
        let directory: String
        var path: String { directory + "/admin.key" }

        init(mode: mode_t = 0o600, length: Int = 32) throws {
            var template = Array("/tmp/knockc-spa-spec-XXXXXX".utf8CString)
            directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
            _ = FileManager.default.createFile(atPath: directory + "/admin.key", contents: Data(repeating: 7, count: length))
            chmod(directory + "/admin.key", mode)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    func check(_ yaml: String) -> (KnockSpec?, [String]) {
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        return (spec, diagnostics.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message.text)" })
    }

    func spec(_ spa: String, secret: String, more: String = "") -> String {
        "sequences:\n  admin:\n    open: [tcp/22]\n    spa: { secret: \(secret), \(spa) }\n\(more)"
    }

    @Test("a valid spa sequence gets its defaults and no warnings about short sequences")
    func accepted() throws {
        let secret = try SecretFixture()
        let (spec, found) = check(self.spec("port: udp/62201", secret: secret.path))
        #expect(found.isEmpty, "\(found)")
        let spa = try #require(spec?.sequences.first?.spa)
        #expect(spa == OnePacketAuthorization(secret: secret.path, port: TransportPort(.udp, 62201)))
        #expect(spa.tokensHeld == (2880 + 3) * 4)
        #expect(spec?.sequences.first?.knocks == [.port(TransportPort(.udp, 62201))])
    }

    @Test("bad spa values are refused where they stand")
    func refusals() throws {
        let secret = try SecretFixture()
        // (the spa mapping, the value the error points at, the start of the message)
        let cases: [(String, String, String)] = [
            ("port: tcp/62201", "tcp/62201", "error: 'spa' port tcp/62201 is not udp"),
            ("port: udp/62201, every: 1500ms", "1500ms", "error: 'every' of 1500ms is not a window length"),
            ("port: udp/62201, every: 2h", "2h", "error: 'every' of 2h is not a window length"),
            ("port: udp/62201, horizon: 30d", "30d", "error: '30d' is too long for 'horizon'"),
            ("port: udp/62201, horizon: 8d", "8d", "error: 'horizon' of 8d is out of range"),
            ("port: udp/62201, slots: 0", "0", "error: '0' is not a value for 'slots'"),
            ("port: udp/62201, skew: 11", "11", "error: '11' is not a value for 'skew'"),
            ("every: 30s", "{", "error: 'spa' of sequence 'admin' has no 'port'"),
        ]
        for (spa, value, message) in cases {
            let line = "    spa: { secret: \(secret.path), \(spa) }"
            let column = line.distance(from: line.startIndex, to: line.range(of: value, options: .backwards)!.lowerBound) + 1
            let (spec, found) = check(self.spec(spa, secret: secret.path))
            #expect(spec == nil, "\(spa)")
            #expect(found.contains { $0.hasPrefix("4:\(value == "{" ? 10 : column): \(message)") }, "\(spa): \(found)")
        }
        let (_, short) = check(self.spec("port: udp/62201, every: 2s", secret: secret.path))
        #expect(short.contains { $0.contains("warning: 'every' of 2s is a short window") }, "\(short)")
        let (_, both) = check("sequences:\n  admin:\n    knock: [tcp/1]\n    open: [tcp/22]\n    spa: { secret: \(secret.path), port: udp/62201 }\n")
        #expect(both.contains { $0.contains("has both 'knock' and 'spa'") }, "\(both)")
        let (_, clash) = check(self.spec("port: udp/62201", secret: secret.path,
                                         more: "  ssh:\n    knock: [tcp/7000, udp/62201, tcp/8000]\n    open: [tcp/2222]\n"))
        #expect(clash.contains { $0.contains("udp/62201 is the 'spa' port of another sequence") }, "\(clash)")
        let (_, strict) = check(self.spec("port: udp/62201", secret: secret.path).replacingOccurrences(of: "    open: [tcp/22]\n", with: "    open: [tcp/22]\n    strict: true\n"))
        #expect(strict.contains { $0.contains("has 'strict' and 'spa'") }, "\(strict)")
    }

    @Test("a missing, short, group-readable or linked secret is refused, naming the file and the fix")
    func secretFiles() throws {
        let missing = check(spec("port: udp/62201", secret: "/nonexistent/admin.key")).1
        #expect(missing.contains { $0.contains("cannot read secret /nonexistent/admin.key") && $0.contains("knockc keygen") }, "\(missing)")
        let short = try SecretFixture(length: 31)
        #expect(check(spec("port: udp/62201", secret: short.path)).1.contains { $0.contains("has 31 bytes; a secret has at least 32") })
        let open = try SecretFixture(mode: 0o640)
        #expect(check(spec("port: udp/62201", secret: open.path)).1.contains { $0.contains("mode 640") && $0.contains("chmod 600") })
        let target = try SecretFixture()
        let link = target.directory + "/link.key"
        symlink(target.path, link)
        #expect(check(spec("port: udp/62201", secret: link)).1.contains { $0.contains("is not a regular file") })
        #expect(check(spec("port: udp/62201", secret: "admin.key")).1.contains { $0.contains("is not an absolute path") })
    }

    @Test("the compiled table holds the token sets empty, and JSON refuses what it cannot declare")
    func compiled() throws {
        let secret = try SecretFixture()
        let spec = try #require(check(self.spec("port: udp/62201", secret: secret.path)).0)
        let text = Pipeline.nftScript(for: spec)
        #expect(text.contains("set spa_admin {\n\t\ttypeof @th,64,128\n\t\tsize 11536\n\t\tflags timeout\n"))
        #expect(text.contains("@th,64,128 @spa_admin @th,64,128 != @spa_early_admin @th,64,128 != @spa_used_admin add @spa_used_admin"))
        #expect(!text.contains("0x"), "no token is compiled in")
        #expect(throws: NftJSONRenderer.Unrepresentable.payloadKey(set: "spa_admin")) { try Pipeline.nftJSON(for: RulesetLowering.lower(spec)) }
    }
}

extension AuthorizedPacketSpecTests {
    @Test("two spa sequences whose names would give one set two owners (x and early_x) are refused")
    func setNamesDoNotClash() throws {
        let secret = try SecretFixture()
        let yaml = "sequences:\n  x:\n    open: [tcp/22]\n    spa: { secret: \(secret.path), port: udp/62201 }\n"
            + "  early_x:\n    open: [tcp/23]\n    spa: { secret: \(secret.path), port: udp/62202 }\n"
        let (spec, found) = check(yaml)
        #expect(spec == nil)
        #expect(found.contains { $0.hasPrefix("5:3: error: sequences 'early_x' and 'x' both need a set named spa_early_x") }, "\(found)")
    }
}
