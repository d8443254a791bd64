import KnockCore
import Testing

/// The systemd units rendered as values, and the paths a unit can carry; `UnitsTests` covers
/// the command that prints and installs them.
struct SystemdUnitTests {
    static func unit(_ kind: SystemdUnit.Kind) -> SystemdUnit {
        SystemdUnit(kind, specPath: "/etc/knockc/edge.yaml", knockcPath: "/opt/knockc", tableName: "edge")
    }

    @Test("each unit runs the given knockc on the given spec, every placeholder filled", arguments: [
        (SystemdUnit.Kind.apply, "knockc.service", ["ExecStart=/opt/knockc apply /etc/knockc/edge.yaml",
                                                    "ExecReload=/opt/knockc apply /etc/knockc/edge.yaml", "Type=oneshot"]),
        (.watcher, "knockc-watch.service", ["ExecStart=/opt/knockc watch /etc/knockc/edge.yaml", "Type=notify"]),
    ])
    func rendersUnit(_ kind: SystemdUnit.Kind, fileName: String, expected: [String]) throws {
        let unit = Self.unit(kind)
        #expect(unit.fileName == fileName)
        let text = try unit.text()
        let lines = Set(text.split(separator: "\n").map(String.init))
        for line in expected { #expect(lines.contains(line), "\(text)") }
        #expect(!text.contains("{{"))
    }

    @Test("the apply unit deletes the given table when stopped; the watcher's unit deletes none")
    func onlyTheApplyUnitDeletesTheTable() throws {
        #expect(try Self.unit(.apply).text().contains("\nExecStop=/usr/sbin/nft delete table inet edge\n"))
        #expect(try !Self.unit(.watcher).text().contains("delete table"))
    }

    @Test("absolute paths of plain characters go into a unit as they are")
    func plainPathsPass() throws {
        for path in ["/etc/knockc/knockc.yaml", "/usr/local/bin/knockc", "/srv/knock-c_1.0/spec.yml", "/opt/ünïcode/knockc"] {
            #expect(throws: Never.self) { try SystemdUnit.checkPath(path) }
        }
    }

    @Test("a relative path is refused: systemd needs an absolute one")
    func relativePathRefused() {
        #expect(throws: SystemdUnit.PathError.notAbsolute("bin/knockc")) { try SystemdUnit.checkPath("bin/knockc") }
        #expect(SystemdUnit.PathError.notAbsolute("bin/knockc").description == "'bin/knockc' is not an absolute path; systemd needs one.")
    }

    @Test("whitespace, quotes, backslashes, $, % and control characters are refused, naming the character", arguments: [
        ("/etc/knockc/knockc.yaml\nExecStartPre=/bin/sh", "\n"),
        ("/etc/knockc/my spec.yaml", " "),
        ("/usr/local/bin/knockc\tx", "\t"),
        ("/etc/knockc/\"knockc\".yaml", "\""),
        ("/etc/knockc/'knockc'.yaml", "'"),
        ("/etc/knockc/a\\b.yaml", "\\"),
        ("/etc/knockc/$HOME.yaml", "$"),
        ("/etc/knockc/%n.yaml", "%"),
        ("/etc/knockc/bell\u{7}.yaml", "\u{7}"),
    ])
    func unsafeCharactersRefused(_ path: String, _ character: String) {
        #expect(throws: SystemdUnit.PathError.unsafeCharacter(Character(character), path: path)) { try SystemdUnit.checkPath(path) }
    }

    @Test("the refusal quotes the path and the character so that an invisible one shows")
    func refusalQuotes() {
        let error = SystemdUnit.PathError.unsafeCharacter("\t", path: "/usr/local/bin/knockc\tx")
        #expect(error.description == #""/usr/local/bin/knockc\tx" contains "\t", which a systemd unit would not keep as it is."#)
    }
}
