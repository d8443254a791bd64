import Foundation

/// What the environment the tests run in asks of them.
enum TestEnvironment {
    /// Under `CI=true` a test that cannot run here must fail rather than skip with a warning:
    /// a CI job that lacks root or the built binary would otherwise pass having checked less.
    static var skipsMustFail: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
}
