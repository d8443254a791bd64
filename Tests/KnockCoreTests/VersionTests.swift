import Foundation
@testable import KnockTestSupport
import Testing

/// `knockc --version`. A plain `swift build` says the release in KnockcVersion.h with "-dev";
/// scripts/test-package checks the version a package build bakes in.
struct VersionTests {
    /// KNOCKC_RELEASE, read from the header the way scripts/package reads it.
    static func release() throws -> String {
        let header = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/KnockcVersion/include/KnockcVersion.h")
        let text = try String(contentsOf: header, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("#define KNOCKC_RELEASE \"") })
        return String(line.split(separator: "\"")[1])
    }

    @Test("knockc --version prints KNOCKC_RELEASE-dev for a build that scripts/package did not make")
    func plainBuildSaysDev() throws {
        guard let knockc = KnockcExecutable.required() else { return }
        let result = try runProgram([knockc, "--version"], allowFailure: true)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output == "\(try Self.release())-dev\n")
    }
}
