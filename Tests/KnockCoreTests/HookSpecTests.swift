@testable import KnockCore
import Testing

/// `on_grant`, `on_expire` and `hook_timeout`: argv arrays only, checked where they stand.
struct HookSpecTests {
    static let base = """
        sequences:
          ssh:
            knock: [tcp/7000, udp/9000, tcp/8000]
            open: [tcp/22]
        """

    @Test("a sequence's hook replaces the top level's; the other kind falls back to it") func topLevelFallback() throws {
        let spec = try #require(Pipeline.check("""
            on_grant: [/usr/bin/logger, -t, knockc, "%IP% $(reboot)"]
            on_expire: [/usr/bin/logger, expired]
            hook_timeout: 3s
            sequences:
              ssh:
                knock: [tcp/7000, udp/9000, tcp/8000]
                open: [tcp/22]
                on_grant: [/usr/local/bin/ssh-granted]
              web:
                knock: [tcp/7001, udp/9001, tcp/8001]
                open: [tcp/443]
            """, file: "spec.yaml").0)
        let ssh = try #require(spec.sequences.first { $0.name == "ssh" })
        let web = try #require(spec.sequences.first { $0.name == "web" })
        #expect(spec.hook(.grant, for: ssh)?.arguments == ["/usr/local/bin/ssh-granted"])
        #expect(spec.hook(.expire, for: ssh)?.arguments == ["/usr/bin/logger", "expired"])
        // Shell syntax is kept as one plain argument, never interpreted.
        #expect(spec.hook(.grant, for: web)?.arguments == ["/usr/bin/logger", "-t", "knockc", "%IP% $(reboot)"])
        #expect(spec.hookTimeout == .seconds(3))
    }

    @Test("hooks are optional and the timeout has a default") func optionalHooks() throws {
        let spec = try #require(Pipeline.check(Self.base, file: "spec.yaml").0)
        #expect(spec.hook(.grant, for: spec.sequences[0]) == nil)
        #expect(spec.hookTimeout == HookCommand.defaultTimeout)
    }

    @Test("a shell string is refused where it stands") func shellStringRefused() {
        SpecCheckTests.expectOnly("on_grant: /usr/bin/logger granted $KNOCKC_SOURCE\n" + Self.base,
                                  .hookNotAList("on_grant"), line: 1, column: 11)
    }

    @Test("a program must be an absolute path") func absoluteProgram() {
        SpecCheckTests.expectOnly(Self.base + "\n    on_expire: [logger, gone]",
                                  .badHook(.notAbsolute("logger"), key: "on_expire"), line: 5, column: 16)
    }

    @Test("an empty command is refused") func emptyCommand() {
        SpecCheckTests.expectOnly("on_grant: []\n" + Self.base, .badHook(.empty, key: "on_grant"), line: 1, column: 11)
    }

    @Test("a hook argument must be text") func textArguments() {
        SpecCheckTests.expectOnly("on_grant: [/bin/true, [a]]\n" + Self.base,
                                  .expectedScalar("an argument of 'on_grant'", found: "a list"), line: 1, column: 23)
    }

    @Test("hook_timeout is bounded") func boundedTimeout() {
        SpecCheckTests.expectOnly("hook_timeout: 1h\n" + Self.base, .hookTimeoutTooLong(.seconds(3600)), line: 1, column: 15)
    }
}
