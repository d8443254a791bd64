import Foundation
import Testing

/// `knockc knock`'s durations are bounded like a spec's (at most 24d): a longer one is an
/// argument error before anything is sent.
struct KnockOptionTests {
    @Test("knock --delay and --timeout past 24d are refused with exit 64 and the bound; 24d itself passes validation",
          arguments: ["--delay", "--timeout"])
    func durationsAreBounded(_ option: String) throws {
        guard let knockc = KnockcExecutable.required() else { return }
        // 192.0.2.1 (TEST-NET-1) is never knocked: each case stops at validation.
        for value in ["999999999999d", "25d", "2073600001ms", "106751991168d"] {
            // Accepted, the value would make knockc sleep or wait for ever: the watchdog ends it.
            let result = try KnockcExecutable.run(knockc, ["knock", "192.0.2.1", "tcp/7000", "--then-connect", "22", option, value], limit: 20)
            #expect(result.status == 64, "\(option) \(value): \(result.stderr)")
            #expect(!result.signaled)
            #expect(result.stderr.contains("'\(value)' is too long for \(option); the longest is 24d."), "\(result.stderr)")
        }
        // At the bound the duration passes, and validation goes on to the check after it:
        // --retries out of range, so nothing is sent.
        let atBound = try KnockcExecutable.run(knockc, ["knock", "192.0.2.1", "tcp/7000", "--then-connect", "22", "--retries", "101", option, "24d"])
        #expect(atBound.status == 64)
        #expect(atBound.stderr.contains("--retries takes 0 to 100."), "\(atBound.stderr)")
    }

    @Test("knock --proxy takes a port from 1 to 65535, excludes --then-connect, and lets --retries through; each refusal is exit 64")
    func proxyOptions() throws {
        guard let knockc = KnockcExecutable.required() else { return }
        let refused: [([String], String)] = [
            (["--proxy", "0"], "--proxy takes a port from 1 to 65535."),
            (["--proxy", "65536"], "--proxy"),
            (["--proxy", "22", "--then-connect", "22"], "--then-connect and --proxy exclude each other"),
            (["--retries", "2"], "--retries needs --then-connect or --proxy"),
        ]
        // 192.0.2.1 (TEST-NET-1) is never knocked: each case stops at validation.
        for (options, message) in refused {
            let result = try KnockcExecutable.run(knockc, ["knock", "192.0.2.1", "tcp/7000"] + options, limit: 20)
            #expect(result.status == 64, "\(options): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(options): \(result.stderr)")
        }
        // Accepted with --retries, validation goes on to the check after it.
        let retried = try KnockcExecutable.run(knockc, ["knock", "192.0.2.1", "tcp/7000", "--proxy", "22", "--retries", "101"])
        #expect(retried.status == 64)
        #expect(retried.stderr.contains("--retries takes 0 to 100."), "\(retried.stderr)")
    }
}
