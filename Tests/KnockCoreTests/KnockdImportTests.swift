import Foundation
@testable import KnockCore
import Testing

/// `knockc import knockd`: knockd.conf files as knockd's documentation and Debian's package
/// write them, translated; every printed spec must pass the validator.
struct KnockdImportTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Knockd")

    static func fixture(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// Translates a fixture and checks the spec as `knockc check` does.
    static func translated(_ name: String) throws -> (KnockdTranslation, KnockSpec) {
        let translation = try KnockdImport.translate(file: fixture(name))
        let (spec, diagnostics) = Pipeline.check(translation.spec, file: name)
        #expect(!diagnostics.hasErrors, "\(diagnostics)")
        return (translation, try #require(spec))
    }

    static func translated(text: String) throws -> (KnockdTranslation, KnockSpec) {
        let translation = try KnockdImport.translate(text, file: "knockd.conf")
        let (spec, diagnostics) = Pipeline.check(translation.spec, file: "knockd.conf")
        #expect(!diagnostics.hasErrors, "\(diagnostics)")
        return (translation, try #require(spec))
    }

    static func failure(_ text: String) -> KnockdImport.Failure? {
        do {
            _ = try KnockdImport.translate(text, file: "knockd.conf")
            return nil
        } catch {
            return error
        }
    }

    @Test("every fixture that prints a spec prints one knockc check accepts", arguments: ["debian.conf", "manpage.conf", "example1.conf", "ipv6.conf", "nft.conf"])
    func printedSpecsCheck(_ name: String) throws {
        _ = try Self.translated(name)
    }

    @Test("Debian's knockd.conf: openSSH with closeSSH as its close knocks; openHTTPS's knock_add is not translated")
    func debianSample() throws {
        let (translation, spec) = try Self.translated("debian.conf")
        let ssh = try #require(spec.sequences.first)
        #expect(spec.sequences.count == 1)
        #expect(ssh.name == "openssh")
        #expect(ssh.knocks == [.tcp(7000), .tcp(8000), .tcp(9000)])
        #expect(ssh.open == [TransportPort(.tcp, 22)])
        #expect(ssh.close == [.tcp(9000), .tcp(8000), .tcp(7000)])
        #expect(ssh.stepTimeout == .seconds(5))
        #expect(ssh.openFor == KnockdTranslation.openForWithoutStop)
        #expect(translation.untranslated.map(\.line) == [19])
        #expect(translation.untranslated[0].reason.contains("knock_add"))
        #expect(translation.spec.contains("# not translated: [openHTTPS]"))
        #expect(translation.spec.contains("seq_timeout = 5 (line 6)"))
    }

    @Test("the man page's examples: #1 translates (tcp read for --dport without -p), #2 and #3 are kept as comments")
    func manPageExamples() throws {
        let (complete, spec1) = try Self.translated("example1.conf")
        #expect(complete.isComplete)
        #expect(spec1.sequences.map(\.openFor) == [KnockdTranslation.openForWithoutStop])
        #expect(complete.spec.contains("--dport without -p"))

        let (translation, spec) = try Self.translated("manpage.conf")
        #expect(spec.sequences.map(\.name) == ["openssh"])
        #expect(translation.untranslated.map(\.line) == [20, 25])
        #expect(translation.untranslated[0].reason.contains("every tcp port"))
        #expect(translation.untranslated[1].reason.contains("rotate:"))
    }

    @Test("start_command_6 with ip6tables: one sequence for both families; cmd_timeout becomes open_for")
    func bothFamilies() throws {
        let (translation, spec) = try Self.translated("ipv6.conf")
        #expect(translation.isComplete, "\(translation.untranslated)")
        let smtp = try #require(spec.sequences.first)
        #expect(smtp.knocks == [.udp(7100), .tcp(7300), .udp(7200)])
        #expect(smtp.open == [TransportPort(.tcp, 25)])
        #expect(smtp.openFor == .seconds(30))
        #expect(smtp.stepTimeout == .seconds(15))
        #expect(smtp.from == nil)
    }

    @Test("nft rules translate; an nft set element's protocol is a guess, so the translation is incomplete")
    func nftCommands() throws {
        let (translation, spec) = try Self.translated("nft.conf")
        #expect(spec.sequences.map(\.name) == ["dns-for-admins", "ssh"])
        #expect(spec.sequences[0].open == [TransportPort(.udp, 53)])
        #expect(spec.sequences[1].openFor == .seconds(60))
        #expect(translation.untranslated.map(\.line) == [9])
    }

    @Test("an unreadable or corrupt knockd.conf is FILE:LINE: error, naming what is wrong")
    func corruptFiles() throws {
        for (name, line, words) in [("corrupt.conf", 6, "is not key = value"), ("unknown-key.conf", 3, "unknown key 'seq_timout'"),
                                    ("bad-port.conf", 2, "'80000' is not a knock")] {
            #expect(throws: KnockdImport.Failure.self) { try KnockdImport.translate(file: Self.fixture(name)) }
            do {
                _ = try KnockdImport.translate(file: Self.fixture(name))
            } catch {
                #expect(error.line == line, "\(name)")
                #expect(error.message.contains(words), "\(error)")
                #expect(error.description.hasPrefix(Self.fixture(name) + ":\(line): error: "))
            }
        }
        let missing = Self.fixture("no-such.conf")
        do {
            _ = try KnockdImport.translate(file: missing)
            Issue.record("a missing file was read")
        } catch {
            #expect(error.message.contains("cannot read the knockd.conf"))
        }
    }

    @Test("knockd's own rules for bad input", arguments: [
        ("sequence = 1,2,3\n", 1, "before any [section]"),
        ("[]\n", 1, "empty section name"),
        ("[a]\nsequence = 1:icmp\n", 2, "unknown protocol 'icmp'"),
        ("[a]\nsequence = 7000,8000\nseq_timeout = soon\n", 3, "expected whole seconds"),
        ("[a]\nsequence = 7000,8000\ntcpflags = syn,xyz\n", 3, "unknown tcp flag 'xyz'"),
        ("[a]\ncommand = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n", 1, "has no sequence"),
        ("[options]\nsequence = 1,2\n", 2, "unknown key 'sequence' in [options]"),
        ("[a\nsequence = 1,2\n", 1, "does not end with ']'"),
    ])
    func badInput(_ text: String, _ line: Int, _ words: String) throws {
        let failure = try #require(Self.failure(text))
        #expect(failure.line == line)
        #expect(failure.message.contains(words), "\(failure.message)")
    }

    @Test("keys in any case, tabs, CRLF line ends and # comments read as knockd reads them")
    func knockdSyntax() throws {
        let text = "# a comment\r\n[Web]\r\nusesyslog\r\n\tSEQUENCE\t=  6001 , 6002:UDP,6003:Tcp \r\n   Seq_Timeout=3\r\n  COMMAND = iptables -I INPUT -s %IP% -p tcp --dport 443 -j ACCEPT\r\n#[ignored]\r\n"
        let (translation, spec) = try Self.translated(text: text)
        #expect(translation.isComplete)
        #expect(spec.sequences.first?.knocks == [.tcp(6001), .udp(6002), .tcp(6003)])
        #expect(spec.sequences.first?.stepTimeout == .seconds(3))
        #expect(spec.sequences.first?.open == [TransportPort(.tcp, 443)])
        #expect(translation.spec.contains("# [options] usesyslog (line 3)"))
    }

    @Test("a file where nothing translates prints nothing and says why, by line")
    func nothingTranslates() throws {
        let failure = try #require(Self.failure("[a]\nsequence = 1,2,3\ncommand = /usr/bin/wall knocked\n"))
        #expect(failure.message.contains("no section translates"))
        #expect(failure.message.contains("line 3: [a]"))
    }

    @Test("a stop_command that is not the start's removal: open_for is cmd_timeout, and the stop is not translated")
    func otherStopCommand() throws {
        let (translation, spec) = try Self.translated(text: """
            [a]
            sequence = 7000,9000,8000
            start_command = /sbin/iptables -A INPUT -s %IP% -p udp --dport 1194 -j ACCEPT
            cmd_timeout = 120
            stop_command = /usr/bin/logger closed %IP%
            target = 10.0.0.5
            tcpflags = fin
            """)
        #expect(spec.sequences.first?.openFor == .seconds(120))
        #expect(spec.sequences.first?.open == [TransportPort(.udp, 1194)])
        #expect(translation.untranslated.map(\.line) == [5, 6, 7])
    }

    @Test("knockd names become knockc names: sanitised, unique, and the change said in a comment")
    func names() throws {
        let (translation, spec) = try Self.translated(text: """
            [Open SSH]
            sequence = 7000,9000,8000
            command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
            [open-ssh]
            sequence = 7001,9001,8001
            command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT
            [\(String(repeating: "x", count: 40))]
            sequence = 7002,9002,8002
            command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 2223 -j ACCEPT
            """)
        #expect(Set(spec.sequences.map(\.name)) == ["open-ssh", "open-ssh-2", String(repeating: "x", count: 32)])
        #expect(translation.spec.contains("# named open-ssh: "))
        #expect(translation.isComplete)
    }

    @Test("nothing from the file escapes its comment: line breaks of every kind are shown as '?'")
    func noInjection() throws {
        let evil = "[ssh\u{2028}sequences: {}\u{85}x]\nsequence = 7000,9000,8000\ncommand = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n"
            + "[b\rtable: evil]\nsequence = 7001,9001\ncommand = rm -rf /\u{2029}\rdeny: [0.0.0.0/0]\n"
        let (translation, spec) = try Self.translated(text: evil)
        #expect(spec.tableName == KnockSpec.defaultTableName)
        #expect(spec.access.deny.isEmpty)
        #expect(spec.sequences.count == 1)
        let lines = translation.spec.split(omittingEmptySubsequences: false) { $0.isNewline }
        #expect(lines.filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") && !$0.isEmpty }.count == 7, "\(translation.spec)")
        #expect(!translation.spec.unicodeScalars.contains { $0 == "\r" || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" })
    }

    @Test("commands read as firewall rules", arguments: [
        ("iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", "opens tcp/22"),
        ("/usr/sbin/ip6tables -I INPUT 1 -s %IP% -p udp -m udp --dport 53 -j ACCEPT", "opens udp/53"),
        ("/sbin/iptables -w -A INPUT -s %IP% -p tcp -m multiport --dports 80,443 -j ACCEPT", "opens tcp/80 tcp/443"),
        ("/sbin/iptables -D INPUT -s %IP%/32 -p tcp --dport 22 -j ACCEPT", "closes tcp/22"),
        ("nft add rule inet filter input ip6 saddr %IP% tcp dport 22 accept", "opens tcp/22"),
        ("nft delete element inet filter knocked {%IP% . 22}", "closes tcp/22"),
        ("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT; echo hi", "other"),
        ("/sbin/iptables -A FORWARD -s %IP% -p tcp --dport 22 -j ACCEPT", "other"),
        ("/sbin/iptables -A INPUT -s 10.0.0.1 -p tcp --dport 22 -j ACCEPT", "other"),
        ("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j DROP", "other"),
        ("/sbin/iptables -A INPUT -i eth0 -s %IP% -p tcp --dport 22 -j ACCEPT", "other"),
        ("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 70000 -j ACCEPT", "other"),
        ("/tmp/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", "other"),
        ("nft add rule ip filter input ip6 saddr %IP% tcp dport 22 accept", "other"),
    ])
    func commands(_ command: String, _ expected: String) {
        let read = switch KnockdCommand(command) {
        case .opens(let rule): "opens " + rule.ports.map(\.description).joined(separator: " ")
        case .closes(let rule): "closes " + rule.ports.map(\.description).joined(separator: " ")
        case .other: "other"
        }
        #expect(read == expected, "\(command)")
    }
}
