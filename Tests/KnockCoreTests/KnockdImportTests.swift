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

    @Test("every fixture that prints a spec prints one knockc check accepts", arguments: ["debian.conf", "ipv6.conf", "nft.conf"])
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

    @Test("the man page's examples: #1's --dport without -p is refused by iptables, so nothing translates; the reason says what to write")
    func manPageExamples() throws {
        for name in ["example1.conf", "manpage.conf"] {
            do {
                _ = try KnockdImport.translate(file: Self.fixture(name))
                Issue.record("\(name) translated, though iptables refuses its rules")
            } catch {
                #expect(error.message.contains("no section translates"), "\(error)")
                #expect(error.message.contains("likely meant as '-p tcp --dport 22'; if so, write open: [tcp/22]"), "\(error)")
            }
        }
        let failure = try #require(Self.failure(try String(contentsOfFile: Self.fixture("manpage.conf"), encoding: .utf8)))
        #expect(failure.message.contains("every tcp port"))
        #expect(failure.message.contains("rotate:"))
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

    static func read(_ command: String) -> String {
        switch KnockdCommand(command) {
        case .opens(let rule): "opens " + rule.ports.map(\.description).joined(separator: " ")
        case .closes(let rule): "closes " + rule.ports.map(\.description).joined(separator: " ")
        case .other: "other"
        }
    }

    @Test("nft rules open only in the input chain of a filter table", arguments: [
        ("nft add rule inet filter forward ip saddr %IP% tcp dport 22 accept", "other"),
        ("nft add rule ip nat postrouting ip saddr %IP% tcp dport 22 accept", "other"),
        ("nft add rule inet filter knockers ip saddr %IP% tcp dport 22 accept", "other"),
        ("nft add rule inet raw input ip saddr %IP% tcp dport 22 accept", "other"),
        ("nft add rule ip filter input ip saddr %IP% tcp dport 22 accept", "opens tcp/22"),
        ("nft insert rule ip6 filter input ip6 saddr %IP% udp dport 53 accept", "opens udp/53"),
    ])
    func nftChains(_ command: String, _ expected: String) {
        #expect(Self.read(command) == expected, "\(command)")
    }

    @Test("an nft element's comment says that what the set does is assumed, and it is not complete")
    func nftElementAssumption() throws {
        let (translation, _) = try Self.translated(text: "[a]\nsequence = 7000,9000,8000\ncommand = nft add element inet filter blocklist { %IP% . 22 }\n")
        #expect(!translation.isComplete)
        #expect(translation.untranslated.first?.reason.contains("the set blocklist, assumed to be one that an input rule accepts") == true, "\(translation.untranslated)")
    }

    @Test("iptables rules that iptables itself refuses open nothing, so they are not read as opens", arguments: [
        "/sbin/iptables -A INPUT -s %IP% --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -m multiport --dports 22,80 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22,80 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 --dport 80 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp -m multiport --dports 22 --dport 80 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p udp -m tcp --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -m tcp -p tcp --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp --dports 22,80 -m multiport -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp -p udp --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% --protocol tcp -p tcp --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -s %IP% -p tcp --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT -j ACCEPT",
        "/sbin/iptables -A INPUT -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT",
        "/sbin/iptables -I INPUT \u{661} -s %IP% -p tcp --dport 22 -j ACCEPT",
        "/sbin/iptables -I INPUT 0 -s %IP% -p tcp --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp --dport \u{661}\u{662} -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p udp --syn --dport 22 -j ACCEPT",
        "/sbin/iptables -A INPUT -s %IP% -p tcp -m multiport -j ACCEPT",
    ])
    func refusedByIptables(_ command: String) {
        #expect(Self.read(command) == "other", "\(command)")
    }

    @Test("a strict reading still takes the rules iptables takes", arguments: [
        ("/sbin/iptables -I INPUT 3 -s %IP% -p tcp -m tcp --dport 22 -j ACCEPT", "opens tcp/22"),
        ("/sbin/iptables --insert INPUT -s %IP% --protocol udp --destination-port 53 --jump ACCEPT", "opens udp/53"),
        ("/sbin/iptables -A INPUT -s %IP% -p tcp -m multiport --destination-ports 22,80 -j ACCEPT", "opens tcp/22 tcp/80"),
        ("/sbin/iptables -A INPUT -s %IP% -p tcp --syn --dport 22 -j ACCEPT", "opens tcp/22"),
    ])
    func takenByIptables(_ command: String, _ expected: String) {
        #expect(Self.read(command) == expected, "\(command)")
    }

    @Test("a closing section's other keys are each said, and not translated when knockc's close: would differ")
    func closingSectionKeys() throws {
        let opening = "[open]\nsequence = 7000,9000,8000\nseq_timeout = 5\ncommand = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n"
        let closing = "[close]\nsequence = 8000,9000,7000\ncommand = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n"
        let (faithful, spec) = try Self.translated(text: opening + closing + "seq_timeout = 5\ntcpflags = syn\n")
        #expect(spec.sequences.first?.close == [.tcp(8000), .tcp(9000), .tcp(7000)])
        #expect(faithful.isComplete, "\(faithful.untranslated)")
        // Lines 7 on: each key of the closing section that knockc's close: does not do.
        let (translation, _) = try Self.translated(text: opening + closing + """
            seq_timeout = 30
            tcpflags = fin
            target = 10.0.0.5
            start_command_6 = /usr/local/bin/notify-admin
            cmd_timeout = 20
            stop_command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
            stop_command_6 = /usr/local/bin/notify-admin
            """)
        #expect(translation.untranslated.map(\.line) == [8, 9, 10, 11, 13, 14], "\(translation.untranslated)")
        #expect(translation.spec.contains("cmd_timeout = 20 (line 12)"))
        // knockd's default seq_timeout (25) for the close, longer than the opening's 5.
        let (defaulted, _) = try Self.translated(text: opening + closing)
        #expect(defaulted.untranslated.map(\.line) == [5], "\(defaulted.untranslated)")
    }

    @Test("stop_command_6 is read: the removal of start_command_6's rule is said, anything else not translated")
    func stopCommand6() throws {
        let base = "[a]\nsequence = 7000,9000,8000\nstart_command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT\nstart_command_6 = /sbin/ip6tables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT\ncmd_timeout = 30\nstop_command = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 25 -j ACCEPT\n"
        let (removes, _) = try Self.translated(text: base + "stop_command_6 = /sbin/ip6tables -D INPUT -s %IP% -p tcp --dport 25 -j ACCEPT\n")
        #expect(removes.isComplete, "\(removes.untranslated)")
        #expect(removes.spec.contains("stop_command_6 = "))
        let (other, _) = try Self.translated(text: base + "stop_command_6 = /usr/local/bin/notify-admin\n")
        #expect(other.untranslated.map(\.line) == [7])
    }

    /// A value for `key` that knockc cannot do as knockd did.
    static let untranslatable = [
        "ONE_TIME_SEQUENCES": "/etc/knockd/one-time", "SEQ_TIMEOUT": "600", "TIMEOUT": "600", "TCPFLAGS": "fin,urg",
        "TARGET": "10.0.0.5", "START_COMMAND_6": "/usr/local/bin/notify-admin", "COMMAND_6": "/usr/local/bin/notify-admin",
        "CMD_TIMEOUT": "600", "STOP_COMMAND": "/usr/local/bin/notify-admin", "STOP_COMMAND_6": "/usr/local/bin/notify-admin",
    ]

    @Test("every key knockd accepts, in an opening or a closing section, is translated with its line said, or not translated")
    func everyKeyAccounted() throws {
        let keys = KnockdConfig.sectionKeys.filter { !["SEQUENCE", "START_COMMAND", "COMMAND"].contains($0) }
        #expect(Set(keys) == Set(Self.untranslatable.keys))
        let opening = "[open]\nsequence = 7000,9000,8000\nseq_timeout = 5\ncommand = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n"
        let closing = "[close]\nsequence = 8000,9000,7000\nseq_timeout = 5\ncommand = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n"
        for key in keys {
            let line = "\(key.lowercased()) = \(Self.untranslatable[key]!)\n"
            // A first section that translates whatever the key does to the others.
            let other = "[other]\nsequence = 7100,9100,8100\ncommand = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT\n"
            for (text, lineNumber) in [(other + opening + line + closing, 8), (other + opening + closing + line, 12)] {
                let (translation, _) = try Self.translated(text: text)
                let said = translation.untranslated.contains { $0.line == lineNumber } || translation.spec.contains("(line \(lineNumber))")
                #expect(said, "\(key) at line \(lineNumber) is neither translated nor said:\n\(translation.spec)")
                // A long seq_timeout of an opening section is its step_timeout, and a lone
                // cmd_timeout does nothing in knockd either: both are translated.
                if !["SEQ_TIMEOUT", "TIMEOUT", "CMD_TIMEOUT"].contains(key) || lineNumber == 12 && key != "CMD_TIMEOUT" {
                    #expect(!translation.isComplete, "\(key) at line \(lineNumber)")
                }
            }
        }
    }

    /// Scalars that must never reach output raw: controls (ESC, CSI, DEL, CR, NEL), line and
    /// paragraph separators, bidi controls (Trojan Source), other format characters, and
    /// noncharacters that YAML refuses.
    static let hostile: [Unicode.Scalar] = ([0x1B, 0x9B, 0x7F, 0x0D, 0x85, 0x2028, 0x2029, 0x200B, 0xFEFF, 0xE0001, 0xFFFF, 0xFFFE, 0xFDD0, 0x10FFFF, 0x0378]
        + Array(0x202A...0x202E) + Array(0x2066...0x2069)).map { Unicode.Scalar(UInt32($0))! }

    /// A knockd.conf with `c` in a section name, the options, and every part of a command
    /// that reaches a reason: program, chain, match, option, port, and a target.
    static func hostileConf(_ c: Unicode.Scalar) -> String {
        """
        [options]
        logfile = /var/log/k\(c)d.log
        interface = et\(c)h0
        [ss\(c)h]
        sequence = 7000,9000,8000
        command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
        target = 10.\(c).0.5
        [b\(c)]
        sequence = 7001,9001
        command = /opt/\(c)/iptables -A INPUT
        [c]
        sequence = 7002,9002
        command = iptables -A IN\(c)PUT -s %IP% -p tcp --dport 22 -j ACCEPT
        [d]
        sequence = 7003,9003
        command = iptables -A INPUT -s %IP% -p tcp -m x\(c)y --dport 22 -j ACCEPT
        [e]
        sequence = 7004,9004
        command = iptables -A INPUT -s %IP% -p tcp --x\(c)y 22 -j ACCEPT
        [f]
        sequence = 7005,9005
        command = iptables -A INPUT -s %IP% -p tcp --dport 2\(c)2 -j ACCEPT
        [g]
        sequence = 7006,9006
        command = nft add element inet filter s\(c)t { %IP% . 22 }

        """
    }

    @Test("nothing from the file reaches the spec or stderr raw: every control, separator, bidi control and noncharacter is '?'")
    func sanitizedEverywhere() throws {
        // '~' changes a section's name as the hostile scalars do, which a comment says.
        let (baseline, _) = try Self.translated(text: Self.hostileConf("~"))
        let lineCount = baseline.spec.split(separator: "\n", omittingEmptySubsequences: false).count
        for c in Self.hostile {
            let (translation, _) = try Self.translated(text: Self.hostileConf(c))
            #expect(translation.spec.split(separator: "\n", omittingEmptySubsequences: false).count == lineCount, "U+\(String(c.value, radix: 16))")
            #expect(!translation.spec.unicodeScalars.contains(c), "U+\(String(c.value, radix: 16)) in the spec")
            #expect(!translation.untranslated.contains { $0.reason.unicodeScalars.contains(c) }, "U+\(String(c.value, radix: 16)) in a reason")
            #expect(translation.untranslated.count == baseline.untranslated.count)
            // A key or a knock with it is an error: its message is clean too.
            for text in ["[a]\nse\(c)q = 1\n", "[a]\nsequence = 1\(c)\n", "[a\(c)]\ncommand = x\n"] {
                let failure = try #require(Self.failure(text))
                #expect(!failure.description.unicodeScalars.contains(c), "U+\(String(c.value, radix: 16)) in \(failure.description)")
            }
        }
    }

    @Test("knockc import knockd writes no terminal escape to stderr", .timeLimit(.minutes(1)))
    func noEscapeOnStderr() throws {
        guard let knockc = KnockcExecutable.required() else { return }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("knockd-\(UUID().uuidString).conf")
        defer { try? FileManager.default.removeItem(at: file) }
        try Self.hostileConf("\u{1B}").write(to: file, atomically: true, encoding: .utf8)
        let result = try KnockcExecutable.run(knockc, ["import", "knockd", file.path])
        #expect(result.status == 7)
        #expect(!result.stderr.contains("\u{1B}"))
        #expect(result.stderr.contains("not translated"))
    }

    @Test("a knockd.conf over 1 MiB is refused, saying the limit")
    func sizeLimit() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("knockd-\(UUID().uuidString).conf")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(repeating: UInt8(ascii: "#"), count: KnockdImport.limit + 1).write(to: file)
        do {
            _ = try KnockdImport.translate(file: file.path)
            Issue.record("a file over the limit was read")
        } catch {
            #expect(error.message.contains("larger than 1 MiB, more than any knockd.conf needs"), "\(error)")
        }
    }

    @Test("thousands of sections translate in time linear in their number: alike names, closers, duplicates", .timeLimit(.minutes(1)))
    func manySections() throws {
        var text = ""
        let count = 4000
        for i in 0..<count {
            let a = 10000 + i, b = 30000 + i, c = 50000 + i, port = 1000 + i
            text += "[ssh]\nsequence = \(a),\(b),\(c)\ncommand = iptables -A INPUT -s %IP% -p tcp --dport \(port) -j ACCEPT\n"
            text += "[close]\nsequence = \(c),\(b),\(a)\nseq_timeout = 25\ncommand = iptables -D INPUT -s %IP% -p tcp --dport \(port) -j ACCEPT\n"
        }
        let clock = ContinuousClock()
        let started = clock.now
        let translation = try KnockdImport.translate(text, file: "big.conf")
        let took = clock.now - started
        #expect(translation.sequenceCount == count)
        #expect(took < .seconds(10), "\(took)")
    }
}
