import ArgumentParser
import KnockClient
import KnockCore

struct KnockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "knock",
        abstract: "Send a knock sequence to a host (the client).",
        discussion: """
            Sends exactly one packet per knock: for tcp/PORT a connection attempt that is \
            abandoned at once (one SYN, never retransmitted), for udp/PORT one datagram, for \
            icmp/LENGTH one echo request with LENGTH bytes of payload (what `ping -c1 -s LENGTH` \
            sends). An icmp knock needs a ping socket (net.ipv4.ping_group_range) or a raw one \
            (root or CAP_NET_RAW); knockc checks that before it sends anything. Give the knocks \
            on the command line, or name a sequence of a spec with --spec and --sequence.

              knockc knock 192.0.2.1 tcp/7000 udp/9000 tcp/8000
              knockc knock 192.0.2.1 tcp/7000 icmp/731 udp/9000
              knockc knock server.example --spec knockc.yaml --sequence ssh
            """
    )

    @Argument(help: "The host to knock on: an IPv4 or IPv6 address, or a name.")
    var host: String

    @Argument(help: "The knocks, in order, as tcp/PORT, udp/PORT or icmp/LENGTH.")
    var knocks: [String] = []

    @Option(help: "A spec to take the knocks from (with --sequence).", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String?

    @Option(help: "The sequence of --spec to send.")
    var sequence: String?

    @Option(help: "The pause between two knocks, as 200ms or 1s; keep it under the sequence's step_timeout.")
    var delay: String = "200ms"

    @Option(help: "After knocking, wait until this TCP port accepts a connection; exit 0 when it does, 1 when it does not.")
    var thenConnect: UInt16?

    @Option(help: "How long --then-connect waits, as 5s.")
    var timeout: String = "5s"

    @Option(help: "With --then-connect: send the whole sequence again this many times while the port stays closed.")
    var retries: Int = 0

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
        guard let pause = Duration(parsing: delay) else {
            throw ValidationError("'\(delay)' is not a duration; expected a number and a unit: 500ms, 1s.")
        }
        // Bounded like a spec's durations: past 24d, no knock sequence could still be open,
        // and the sleep would overflow.
        guard pause <= .maximum else { throw ValidationError(Self.tooLong(delay, option: "--delay")) }
        guard !(ipv4 && ipv6) else { throw ValidationError("-4 and -6 exclude each other.") }
        guard let wait = Duration(parsing: timeout) else {
            throw ValidationError("'\(timeout)' is not a duration; expected a number and a unit: 5s, 500ms.")
        }
        guard wait <= .maximum else { throw ValidationError(Self.tooLong(timeout, option: "--timeout")) }
        guard (0...100).contains(retries) else { throw ValidationError("--retries takes 0 to 100.") }
        if retries > 0, thenConnect == nil { throw ValidationError("--retries needs --then-connect, which tells whether the knock worked.") }
        if thenConnect == 0 { throw ValidationError("--then-connect takes a port from 1 to 65535.") }
    }

    static func tooLong(_ text: String, option: String) -> String {
        "'\(text)' is too long for \(option); the longest is \(Duration.maximum)."
    }

    func run() throws {
        let knocks = try resolveKnocks()
        let knocker = Knocker(host: host, delay: Duration(parsing: delay)!, family: ipv4 ? .ipv4 : ipv6 ? .ipv6 : .any)
        let target: ResolvedHost
        do {
            target = try knocker.resolve()
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCodes.knockFailed
        }
        for attempt in 0...retries {
            do {
                try knocker.send(knocks, to: target)
            } catch {
                Console.error("knockc: \(error)")
                throw ExitCodes.knockFailed
            }
            print("knocked \(target): \(knocks.map(\.description).joined(separator: " "))")
            guard let port = thenConnect else { return }
            if PortProbe.waitUntilOpen(target, port: port, timeout: Duration(parsing: timeout)!) {
                print("tcp/\(port) on \(target) is open")
                return
            }
            Console.error("knockc: tcp/\(port) on \(target) did not open within \(timeout)" + (attempt < retries ? "; knocking again" : ""))
        }
        throw ExitCode(1)
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
