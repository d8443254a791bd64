import ArgumentParser
import Foundation
import KnockCore

/// `knockc import`: specs from other port knocking tools' configurations.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Translate another port knocking tool's configuration into a knockc spec.",
        subcommands: [KnockdImportCommand.self]
    )
}

struct KnockdImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "knockd",
        abstract: "Translate a knockd.conf into a knockc spec, printed on stdout.",
        discussion: """
            Each section whose start_command (or command) is an iptables, ip6tables or nft rule \
            that accepts %IP% on some ports becomes a sequence: its sequence (PORT:tcp, \
            PORT:udp) the knocks, those ports open:, seq_timeout the step_timeout, and \
            cmd_timeout (when stop_command removes the rule) open_for; without a stop_command \
            open_for is 1h. A section whose command deletes such a rule becomes the close: knocks \
            of the sequence that opens those ports. What cannot be translated (other commands, \
            one_time_sequences, interface, target, tcpflags other than syn) is kept as a \
            '# not translated:' comment that says why and what to use instead, and listed on \
            stderr as FILE:LINE: not translated: REASON. The printed spec passes knockc check.

            Exit codes: 0 the translation is complete, 7 a spec was printed but something was \
            not translated, 1 nothing was printed: FILE cannot be read, knockd would refuse it \
            (an unknown key, a bad sequence; FILE:LINE: error: MESSAGE on stderr), or no \
            section translates, 64 bad command-line usage.
            """
    )

    @Argument(help: "The knockd configuration, such as /etc/knockd.conf.", completion: .file(extensions: ["conf"]))
    var file: String

    func run() throws {
        let translation: KnockdTranslation
        do {
            translation = try KnockdImport.translate(file: file)
        } catch {
            Console.error(error.description)
            throw ExitCode(1)
        }
        print(translation.spec, terminator: "")
        for item in translation.untranslated {
            Console.error("\(file):\(item.line): not translated: \(item.reason)")
        }
        if !translation.isComplete { throw ExitCodes.translationIncomplete }
    }
}
