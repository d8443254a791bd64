import Foundation
@testable import KnockCore
import Testing

/// Every command reads its spec through `SpecFile`: a file that cannot be a spec is refused
/// with the reason, and no more than the limit is ever read.
struct SpecFileTests {
    static let valid = "sequences:\n  ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22]}\n"

    /// A fresh directory for one test, removed after it.
    static func withDirectory(_ body: (URL) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-specfile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try body(directory)
    }

    static func problem(_ path: String, limit: Int = SpecFile.limit) -> SpecFile.Problem? {
        do throws(SpecFile.Problem) {
            _ = try SpecFile.read(path, limit: limit)
            return nil
        } catch {
            return error
        }
    }

    @Test("UTF-8 text is read as it is, with or without a byte-order mark; empty text is the parser's empty spec")
    func readsUTF8() throws {
        try Self.withDirectory { directory in
            let plain = directory.appendingPathComponent("plain.yaml")
            try Data(Self.valid.utf8).write(to: plain)
            #expect(try SpecFile.read(plain.path) == Self.valid)
            #expect(Pipeline.check(file: plain.path).0 != nil)
            let bom = directory.appendingPathComponent("bom.yaml")
            try Data([0xEF, 0xBB, 0xBF] + Array(Self.valid.utf8)).write(to: bom)
            #expect(Pipeline.check(file: bom.path).0 != nil)
            let empty = directory.appendingPathComponent("empty.yaml")
            try Data().write(to: empty)
            #expect(Pipeline.check(file: empty.path).1.map(\.message) == [.emptySpec])
        }
    }

    @Test("a directory, a missing file, UTF-16 and bytes that are not UTF-8 are each refused with the reason")
    func refusals() throws {
        try Self.withDirectory { directory in
            #expect(Self.problem(directory.path) == .directory)
            #expect(Self.problem(directory.appendingPathComponent("absent.yaml").path) == .system("No such file or directory"))
            let utf16: [(String, Data)] = [
                ("le-bom", Data([0xFF, 0xFE]) + Self.valid.data(using: .utf16LittleEndian)!),
                ("be-bom", Data([0xFE, 0xFF]) + Self.valid.data(using: .utf16BigEndian)!),
                ("le", Self.valid.data(using: .utf16LittleEndian)!),
                ("be", Self.valid.data(using: .utf16BigEndian)!),
            ]
            for (name, data) in utf16 {
                let file = directory.appendingPathComponent("\(name).yaml")
                try data.write(to: file)
                #expect(Self.problem(file.path) == .utf16, "\(name)")
            }
            let latin1 = directory.appendingPathComponent("latin1.yaml")
            try Data("# spec\nsequences:\n  caf".utf8 + [0xE9] + ":\n".utf8).write(to: latin1)
            #expect(Self.problem(latin1.path) == .notUTF8(byte: 0xE9, line: 3, byteInLine: 6))
            let (spec, diagnostics) = Pipeline.check(file: latin1.path)
            #expect(spec == nil)
            #expect(diagnostics.map(\.message) == [.unreadable(latin1.path, .notUTF8(byte: 0xE9, line: 3, byteInLine: 6))])
            #expect(diagnostics.first?.location.line == 3)
            #expect(diagnostics.first?.message.text.hasSuffix("it is not UTF-8 text (found the byte 0xE9 at line 3, byte 6); save it as UTF-8") == true)
        }
    }

    @Test("at most the limit and one byte more is read: a bigger file, or /dev/zero, is refused at once")
    func limit() throws {
        try Self.withDirectory { directory in
            let file = directory.appendingPathComponent("big.yaml")
            try Data(repeating: UInt8(ascii: "#"), count: 1001).write(to: file)
            #expect(Self.problem(file.path, limit: 1000) == .tooLarge(limit: 1000))
            #expect(Self.problem(file.path, limit: 1001) == nil)
        }
        let started = ContinuousClock.now
        #expect(Self.problem("/dev/zero") == .tooLarge(limit: SpecFile.limit))
        // Reading 16 MiB of /dev/zero takes milliseconds; reading it to the end, forever.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test("the knockc binary says why it cannot read a spec: directory, /dev/zero, UTF-16, not UTF-8, an empty pipe",
          .timeLimit(.minutes(1)))
    func binaryReasons() throws {
        guard let knockc = KnockcExecutable.required() else { return }
        try Self.withDirectory { directory in
            let utf16 = directory.appendingPathComponent("utf16.yaml")
            try (Data([0xFF, 0xFE]) + Self.valid.data(using: .utf16LittleEndian)!).write(to: utf16)
            let latin1 = directory.appendingPathComponent("latin1.yaml")
            try Data("sequences:\n  caf".utf8 + [0xE9] + ":\n".utf8).write(to: latin1)
            let cases: [(arguments: [String], input: Data?, expected: String)] = [
                (["check", directory.path], nil, "\(directory.path):1:1: error: cannot read the spec file '\(directory.path)': it is a directory"),
                (["compile", directory.path], nil, "cannot read the spec file '\(directory.path)': it is a directory"),
                (["check", "/dev/zero"], nil, "cannot read the spec file '/dev/zero': it is larger than 16 MiB"),
                (["check", utf16.path], nil, "cannot read the spec file '\(utf16.path)': it is UTF-16 text; save it as UTF-8"),
                (["check", latin1.path], nil, "\(latin1.path):2:1: error: cannot read the spec file '\(latin1.path)': it is not UTF-8 text (found the byte 0xE9 at line 2, byte 6)"),
                (["check", "/dev/stdin"], Data(), "/dev/stdin:1:1: error: the spec is empty"),
                (["check", "/dev/stdin"], Data(Self.valid.utf8), ""),
            ]
            for (arguments, input, expected) in cases {
                let result = try KnockcExecutable.run(knockc, arguments, input: input)
                #expect(!result.signaled)
                #expect(result.status == (expected.isEmpty ? 0 : 1), "\(arguments): \(result.stderr)")
                #expect(expected.isEmpty ? result.stderr.isEmpty : result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            }
        }
    }
}
