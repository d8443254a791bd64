import ArgumentParser
import KnockSecrets

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new secret for rotating knocks and one-packet authorization.",
        discussion: """
            Writes 32 random bytes (from getrandom) to FILE, created with mode 0600 and never \
            through a link, and syncs it to disk. An existing FILE, a dangling link included, \
            is never overwritten. Prints only the path written, never a byte of the secret. \
            Run it as root for a server secret (the server requires root to own it), and copy \
            the file to each client over a channel you trust, mode 0600 there too.

            Exit codes: 0 the secret was written, 1 FILE already exists or could not be \
            written, 64 bad command-line usage.
            """
    )

    @Argument(help: "Where to write the secret, such as /etc/knockc/ssh.key.", completion: .file())
    var file: String

    func run() throws {
        do {
            try Secret.generate(at: file)
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCode(1)
        }
        print("wrote \(file)")
        print("next: name it as the `secret:` of a sequence's rotate: or spa:, and copy it to each client (mode 0600)")
    }
}
