import ArgumentParser
import KnockClient
import KnockCore

struct KnockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "knock",
        abstract: "Send a knock sequence to a host (the client).",
        discussion: """
            Sends exactly one packet per knock: for tcp/PORT a connection attempt that is \
            abandoned at once (one SYN, never retransmitted), for udp/PORT one datagram. Give the \
            knocks on the command line, or name a sequence of a spec with --spec and --sequence.

              knockc knock 192.0.2.1 tcp/7000 udp/9000 tcp/8000
              knockc knock server.example --spec knockc.yaml --sequence ssh
            """
    )

    @Argument(help: "The host to knock on: an IPv4 or IPv6 address, or a name.")
    var host: String

    @Argument(help: "The knocks, in order, as tcp/PORT or udp/PORT.")
    var knocks: [String] = []

    @Option(help: "A spec to take the knocks from (with --sequence).", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String?

    @Option(help: "The sequence of --spec to send.")
    var sequence: String?

    @Option(help: "The pause between two knocks, as 200ms or 1s; keep it under the sequence's step_timeout.")
    var delay: String = "200ms"

    @Flag(name: .customShort("4"), help: "Use IPv4 only.")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Use IPv6 only.")
    var ipv6 = false

    func validate() throws {
        if spec != nil || sequence != nil {
            guard spec != nil, sequence != nil else { throw ValidationError("--spec and --sequence go together.") }
            guard knocks.isEmpty else { throw ValidationError("Give knocks on the command line or --spec and --sequence, not both.") }
        } else if knocks.isEmpty {
            throw ValidationError("Give at least one knock (as tcp/7000), or --spec and --sequence.")
        }
        for word in knocks {
            do { _ = try Knock(parsing: word) } catch { throw ValidationError("'\(word)' is not a knock; expected \(Knock.syntaxHint).") }
        }
        guard Duration(parsing: delay) != nil else {
            throw ValidationError("'\(delay)' is not a duration; expected a number and a unit: 500ms, 1s.")
        }
        guard !(ipv4 && ipv6) else { throw ValidationError("-4 and -6 exclude each other.") }
    }

    func run() throws {
        let knocks = try resolveKnocks()
        let knocker = Knocker(host: host, delay: Duration(parsing: delay)!, family: ipv4 ? .ipv4 : ipv6 ? .ipv6 : .any)
        do {
            let target = try knocker.resolve()
            try knocker.send(knocks, to: target)
            print("knocked \(target): \(knocks.map(\.description).joined(separator: " "))")
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCodes.knockFailed
        }
    }

    private func resolveKnocks() throws -> [Knock] {
        guard let spec, let sequence else { return try knocks.map { try Knock(parsing: $0) } }
        let loaded = try SpecOptions.parse([spec]).load()
        guard let found = loaded.sequences.first(where: { $0.name == sequence }) else {
            let names = loaded.sequences.map(\.name).joined(separator: ", ")
            Console.error("knockc: \(spec) has no sequence '\(sequence)'; it has \(names)")
            throw ExitCodes.specErrors
        }
        return found.knocks
    }
}
